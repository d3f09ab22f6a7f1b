package pci_test

import (
	"encoding/binary"
	"testing"

	"juice/vmm/pci"
)

// Fuzz program opcodes (op byte % opCount).
const (
	opECAMRead = iota
	opECAMWrite
	opAddrOut
	opAddrIn
	opDataIn
	opDataOut
	opWinRead
	opWinWrite
	opINTx
	opMSIX
	opCount
)

// fuzzSizes are the access sizes a program can pick (invalid ones too).
var fuzzSizes = [8]uint8{1, 2, 4, 8, 1, 4, 3, 0}

// reader hands out a program's bytes, zeros once they run out.
type reader struct {
	b []byte
	i int
}

func (r *reader) u8() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) u16() uint16 { return uint16(r.u8()) | uint16(r.u8())<<8 }
func (r *reader) u32() uint32 { return uint32(r.u16()) | uint32(r.u16())<<16 }
func (r *reader) u64() uint64 { return uint64(r.u32()) | uint64(r.u32())<<32 }

// fuzzRig is a bus with two devices and callbacks that check the
// invariants without allocating.
type fuzzRig struct {
	b        *pci.Bus
	f, g     *pci.Function
	level    [24]bool
	badIRQ   bool
	badMSI   bool
	nirq     int
	nmsi     int
	lastAddr uint64
}

func newFuzzRig(t testing.TB) *fuzzRig {
	r := &fuzzRig{}
	r.b = pci.NewBus(func(gsi int, level bool) {
		r.nirq++
		if gsi < pci.INTxGSIBase || gsi > pci.INTxGSIBase+3 || r.level[gsi] == level {
			r.badIRQ = true
			return
		}
		r.level[gsi] = level
	}, func(addr uint64, data uint32) {
		r.nmsi++
		if addr>>20 != 0xFEE {
			r.badMSI, r.lastAddr = true, addr
		}
	})
	r.f = newFunction(t, virtioLike(&fakeBAR{id: 1}, &fakeBAR{id: 2}, 70))
	gc := pci.FunctionConfig{VendorID: 0x8086, DeviceID: 0x100e, ClassCode: 0x020000, InterruptPin: 2}
	gc.BARs[1] = pci.BARConfig{Size: 0x20000, Handler: &fakeBAR{id: 3}}
	gc.BARs[2] = pci.BARConfig{Size: 1 << 32, Is64: true}
	r.g = newFunction(t, gc)
	add(t, r.b, 1, r.f)
	add(t, r.b, 2, r.g)
	return r
}

// run executes a program.
func (r *fuzzRig) run(prog []byte) {
	rd := reader{b: prog}
	a, d := r.b.ConfigPorts()
	e, w := r.b.ECAM(), r.b.Window()
	for steps := 0; rd.i < len(rd.b) && steps < 4096; steps++ {
		op := rd.u8()
		size := fuzzSizes[op>>5&7]
		switch (op & 0x1F) % opCount {
		case opECAMRead:
			e.Read(uint64(rd.u32())&(pci.ECAMSize*2-1), size)
		case opECAMWrite:
			// Mostly devices 0-3 so writes land somewhere.
			off := uint64(rd.u8()&3)<<15 | uint64(rd.u16())&0x7FFF
			e.Write(off, size, rd.u64())
		case opAddrOut:
			a.Out(uint16(rd.u8()&3), size, 0x80000000|rd.u32()&0x8000FFFF)
		case opAddrIn:
			a.In(uint16(rd.u8()&3), size)
		case opDataIn:
			d.In(uint16(rd.u8()&3), size)
		case opDataOut:
			d.Out(uint16(rd.u8()&3), size, rd.u32())
		case opWinRead:
			w.Read(uint64(rd.u32())&(pci.WindowSize-1), size)
		case opWinWrite:
			w.Write(uint64(rd.u32())&(pci.WindowSize-1), size, rd.u64())
		case opINTx:
			if v := rd.u8(); v&2 == 0 {
				r.f.SetINTx(v&1 != 0)
			} else {
				r.g.SetINTx(v&1 != 0)
			}
		case opMSIX:
			r.f.SignalMSIX(int(int8(rd.u8())))
		}
	}
}

