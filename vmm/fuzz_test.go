package vmm

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// fuzzRAM is the guest RAM of the fuzz VMs; fuzzDev is where their device
// sits (just above RAM, and at the LAPIC address).
const (
	fuzzRAM     = 256 << 10
	fuzzDev     = fuzzRAM
	fuzzDevSize = 0x10000
	fuzzLAPIC   = 0xfee00000
	fuzzHost    = 2 << 20
)

// fuzzVM is a VM reused across fuzz iterations, with a copy of the host
// memory outside guest RAM to prove the core never writes there.
type fuzzVM struct {
	*testVM
	outside []byte // host memory outside guest RAM at setup
}

func newFuzzVM(tb testing.TB, clock func() int64) *fuzzVM {
	th := newTestHost(tb, fuzzHost)
	be := newFakeBackend()
	vm, err := New(Config{Name: "fuzz", MemBytes: fuzzRAM, VCPUs: 1, HostCPUID: fakeCPUID(amdVendor), Clock: clock}, &th.host, be)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(vm.Close)
	dev := &recDevice{useMem: true}
	if err := vm.MMIO().Register(fuzzDev, fuzzDevSize, dev); err != nil {
		tb.Fatal(err)
	}
	if err := vm.MMIO().Register(fuzzLAPIC, 0x1000, dev); err != nil {
		tb.Fatal(err)
	}
	if err := vm.IO().Register(0, 0x400, &sinkPort{}); err != nil {
		tb.Fatal(err)
	}
	if err := vm.AddExitPort(0xf4 + 0x400); err != nil {
		tb.Fatal(err)
	}
	fv := &fuzzVM{testVM: &testVM{VM: vm, th: th, be: be}}
	fv.outside = fv.snapshotOutside()
	return fv
}

// snapshotOutside copies host memory outside guest RAM.
func (fv *fuzzVM) snapshotOutside() []byte {
	hpa, size := fv.Mem.HPA(), fv.Mem.Size()
	out := append([]byte(nil), fv.th.buf[:hpa]...)
	return append(out, fv.th.buf[hpa+size:]...)
}

func (fv *fuzzVM) checkOutside(t *testing.T) {
	hpa, size := fv.Mem.HPA(), fv.Mem.Size()
	if !bytes.Equal(fv.th.buf[:hpa], fv.outside[:hpa]) || !bytes.Equal(fv.th.buf[hpa+size:], fv.outside[hpa:]) {
		t.Fatal("host memory outside guest RAM changed")
	}
}

// reset makes the VM runnable again after an iteration.
func (fv *fuzzVM) reset() {
	fv.state.Store(uint32(Running))
	fv.stopMsg = ""
	v := fv.VCPU(0)
	v.HasPending = false
	v.c.timerArmed = false
	for i := range v.c.irr {
		v.c.irr[i].Store(0)
	}
}

// fuzzInput reads little-endian values from fuzz data, zeros once empty.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) u8() uint8 {
	if len(in.b) == 0 {
		return 0
	}
	v := in.b[0]
	in.b = in.b[1:]
	return v
}

func (in *fuzzInput) u64() uint64 {
	var b [8]byte
	n := copy(b[:], in.b)
	in.b = in.b[n:]
	return binary.LittleEndian.Uint64(b[:])
}

