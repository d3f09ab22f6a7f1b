package vmx

// The I/O bitmaps and the MSR bitmaps (SDM Vol. 3C 25.6.4 and 25.6.9).
// Each is 4 KiB-aligned host memory whose physical address goes into the
// VMCS (IOBitmapAAddr, IOBitmapBAddr, MSRBitmapAddr) with the "use I/O bitmaps" and
// "use MSR bitmaps" controls set; a set bit makes the access exit. juice's
// default is to intercept everything: guests are hostile, and the core
// emulates what it allows.

// IOBitmapSize is the size of one I/O bitmap: 4 KiB, one bit for each of
// 32K ports. Bitmap A covers ports 0000-7FFF, bitmap B 8000-FFFF.
const IOBitmapSize = 4096

// IOBitmapsSize is the size of the two I/O bitmaps laid out back to back
// (A, then B), which is how juice allocates them.
const IOBitmapsSize = 2 * IOBitmapSize

// MSRBitmapSize is the size of the MSR bitmaps: one 4 KiB page holding four
// 1 KiB bitmaps.
const MSRBitmapSize = 4096

// IOBitmaps is a view of the two I/O bitmaps. An I/O instruction that
// touches port p exits when bit p is set (bit p of A for p < 0x8000, bit
// p-0x8000 of B otherwise); a 2- or 4-byte access exits when any of the
// ports it touches is intercepted, and always when it wraps past port
// FFFF (SDM 26.1.3).
type IOBitmaps struct {
	p *[IOBitmapsSize]byte
}

// NewIOBitmaps views the first IOBitmapsSize bytes of b as bitmap A
// followed by bitmap B; ok is false when b is shorter. The contents are
// left as they are: call InterceptAll first.
func NewIOBitmaps(b []byte) (IOBitmaps, bool) {
	if len(b) < IOBitmapsSize {
		return IOBitmaps{}, false
	}
	return IOBitmaps{p: (*[IOBitmapsSize]byte)(b[:IOBitmapsSize])}, true
}

// A returns bitmap A (ports 0000-7FFF), aliasing the view.
func (m IOBitmaps) A() []byte { return m.p[:IOBitmapSize:IOBitmapSize] }

// B returns bitmap B (ports 8000-FFFF), aliasing the view.
func (m IOBitmaps) B() []byte { return m.p[IOBitmapSize:] }

// InterceptAll makes every port access exit.
func (m IOBitmaps) InterceptAll() {
	for i := range m.p {
		m.p[i] = 0xff
	}
}

// InterceptPort makes accesses to ports [port, port+n) exit. ok is false
// (and nothing changes) when n is 0 or the range goes past port FFFF.
func (m IOBitmaps) InterceptPort(port uint16, n uint32) bool { return m.set(port, n, true) }

// AllowPort lets accesses to ports [port, port+n) reach the hardware
// without an exit. A wider access that also touches an intercepted port
// still exits. ok is false (and nothing changes) when n is 0 or the range
// goes past port FFFF.
func (m IOBitmaps) AllowPort(port uint16, n uint32) bool { return m.set(port, n, false) }

// set sets or clears the bits of ports [port, port+n). Because A and B are
// consecutive, port p's bit is bit p of the combined 8 KiB.
func (m IOBitmaps) set(port uint16, n uint32, on bool) bool {
	if n == 0 || uint32(port)+n > 0x10000 {
		return false
	}
	for b := uint32(port); b < uint32(port)+n; b++ {
		if on {
			m.p[b>>3] |= 1 << (b & 7)
		} else {
			m.p[b>>3] &^= 1 << (b & 7)
		}
	}
	return true
}

// Intercepted reports whether an access of size bytes (1, 2 or 4; other
// sizes are treated as 4) at port exits, as the processor decides it.
func (m IOBitmaps) Intercepted(port uint16, size uint8) bool {
	if size != 1 && size != 2 {
		size = 4
	}
	last := uint32(port) + uint32(size) - 1
	if last > 0xffff {
		return true // wraps around the I/O space
	}
	for b := uint32(port); b <= last; b++ {
		if m.p[b>>3]&(1<<(b&7)) != 0 {
			return true
		}
	}
	return false
}

// MSR bitmap layout (SDM 25.6.9): four 1 KiB bitmaps of 8K bits each.
const (
	msrLowBase   = 0x0000_0000 // MSRs 00000000-00001FFF
	msrHighBase  = 0xC000_0000 // MSRs C0000000-C0001FFF
	msrRangeMSRs = 0x2000

	msrReadLow   = 0    // read bitmap for low MSRs
	msrReadHigh  = 1024 // read bitmap for high MSRs
	msrWriteLow  = 2048 // write bitmap for low MSRs
	msrWriteHigh = 3072 // write bitmap for high MSRs
)

// MSRBitmap is a view of the MSR bitmaps. RDMSR of an MSR in the low or
// high range exits when its bit in the matching read bitmap is set, WRMSR
// when its bit in the write bitmap is set; MSRs outside both ranges always
// exit.
type MSRBitmap struct {
	p *[MSRBitmapSize]byte
}

// NewMSRBitmap views the first MSRBitmapSize bytes of b; ok is false when b
// is shorter. The contents are left as they are: call InterceptAll first.
func NewMSRBitmap(b []byte) (MSRBitmap, bool) {
	if len(b) < MSRBitmapSize {
		return MSRBitmap{}, false
	}
	return MSRBitmap{p: (*[MSRBitmapSize]byte)(b[:MSRBitmapSize])}, true
}

// InterceptAll makes every RDMSR and WRMSR exit.
func (m MSRBitmap) InterceptAll() {
	for i := range m.p {
		m.p[i] = 0xff
	}
}

// msrOffsets returns the byte offsets of msr's read and write bitmaps and
// its bit number in them; ok is false for MSRs outside both ranges.
func msrOffsets(msr uint32) (read, write, bit uint32, ok bool) {
	switch {
	case msr < msrLowBase+msrRangeMSRs:
		return msrReadLow, msrWriteLow, msr, true
	case msr >= msrHighBase && msr < msrHighBase+msrRangeMSRs:
		return msrReadHigh, msrWriteHigh, msr - msrHighBase, true
	}
	return 0, 0, 0, false
}

// SetMSR chooses whether RDMSR (read) and WRMSR (write) of msr exit. ok is
// false for an MSR outside the bitmaps' ranges: those always exit.
func (m MSRBitmap) SetMSR(msr uint32, read, write bool) bool {
	r, w, bit, ok := msrOffsets(msr)
	if !ok {
		return false
	}
	m.setBit(r*8+bit, read)
	m.setBit(w*8+bit, write)
	return true
}

// setBit sets or clears bit b of the page.
func (m MSRBitmap) setBit(b uint32, on bool) {
	if b>>3 >= MSRBitmapSize {
		return
	}
	if on {
		m.p[b>>3] |= 1 << (b & 7)
	} else {
		m.p[b>>3] &^= 1 << (b & 7)
	}
}

// bit reports bit b of the page.
func (m MSRBitmap) bit(b uint32) bool {
	return b>>3 < MSRBitmapSize && m.p[b>>3]&(1<<(b&7)) != 0
}

// Intercepted reports whether RDMSR and WRMSR of msr exit.
func (m MSRBitmap) Intercepted(msr uint32) (read, write bool) {
	r, w, bit, ok := msrOffsets(msr)
	if !ok {
		return true, true
	}
	return m.bit(r*8 + bit), m.bit(w*8 + bit)
}