// check verifies what no program may change.
func (r *fuzzRig) check(t *testing.T) {
	t.Helper()
	c := cfg{r.b}
	if r.badIRQ || r.badMSI {
		t.Fatalf("bad irq %v, bad msi %v (addr %#x)", r.badIRQ, r.badMSI, r.lastAddr)
	}
	if c.r(0, 0, 4) != 0x00081b36 || c.r(1, 0, 4) != 0x10411af4 || c.r(2, 0, 4) != 0x100e8086 {
		t.Fatal("IDs changed")
	}
	if c.r(1, 0x34, 1) != 0x40 || c.r(1, 0x40, 2) != 0x4C11 || c.r(1, 0x4C, 1) != 9 || c.r(1, 0x4D, 1) != 0x5C || c.r(1, 0x5D, 1) != 0 {
		t.Fatal("capability list changed")
	}
	for dev := 0; dev < 3; dev++ {
		if cmd := c.r(dev, 4, 2); cmd&^0x406 != 0 {
			t.Fatalf("device %d command %#x", dev, cmd)
		}
		if c.r(dev, 0x0E, 1) != 0 || c.r(dev, 0x100, 4) != 0 {
			t.Fatalf("device %d header type or extended space changed", dev)
		}
	}
	if c.r(2, 0x10, 4) != 0 || c.r(2, 0x28, 4)&0xFFFFFFF0 != 0 {
		t.Fatal("unused BAR or 4 GiB BAR low bits writable")
	}
	// The interrupt line levels match the devices' state.
	for line := 0; line < 4; line++ {
		want := false
		for _, s := range []struct {
			dev int
			f   *pci.Function
			pin int
		}{{1, r.f, 1}, {2, r.g, 2}} {
			if (s.dev+s.pin-1)&3 != line {
				continue
			}
			asserted := c.r(s.dev, 6, 2)&8 != 0 && c.r(s.dev, 4, 2)&pci.CommandINTxDisable == 0 && !s.f.MSIXEnabled()
			want = want || asserted
		}
		if r.level[20+line] != want {
			t.Fatalf("GSI %d is %v, want %v", 20+line, r.level[20+line], want)
		}
	}
}

// seedProgram builds a program that sets up device 1 for MSI-X and
// signals it.
func seedProgram() []byte {
	var p []byte
	ecamW := func(dev int, reg uint16, sizeIdx byte, v uint64) {
		p = append(p, opECAMWrite|sizeIdx<<5, byte(dev))
		p = binary.LittleEndian.AppendUint16(p, reg)
		p = binary.LittleEndian.AppendUint64(p, v)
	}
	winW := func(gpa uint32, sizeIdx byte, v uint64) {
		p = append(p, opWinWrite|sizeIdx<<5)
		p = binary.LittleEndian.AppendUint32(p, gpa-pci.WindowBase)
		p = binary.LittleEndian.AppendUint64(p, v)
	}
	ecamW(1, 0x20, 2, 0xC0010000)          // BAR 4
	ecamW(1, 0x10, 2, 0xC0000000)          // BAR 0
	ecamW(1, 0x04, 1, 6)                   // memory + bus master
	ecamW(1, 0x42, 1, 0xC000)              // MSI-X enable + mask
	winW(0xC0013000, 3, 0xFEE00000)        // vector 0 address
	winW(0xC0013008, 3, 0x41)              // data 0x41, unmasked
	p = append(p, opMSIX, 0)               // pending
	ecamW(1, 0x43, 0, 0x80)                // function unmask: delivered
	p = append(p, opMSIX, 0, opMSIX, 0x80) // delivered; bad vector (-128)
	p = append(p, opINTx, 1, opINTx, 3)    // both levels high
	ecamW(2, 0x04, 1, 0x400)               // device 2 INTx disable
	p = append(p, opWinRead|3<<5)
	p = binary.LittleEndian.AppendUint32(p, 0x13800)
	p = append(p, opAddrOut|2<<5, 0)
	p = binary.LittleEndian.AppendUint32(p, 0x80000810)
	p = append(p, opDataOut|2<<5, 0, 0xFF, 0xFF, 0xFF, 0xFF, opDataIn|2<<5, 0)
	return p
}

// TestFuzzSeed checks that the seed program does what it says, so the
// fuzzer starts from a device with MSI-X and INTx in use.
func TestFuzzSeed(t *testing.T) {
	r := newFuzzRig(t)
	r.run(seedProgram())
	r.check(t)
	if r.nmsi != 2 || r.nirq != 2 || r.b.DroppedMSIs() != 1 {
		t.Errorf("seed: %d messages, %d irq calls, %d dropped; want 2, 2, 1", r.nmsi, r.nirq, r.b.DroppedMSIs())
	}
}

func FuzzBus(f *testing.F) {
	f.Add([]byte{})
	f.Add(seedProgram())
	f.Add([]byte{opECAMWrite | 2<<5, 1, 0x04, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, opINTx, 1})
	f.Fuzz(func(t *testing.T, prog []byte) {
		r := newFuzzRig(t)
		r.run(prog)
		r.check(t)
		// Replaying the program must not allocate.
		if n := testing.AllocsPerRun(2, func() { r.run(prog) }); n != 0 {
			t.Fatalf("%v allocations per run", n)
		}
		r.check(t)
	})
}