// fuzzState sets up v's system state, registers and RAM from in.
func fuzzState(fv *fuzzVM, v *VCPU, in *fuzzInput) {
	ram, _ := fv.Mem.Slice(0, fv.Mem.Size())
	clear(ram)
	flags, flags2 := in.u8(), in.u8()
	s := SRegs{CR0: cr0PE}
	code := Segment{Attr: SegP | SegS | 0xb, Limit: 0xffffffff}
	data := Segment{Attr: SegP | SegS | 0x3, Limit: 0xffffffff}
	switch flags & 3 {
	case 0: // paging off
	case 1: // 32-bit paging
		s.CR0 |= cr0PG
	case 2: // PAE
		s.CR0 |= cr0PG
		s.CR4 |= cr4PAE
	case 3: // long mode
		s.CR0 |= cr0PG
		s.CR4 |= cr4PAE
		s.EFER |= eferLME | eferLMA
		if flags&4 != 0 {
			s.CR4 |= cr4LA57
		}
	}
	if flags&8 != 0 {
		code.Attr |= SegL
	}
	if flags&16 != 0 {
		code.Attr |= SegDB
	}
	if flags&32 != 0 {
		code.Attr |= SegDPL3
		data.Attr |= SegDPL3
	}
	if flags&64 != 0 {
		s.CR4 |= cr4SMAP | cr4SMEP
		s.CR0 |= cr0WP
	}
	if flags&128 != 0 {
		s.EFER |= eferNXE
	}
	if flags2&1 != 0 {
		s.CR0 &^= cr0PE | cr0PG // real mode
	}
	s.CS, s.DS, s.ES, s.FS, s.GS, s.SS = code, data, data, data, data, data
	ds, fs, gs := in.u64(), in.u64(), in.u64()
	if flags2&2 != 0 {
		s.DS.Base, s.FS.Base, s.GS.Base = ds, fs, gs
	}
	s.CR3 = in.u64()
	if flags2&4 != 0 {
		// Identity-mapping tables: 4-level with 1 GiB pages, or 32-bit
		// with 4 MiB pages, at 0x2000.
		s.CR3 = 0x2000
		if s.EFER&eferLMA != 0 {
			fv.Mem.Write(0x2000, 8, 0x3000|pteP|pteRW|pteUS)
			for i := uint64(0); i < 4; i++ {
				fv.Mem.Write(0x3000+i*8, 8, i<<30|pteP|pteRW|pteUS|ptePS)
			}
			if s.CR4&cr4LA57 != 0 {
				s.CR3 = 0x4000
				fv.Mem.Write(0x4000, 8, 0x2000|pteP|pteRW|pteUS)
			}
		} else if s.CR4&cr4PAE == 0 {
			s.CR4 |= cr4PSE
			for i := uint64(0); i < 1024; i++ {
				fv.Mem.Write(0x2000+i*4, 4, i<<22|pteP|pteRW|pteUS|ptePS)
			}
		}
	}
	var r Regs
	for _, p := range []*uint64{&r.RAX, &r.RBX, &r.RCX, &r.RDX, &r.RSI, &r.RDI, &r.RBP, &r.RSP, &r.R8, &r.R9} {
		*p = in.u64()
		if flags2&8 != 0 { // point the registers at the device
			*p = fuzzDev + *p%fuzzDevSize
		}
	}
	r.RFLAGS = rflagsFixed | uint64(in.u8())<<8&(rflagsTF|rflagsIF|rflagsDF) | uint64(in.u8())<<16&(rflagsAC|rflagsVM)
	r.RIP = in.u64()
	if flags2&16 != 0 {
		r.RIP = 0x1000 + r.RIP%16
	}
	var codeBytes [15]byte
	for i := range codeBytes {
		codeBytes[i] = in.u8()
	}
	fv.Mem.Write(0x1000+r.RIP%16, 8, binary.LittleEndian.Uint64(codeBytes[:8]))
	if b, ok := fv.Mem.Slice(0x1000+r.RIP%16, 15); ok {
		copy(b, codeBytes[:])
	}
	// The rest of the input fills RAM from 0x8000 (page tables, data).
	if rest, ok := fv.Mem.Slice(0x8000, uint64(min(len(in.b), fuzzRAM-0x8000))); ok {
		copy(rest, in.b)
	}
	v.Regs = r
	v.SRegs = s
	loadSRegs(v)
}

// fuzzSeed builds fuzzState input: flags, flags2, zero bases, CR3,
// registers, RFLAGS and RIP, then the code bytes.
func fuzzSeed(flags, flags2 byte, code ...byte) []byte {
	b := make([]byte, 2+8*3+8+8*10+2+8)
	b[0], b[1] = flags, flags2
	return append(b, code...)
}

