package vmm

import (
	"bytes"
	"testing"
)

// sinkPort collects OUT bytes and serves IN bytes from a counter.
type sinkPort struct {
	out  [4096]byte
	n    int
	next uint32
}

func (s *sinkPort) In(off uint16, size uint8) uint32 {
	v := uint32(0)
	for i := uint8(0); i < size; i++ {
		v |= (s.next & 0xff) << (8 * i)
		s.next++
	}
	return v
}

func (s *sinkPort) Out(off uint16, size uint8, v uint32) {
	for i := uint8(0); i < size && s.n < len(s.out); i++ {
		s.out[s.n] = byte(v >> (8 * i))
		s.n++
	}
}

func TestDecodeStringIO(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		mode int
		want strIO
		st   int
	}{
		{[]byte{0x6e}, 64, strIO{size: 1, seg: segDS, addrSize: 64, len: 1}, strOK},
		{[]byte{0xf3, 0x6f}, 64, strIO{rep: true, size: 4, seg: segDS, addrSize: 64, len: 2}, strOK},
		{[]byte{0x66, 0xf3, 0x48, 0x6f}, 64, strIO{rep: true, size: 2, seg: segDS, addrSize: 64, len: 4}, strOK},
		{[]byte{0x67, 0x64, 0x6e}, 64, strIO{size: 1, seg: segFS, addrSize: 32, len: 3}, strOK},
		{[]byte{0x2e, 0x6c}, 32, strIO{in: true, size: 1, seg: segES, addrSize: 32, len: 2}, strOK},
		{[]byte{0x67, 0x6d}, 32, strIO{in: true, size: 4, seg: segES, addrSize: 16, len: 2}, strOK},
		{[]byte{0x6d}, 16, strIO{in: true, size: 2, seg: segES, addrSize: 16, len: 1}, strOK},
		{[]byte{0x66, 0x67, 0x6f}, 16, strIO{size: 4, seg: segDS, addrSize: 32, len: 3}, strOK},
		{[]byte{0x48, 0x6f}, 32, strIO{}, strOther}, // DEC EAX in 32-bit mode
		{[]byte{0xf0, 0x6e}, 64, strIO{}, strOther},
		{[]byte{0xee}, 64, strIO{}, strOther},
		{[]byte{0xf3, 0x66}, 64, strIO{}, strTruncated},
		{nil, 64, strIO{}, strTruncated},
		{bytes.Repeat([]byte{0x66}, 15), 64, strIO{}, strOther},
	} {
		d, st := decodeStringIO(c.b, c.mode)
		if st != c.st || d != c.want {
			t.Errorf("% x (%d-bit): %+v %d, want %+v %d", c.b, c.mode, d, st, c.want, c.st)
		}
	}
}

func newStringEnv(t *testing.T) (*longEnv, *sinkPort) {
	e := newLongEnv(t)
	s := &sinkPort{}
	if err := e.IO().Register(0x3f8, 8, s); err != nil {
		t.Fatal(err)
	}
	return e, s
}

func (e *longEnv) stringStep(t *testing.T, code []byte, exit Exit, setup func(v *VCPU)) {
	t.Helper()
	e.code(t, code...)
	e.v.Regs = Regs{RFLAGS: rflagsFixed, RDX: uint64(exit.Port)}
	if setup != nil {
		setup(e.v)
	}
	loadSRegs(e.v)
	e.script(0, fakeStep{exit: exit, rip: envCodeVA, setRIP: true})
	e.step(e.v)
}

