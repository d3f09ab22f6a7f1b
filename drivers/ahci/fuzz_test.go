package ahci

import (
	"encoding/binary"
	"testing"
	"time"

	"juice/mm/phys"
)

// FuzzParseIdentify: any 512 bytes decode or are refused, never panic;
// what is accepted is within the limits the driver relies on.
func FuzzParseIdentify(f *testing.F) {
	for _, seed := range [][IdentifyBytes]byte{
		identifyPage("QEMU HARDDISK", "QM00001", 131072, 512, 0, true, true),
		identifyPage("4KN", "S", 1000, 4096, 0, false, false),
		identifyPage("512E", "S", 1<<40, 512, 3, true, false),
	} {
		f.Add(seed[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentify(b)
		if err != nil {
			return
		}
		if id.Sectors == 0 || id.Sectors > maxSectors || id.LogicalSize < 512 || id.LogicalSize > MaxLogicalSize ||
			id.LogicalSize&(id.LogicalSize-1) != 0 || id.PhysicalSize < id.LogicalSize {
			t.Errorf("accepted %+v", id)
		}
		for _, s := range []string{id.Model, id.Serial, id.Firmware} {
			for _, c := range []byte(s) {
				if c < 0x20 || c > 0x7E {
					t.Errorf("unprintable byte %#x in %q", c, s)
				}
			}
		}
	})
}

// hostileRegs is an HBA whose registers read whatever the fuzzer says,
// in turn, and ignore writes.
type hostileRegs struct {
	vals []uint32
	i    int
}

func (h *hostileRegs) next() uint32 {
	if len(h.vals) == 0 {
		return 0
	}
	v := h.vals[h.i%len(h.vals)]
	h.i++
	return v
}
func (h *hostileRegs) Read8(off uint32) uint8       { return uint8(h.next()) }
func (h *hostileRegs) Read16(off uint32) uint16     { return uint16(h.next()) }
func (h *hostileRegs) Read32(off uint32) uint32     { return h.next() }
func (h *hostileRegs) Write8(off uint32, v uint8)   {}
func (h *hostileRegs) Write16(off uint32, v uint16) {}
func (h *hostileRegs) Write32(off uint32, v uint32) {}

// FuzzHostileHBA: an HBA answering with arbitrary register values and
// arbitrary bytes in the DMA memory it "writes" never makes the driver
// panic or hang: Open, and requests on whatever disks it brought up,
// end with data or an error in bounded time.
func FuzzHostileHBA(f *testing.F) {
	good := identifyPage("M", "S", 4096, 512, 0, true, true)
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, good[:])
	f.Add([]byte{0x05, 0x1F, 0x04, 0xC0, 0x01, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x13, 0x01, 0, 0, 0x50, 0, 0, 0, 0x01, 0x01, 0, 0}, good[:])
	f.Add([]byte{0x05, 0x1F, 0x04, 0xC0, 0, 0, 0, 0, 0x13, 0x01, 0, 0, 0x01, 0x01, 0, 0}, make([]byte, 600))
	f.Fuzz(func(t *testing.T, regs, dma []byte) {
		if len(regs) > 256 || len(dma) > 8192 {
			return
		}
		h := &hostileRegs{}
		for i := 0; i+4 <= len(regs); i += 4 {
			h.vals = append(h.vals, binary.LittleEndian.Uint32(regs[i:]))
		}
		ram := make([]byte, 2<<20)
		mem := phys.FromSlice(ram)
		// The "device" has filled the memory the driver will get.
		for i := 1 << 20; i < len(ram) && len(dma) > 0; i += len(dma) {
			copy(ram[i:], dma)
		}
		start := time.Now()
		hba, err := Open(h, 0x1000, &mem, &bump{next: 1 << 20, end: 2 << 20}, Options{Timeout: time.Millisecond, ResetTimeout: time.Millisecond, MaxTransfer: 8192})
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for _, d := range hba.Disks() {
			d.ReadAt(buf, 0)
			d.WriteAt(buf[:512], 512)
			d.Flush()
			if g, err := d.Region(0, 4096, false); err == nil {
				g.ReadAt(buf[:512], 0)
			}
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %v", took)
		}
	})
}