// FuzzEmulate: random instruction bytes at RIP, random registers, system
// state and page tables, and an MMIO exit: the emulator never panics and
// never touches host memory outside the guest's RAM.
func FuzzEmulate(f *testing.F) {
	seed := fuzzSeed
	f.Add(seed(3|8|128, 4|8|16, 0x89, 0x18), uint64(fuzzDev+8), true)
	f.Add(seed(3|8, 4|8|16, 0xf3, 0x48, 0xab), uint64(fuzzDev), true)
	f.Add(seed(3|8, 4|8|16, 0xf3, 0xa5), uint64(fuzzDev), false)
	f.Add(seed(1|16, 4|8|16, 0x67, 0x8b, 0x07), uint64(fuzzDev), false)
	f.Add(seed(0, 1|8|16, 0x8b, 0x00), uint64(fuzzDev), false)
	f.Add(seed(3|4|8|32|64, 4|8|16, 0x0f, 0xb6, 0x40, 0x10), uint64(fuzzLAPIC), false)
	f.Add(seed(2|16, 2|8|16, 0x65, 0xa1, 0, 0, 0, 0), uint64(fuzzDev), false)
	f.Add([]byte{}, uint64(0), false)
	fv := newFuzzVM(f, nil)
	f.Fuzz(func(t *testing.T, data []byte, gpa uint64, write bool) {
		fv.reset()
		v := fv.VCPU(0)
		in := &fuzzInput{b: data}
		fuzzState(fv, v, in)
		if gpa < fuzzRAM {
			gpa += fuzzDev // keep most exits on the device
		}
		fv.script(0, fakeStep{exit: Exit{Reason: ExitMMIO, GPA: gpa, Write: write}})
		rip := v.Regs.RIP
		fv.step(v)
		fv.checkOutside(t)
		if r, _, _ := fv.Stopped(); r == Running && !v.HasPending && !ripStep(rip, v.Regs.RIP) {
			t.Fatalf("RIP moved from %#x to %#x", rip, v.Regs.RIP)
		}
	})
}

// ripStep reports whether RIP went from old to new by re-executing (no
// change) or by completing one instruction (1-15 bytes, IP/EIP wrapping).
func ripStep(old, new uint64) bool {
	for k := uint64(0); k <= 15; k++ {
		if n := old + k; new == n || new == n&0xffff || new == n&0xffffffff {
			return true
		}
	}
	return false
}

// FuzzExit: any exit record and register state through the whole
// dispatcher: no panic, no host memory outside RAM touched, no hang.
func FuzzExit(f *testing.F) {
	long := func(code ...byte) []byte { return fuzzSeed(3|8, 4|16, code...) }
	f.Add([]byte{}, uint8(ExitCPUID), uint8(2), uint16(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(long(0x0f, 0xa2), uint8(ExitCPUID), uint8(0), uint16(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(long(0x66, 0xed), uint8(ExitIO), uint8(0), uint16(0), uint8(2), uint8(1), uint64(0), uint8(0))
	f.Add(long(0xf3, 0x6e), uint8(ExitIO), uint8(0), uint16(0), uint8(1), uint8(6), uint64(0), uint8(0))
	f.Add(long(0xf4), uint8(ExitHLT), uint8(0), uint16(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(long(0x0f, 0x01, 0xd9), uint8(ExitHypercall), uint8(0), uint16(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(long(0x0f, 0x30), uint8(ExitWRMSR), uint8(0), uint16(0), uint8(0), uint8(0), uint64(0), uint8(0))
	f.Add(long(), uint8(ExitException), uint8(0), uint16(0), uint8(0), uint8(32), uint64(0x5000), uint8(14))
	f.Add(fuzzSeed(3|8, 4|8|16, 0x89, 0x18), uint8(ExitMMIO), uint8(0), uint16(0), uint8(0), uint8(8), uint64(fuzzDev+4), uint8(0))
	// A clock that leaps 20 s per reading: an armed timer is always due,
	// so HLT never blocks for long.
	var now atomic.Int64
	fv := newFuzzVM(f, func() int64 { return now.Add(20e9) })
	f.Fuzz(func(t *testing.T, data []byte, reason, instrLen uint8, port uint16, size, bits uint8, info uint64, vector uint8) {
		fv.reset()
		v := fv.VCPU(0)
		in := &fuzzInput{b: data}
		fuzzState(fv, v, in)
		e := Exit{Reason: ExitReason(reason % (uint8(numExitReasons) + 2)), InstrLen: instrLen, Port: port, Size: size,
			In: bits&1 != 0, String: bits&2 != 0, Rep: bits&4 != 0, Write: bits&8 != 0, Fetch: bits&16 != 0,
			GPA: info, Info2: info, Vector: vector, ErrCode: uint32(info), HasErr: bits&32 != 0}
		if e.Reason == ExitHLT && bits&64 == 0 {
			v.Regs.RFLAGS &^= rflagsIF // mostly: halted forever, never blocks
		}
		fv.script(0, fakeStep{exit: e})
		fv.step(v)
		fv.checkOutside(t)
	})
}