func TestStringIO(t *testing.T) {
	outsb := Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, String: true, Rep: true}
	t.Run("rep outsb", func(t *testing.T) {
		e, s := newStringEnv(t)
		writeRAM(t, e.Mem, envDataPA, []byte("hello, juice"))
		e.stringStep(t, []byte{0xf3, 0x6e}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 12 })
		if got := string(s.out[:s.n]); got != "hello, juice" {
			t.Fatalf("port got %q", got)
		}
		if r := e.v.Regs; r.RCX != 0 || r.RSI != envDataVA+12 || r.RIP != envCodeVA+2 {
			t.Fatalf("RCX %d RSI %#x RIP %#x", r.RCX, r.RSI, r.RIP)
		}
	})
	t.Run("rep outsd backwards across a page", func(t *testing.T) {
		e, s := newStringEnv(t)
		writeRAM(t, e.Mem, envDataPA+0xff8, []byte("AAAABBBB"))
		writeRAM(t, e.Mem, envData1PA, []byte("CCCCDDDD"))
		e.stringStep(t, []byte{0xf3, 0x6f}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 4, String: true, Rep: true}, func(v *VCPU) {
			v.Regs.RSI, v.Regs.RCX = envDataVA+0x1004, 4
			v.Regs.RFLAGS |= rflagsDF
		})
		if got := string(s.out[:s.n]); got != "DDDDCCCCBBBBAAAA" {
			t.Fatalf("port got %q", got)
		}
	})
	t.Run("outsw straddling pages", func(t *testing.T) {
		e, s := newStringEnv(t)
		writeRAM(t, e.Mem, envDataPA+0xfff, []byte("x"))
		writeRAM(t, e.Mem, envData1PA, []byte("y"))
		e.stringStep(t, []byte{0x66, 0x6f}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 2, String: true}, func(v *VCPU) {
			v.Regs.RSI = envDataVA + 0xfff
		})
		if got := string(s.out[:s.n]); got != "xy" || e.v.Regs.RIP != envCodeVA+2 {
			t.Fatalf("port got %q RIP %#x", got, e.v.Regs.RIP)
		}
	})
	t.Run("rep insb with fs override ignored", func(t *testing.T) {
		e, s := newStringEnv(t)
		s.next = 'a'
		e.stringStep(t, []byte{0x64, 0xf3, 0x6c}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, In: true, String: true, Rep: true}, func(v *VCPU) {
			v.Regs.RDI, v.Regs.RCX = envDataVA+0x100, 5
			v.SRegs.FS.Base = 0x1000
		})
		got, _ := e.Mem.Slice(envDataPA+0x100, 5)
		if string(got) != "abcde" || e.v.Regs.RDI != envDataVA+0x105 {
			t.Fatalf("RAM %q RDI %#x", got, e.v.Regs.RDI)
		}
	})
	t.Run("bounded per exit", func(t *testing.T) {
		e, s := newStringEnv(t)
		e.stringStep(t, []byte{0xf3, 0x6e}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 3000 })
		if s.n != maxStringPerExit || e.v.Regs.RCX != 3000-maxStringPerExit || e.v.Regs.RIP != envCodeVA {
			t.Fatalf("moved %d, RCX %d, RIP %#x", s.n, e.v.Regs.RCX, e.v.Regs.RIP)
		}
	})
	t.Run("rcx zero", func(t *testing.T) {
		e, s := newStringEnv(t)
		e.stringStep(t, []byte{0xf3, 0x6e}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 0 })
		if s.n != 0 || e.v.Regs.RIP != envCodeVA+2 {
			t.Fatalf("moved %d RIP %#x", s.n, e.v.Regs.RIP)
		}
	})
	t.Run("16-bit addressing wraps", func(t *testing.T) {
		e, s := newStringEnv(t)
		const code = 0x20000
		writeRAM(t, e.Mem, code, []byte{0x67, 0xf3, 0x6e}) // addr16 rep outsb in 32-bit mode
		writeRAM(t, e.Mem, 0x50000, []byte("Z"))
		writeRAM(t, e.Mem, 0x5ffff, []byte("Y"))
		setFlat32(e.v)
		e.v.SRegs.DS.Base = 0x50000
		e.v.Regs = Regs{RFLAGS: rflagsFixed, RSI: 0xabcd_ffff, RCX: 0x1234_0002, RDX: 0x3f8}
		loadSRegs(e.v)
		e.script(0, fakeStep{exit: outsb, rip: code, setRIP: true})
		e.step(e.v)
		if got := string(s.out[:s.n]); got != "YZ" || e.v.Regs.RSI != 0xabcd_0001 || e.v.Regs.RCX != 0x1234_0000 {
			t.Fatalf("port %q RSI %#x RCX %#x", got, e.v.Regs.RSI, e.v.Regs.RCX)
		}
	})
	t.Run("page fault midway", func(t *testing.T) {
		e, s := newStringEnv(t)
		e.stringStep(t, []byte{0xf3, 0x6e}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA+0x3ffe, 5 })
		if s.n != 2 || e.v.Regs.RCX != 3 || e.v.Regs.RSI != envDataVA+0x4000 || e.v.Regs.RIP != envCodeVA {
			t.Fatalf("moved %d RCX %d RSI %#x", s.n, e.v.Regs.RCX, e.v.Regs.RSI)
		}
		if !e.v.HasPending || e.v.Pending.Vector != VectorPF || e.v.Pending.ErrCode != 0 || e.v.SRegs.CR2 != envDataVA+0x4000 {
			t.Fatalf("pending %+v CR2 %#x", e.v.Pending, e.v.SRegs.CR2)
		}
	})
	t.Run("ins into a read-only page", func(t *testing.T) {
		e, _ := newStringEnv(t)
		e.pt.map4K(0x900000, envDataPA, fP)
		e.stringStep(t, []byte{0x6c}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, In: true, String: true}, func(v *VCPU) { v.Regs.RDI = 0x900000 })
		if !e.v.HasPending || e.v.Pending.ErrCode != pfP|pfW {
			t.Fatalf("pending %+v", e.v.Pending)
		}
	})
	t.Run("buffer on device memory", func(t *testing.T) {
		e, _ := newStringEnv(t)
		e.stringStep(t, []byte{0xf3, 0x6e}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDevGPA, 5 })
		e.wantStop(t, Fault, "string I/O on port 0x3f8 with a buffer at guest-physical 0xd0000000, which is not RAM")
	})
	t.Run("instruction changed", func(t *testing.T) {
		e, s := newStringEnv(t)
		e.stringStep(t, []byte{0xf3, 0x6c}, outsb, func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 5 })
		if s.n != 0 || e.v.Regs.RIP != envCodeVA || e.v.Regs.RCX != 5 || e.v.HasPending {
			t.Fatal("emulated an instruction that is not the one that exited")
		}
		e.wantRunning(t)
	})
	t.Run("exit port stops the loop", func(t *testing.T) {
		e, _ := newStringEnv(t)
		if err := e.AddExitPort(0xf4); err != nil {
			t.Fatal(err)
		}
		e.stringStep(t, []byte{0xf3, 0x6e}, Exit{Reason: ExitIO, Port: 0xf4, Size: 1, String: true, Rep: true},
			func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 100 })
		e.wantStop(t, Exited, "exit port")
		if e.v.Regs.RCX != 99 {
			t.Fatalf("RCX %d: the loop went on after the VM stopped", e.v.Regs.RCX)
		}
	})
}

// TestStringIOInstrLenMismatch: the backend's length must match the
// decoded instruction, else nothing is emulated.
func TestStringIOInstrLenMismatch(t *testing.T) {
	e, s := newStringEnv(t)
	e.stringStep(t, []byte{0xf3, 0x6e}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, String: true, Rep: true, InstrLen: 3},
		func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 5 })
	if s.n != 0 || e.v.Regs.RIP != envCodeVA {
		t.Fatal("emulated despite a length mismatch")
	}
	e.stringStep(t, []byte{0xf3, 0x6e}, Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, String: true, Rep: true, InstrLen: 2},
		func(v *VCPU) { v.Regs.RSI, v.Regs.RCX = envDataVA, 5 })
	if s.n != 5 || e.v.Regs.RIP != envCodeVA+2 {
		t.Fatalf("moved %d RIP %#x", s.n, e.v.Regs.RIP)
	}
}
