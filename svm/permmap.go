package svm

// I/O and MSR permission maps (APM Vol. 2, 15.10.1 and 15.11). Both live in
// physically contiguous, 4 KiB-aligned host memory whose addresses go into
// the VMCB (IOPM_BASE_PA, MSRPM_BASE_PA); a set bit intercepts. juice's
// default is to intercept everything: guests are hostile, and the core
// emulates what it allows.

// IOPMSize is the size of the I/O permission map: 12 KiB (three pages).
// It holds one bit per port 0-0xFFFF plus the spill bits 0x10000-0x10002
// that a multi-byte access at the top ports reaches.
const IOPMSize = 3 * 4096

// MSRPMSize is the size of the MSR permission map: 8 KiB (two pages).
const MSRPMSize = 2 * 4096

// iopmBits is the number of meaningful IOPM bits: 64K ports plus three
// spill bits for 2- and 4-byte accesses starting at 0xFFFD..0xFFFF.
const iopmBits = 0x10000 + 3

// IOPM is a view of an I/O permission map. Bit p intercepts an access that
// touches port p: a 1-byte access to port p exits when bit p is set, a
// 2- or 4-byte access when any of the bits p..p+size-1 is set.
type IOPM struct {
	p *[IOPMSize]byte
}

// NewIOPM views the first IOPMSize bytes of b; ok is false when b is
// shorter. The contents are left as they are: call InterceptAll first.
func NewIOPM(b []byte) (IOPM, bool) {
	if len(b) < IOPMSize {
		return IOPM{}, false
	}
	return IOPM{p: (*[IOPMSize]byte)(b[:IOPMSize])}, true
}

// InterceptAll makes every port access exit.
func (m IOPM) InterceptAll() {
	for i := range m.p {
		m.p[i] = 0xff
	}
}

// InterceptPort makes accesses to ports [port, port+n) exit. ok is false
// (and nothing changes) when n is 0 or the range goes past the spill bits.
func (m IOPM) InterceptPort(port uint16, n uint32) bool { return m.set(port, n, true) }

// AllowPort lets accesses to ports [port, port+n) reach the hardware
// without an exit. A wider access that also touches an intercepted port
// still exits. ok is false (and nothing changes) when n is 0 or the
// range goes past the spill bits.
func (m IOPM) AllowPort(port uint16, n uint32) bool { return m.set(port, n, false) }

// set sets or clears the bits of ports [port, port+n).
func (m IOPM) set(port uint16, n uint32, on bool) bool {
	if n == 0 || uint32(port)+n > iopmBits {
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
func (m IOPM) Intercepted(port uint16, size uint8) bool {
	if size != 1 && size != 2 {
		size = 4
	}
	for b := uint32(port); b < uint32(port)+uint32(size); b++ {
		if m.p[b>>3]&(1<<(b&7)) != 0 {
			return true
		}
	}
	return false
}

// MSR ranges the MSRPM covers (APM 15.11): each range is 8K MSRs at two
// bits per MSR (read, then write) = 2 KiB of map. MSRs outside them always
// exit.
const (
	msrpmRange0     = 0x0000_0000 // map bytes 0x000-0x7FF
	msrpmRange1     = 0xC000_0000 // map bytes 0x800-0xFFF
	msrpmRange2     = 0xC001_0000 // map bytes 0x1000-0x17FF
	msrpmRangeMSRs  = 0x2000      // MSRs per range
	msrpmRangeBytes = 0x800       // map bytes per range
)

// MSRPM is a view of an MSR permission map.
type MSRPM struct {
	p *[MSRPMSize]byte
}

// NewMSRPM views the first MSRPMSize bytes of b; ok is false when b is
// shorter. The contents are left as they are: call InterceptAll first.
func NewMSRPM(b []byte) (MSRPM, bool) {
	if len(b) < MSRPMSize {
		return MSRPM{}, false
	}
	return MSRPM{p: (*[MSRPMSize]byte)(b[:MSRPMSize])}, true
}

// InterceptAll makes every RDMSR and WRMSR exit.
func (m MSRPM) InterceptAll() {
	for i := range m.p {
		m.p[i] = 0xff
	}
}

// msrBit returns the map bit of msr's read intercept (the write intercept
// is the next bit); ok is false for MSRs outside the three ranges.
func msrBit(msr uint32) (bit uint32, ok bool) {
	var base uint32
	switch {
	case msr < msrpmRange0+msrpmRangeMSRs:
		base = 0
	case msr >= msrpmRange1 && msr < msrpmRange1+msrpmRangeMSRs:
		base, msr = msrpmRangeBytes*8, msr-msrpmRange1
	case msr >= msrpmRange2 && msr < msrpmRange2+msrpmRangeMSRs:
		base, msr = 2*msrpmRangeBytes*8, msr-msrpmRange2
	default:
		return 0, false
	}
	return base + 2*msr, true
}

// SetMSR chooses whether RDMSR (read) and WRMSR (write) of msr exit. ok is
// false for an MSR outside the map's ranges: those always exit.
func (m MSRPM) SetMSR(msr uint32, read, write bool) bool {
	b, ok := msrBit(msr)
	if !ok {
		return false
	}
	m.setBit(b, read)
	m.setBit(b+1, write)
	return true
}

// setBit sets or clears bit b of the map.
func (m MSRPM) setBit(b uint32, on bool) {
	if b>>3 >= MSRPMSize {
		return
	}
	if on {
		m.p[b>>3] |= 1 << (b & 7)
	} else {
		m.p[b>>3] &^= 1 << (b & 7)
	}
}

// Intercepted reports whether RDMSR and WRMSR of msr exit.
func (m MSRPM) Intercepted(msr uint32) (read, write bool) {
	b, ok := msrBit(msr)
	if !ok || b>>3 >= MSRPMSize {
		return true, true
	}
	return m.p[b>>3]&(1<<(b&7)) != 0, m.p[(b+1)>>3]&(1<<((b+1)&7)) != 0
}
