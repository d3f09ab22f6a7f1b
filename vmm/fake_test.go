package vmm

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"juice/mm"
	"juice/mm/phys"
)

// testHost is host memory for tests: a byte slice with a frame allocator.
type testHost struct {
	buf  []byte
	mem  phys.Mem
	fr   mm.Frames
	host Host
}

const testHostSize = 8 << 20

func newTestHost(tb testing.TB, size int) *testHost {
	tb.Helper()
	h := &testHost{buf: make([]byte, size)}
	for i := range h.buf {
		h.buf[i] = 0x5a // garbage: zeroing must be done by AllocPages
	}
	h.mem = phys.FromSlice(h.buf)
	if st := h.fr.Init(&h.mem, []mm.Range{{Base: 0, End: uint64(size)}}, []mm.Range{{Base: 0, End: 1 << 20}}); st != mm.OK {
		tb.Fatalf("Frames.Init: %v", st)
	}
	h.host = Host{Mem: &h.mem, Frames: &h.fr}
	return h
}

// fakeStep is one scripted exit.
type fakeStep struct {
	exit Exit
	// rip, if setRIP, is the guest RIP at this exit.
	rip    uint64
	setRIP bool
	// pre, if set, runs after the exit is filled in, to set registers or
	// change the exit (built once, not per exit: calling it allocates
	// nothing).
	pre func(v *VCPU)
}

// fakeBackend is a scripted backend: each Run reports the next exit of
// the vCPU's script.
type fakeBackend struct {
	vcpus   []*fakeVCPU
	failAt  int // NewVCPU fails for this vCPU id (-1: never)
	closed  int
	created int
}

func newFakeBackend() *fakeBackend { return &fakeBackend{failAt: -1} }

func (b *fakeBackend) Name() string { return "fake" }

func (b *fakeBackend) NewVCPU(vm *VM, v *VCPU) (VCPUBackend, error) {
	if v.ID == b.failAt {
		return nil, errors.New("no VMCB for you")
	}
	f := &fakeVCPU{be: b, canInject: true}
	b.vcpus = append(b.vcpus, f)
	b.created++
	return f, nil
}

// fakeVCPU is one scripted vCPU.
type fakeVCPU struct {
	be     *fakeBackend
	script []fakeStep
	pos    int
	loop   bool // restart the script at its end (benchmarks)

	sregs     SRegs // the "hardware" system state
	msr       MSRState
	msrLoads  int
	sregLoads int
	getSRegs  int
	runs      int

	canInject bool
	window    bool
	windowOn  int

	injected  [64]Event
	nInjected int

	runErr error
	closed bool
}

func (f *fakeVCPU) Run(v *VCPU) error {
	f.runs++
	if f.runErr != nil {
		return f.runErr
	}
	if v.SRegsDirty {
		f.sregs = v.SRegs
		v.SRegsDirty = false
		f.sregLoads++
	}
	if v.MSRDirty {
		f.msr = v.MSR
		v.MSRDirty = false
		f.msrLoads++
	}
	if v.HasPending {
		f.injected[f.nInjected%len(f.injected)] = v.Pending
		f.nInjected++
		v.HasPending = false
	}
	if f.pos >= len(f.script) {
		if !f.loop || len(f.script) == 0 {
			v.Exit = Exit{Reason: ExitInvalid}
			v.Exit.DetailLen = uint8(copy(v.Exit.Detail[:], "script ended"))
			return nil
		}
		f.pos = 0
	}
	s := &f.script[f.pos]
	f.pos++
	if s.setRIP {
		v.Regs.RIP = s.rip
	}
	v.Exit = s.exit
	if s.pre != nil {
		s.pre(v)
	}
	return nil
}

func (f *fakeVCPU) GetSRegs(s *SRegs) { *s = f.sregs; f.getSRegs++ }

func (f *fakeVCPU) CanInjectInterrupt(v *VCPU) bool {
	return f.canInject && v.Regs.RFLAGS&rflagsIF != 0
}

func (f *fakeVCPU) RequestInterruptWindow(on bool) {
	f.window = on
	f.windowOn++
}

func (f *fakeVCPU) Close() { f.closed = true; f.be.closed++ }

// lastInjected returns the most recent injected event.
func (f *fakeVCPU) lastInjected() (Event, bool) {
	if f.nInjected == 0 {
		return Event{}, false
	}
	return f.injected[(f.nInjected-1)%len(f.injected)], true
}

// fakeCPUID is a host CPUID that reports every feature bit (so that the
// policy's masking shows) with the given vendor.
func fakeCPUID(vendor string) CPUIDFunc {
	v := []byte(vendor)
	b := binary.LittleEndian.Uint32(v[0:4])
	d := binary.LittleEndian.Uint32(v[4:8])
	c := binary.LittleEndian.Uint32(v[8:12])
	return func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
		switch leaf {
		case 0:
			return 0x20, b, c, d
		case 1:
			return 0x000906ea, 0xff08ff11, 0x7fffffff, 0xffffffff
		case 2:
			return 0x00feff01, 0, 0, 0x00c30000
		case 4:
			// L1d, L1i, L2, L3, then none.
			types := []uint32{1 | 1<<5, 2 | 1<<5, 3 | 2<<5, 3 | 3<<5}
			if sub < uint32(len(types)) {
				return types[sub] | 0x3fff<<14 | 0x3f<<26, 0x01c0003f, 0x3f, 0
			}
			return 0, 0, 0, 0
		case 5, 6, 0xa, 0xd:
			return 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff
		case 7:
			if sub == 0 {
				return 2, 0xffffffff, 0xffffffff, 0xffffffff
			}
			return 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff
		case 0xb, 0x1f:
			return 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff
		case 0x15:
			return 2, 176, 24000000, 0
		case 0x16:
			return 2100, 4000, 100, 0
		case 0x80000000:
			return 0x80000021, b, c, d
		case 0x80000001:
			return 0x00a00f11, 0x20000000, 0xffffffff, 0xffffffff
		case 0x80000002, 0x80000003, 0x80000004:
			s := []byte("Fake CPU @ 1.00GHz, a brand string padded to 48 bytes.")[:48]
			o := (leaf - 0x80000002) * 16
			w := func(i uint32) uint32 { return binary.LittleEndian.Uint32(s[o+i : o+i+4]) }
			return w(0), w(4), w(8), w(12)
		case 0x80000005, 0x80000006:
			return 0x11223344, 0x55667788, 0x99aabbcc, 0xddeeff00
		case 0x80000007, 0x8000000a, 0x8000001f, 0x80000021:
			return 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff
		case 0x80000008:
			return 0x00303030, 0xffffffff, 0xffffffff, 0xffffffff
		}
		if leaf <= 0x20 || leaf >= 0x80000000 && leaf <= 0x80000021 {
			return 0xdeadbeef, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef
		}
		return 0, 0, 0, 0
	}
}

const (
	intelVendor = "GenuineIntel"
	amdVendor   = "AuthenticAMD"
	testRAM     = 512 << 10
)

// testVM is a VM on the fake backend.
type testVM struct {
	*VM
	th *testHost
	be *fakeBackend
}

func newTestVM(tb testing.TB, cfg Config) *testVM {
	tb.Helper()
	th := newTestHost(tb, testHostSize)
	be := newFakeBackend()
	if cfg.MemBytes == 0 {
		cfg.MemBytes = testRAM
	}
	if cfg.VCPUs == 0 {
		cfg.VCPUs = 1
	}
	if cfg.HostCPUID == nil {
		cfg.HostCPUID = fakeCPUID(intelVendor)
	}
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	vm, err := New(cfg, &th.host, be)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(vm.Close)
	return &testVM{VM: vm, th: th, be: be}
}

// fake returns vCPU id's fake backend state.
func (t *testVM) fake(id int) *fakeVCPU { return t.be.vcpus[id] }

// script sets vCPU id's exits.
func (t *testVM) script(id int, steps ...fakeStep) { t.fake(id).script, t.fake(id).pos = steps, 0 }

// wantStop checks the VM stopped with reason and a message containing sub.
func (t *testVM) wantStop(tb testing.TB, reason StopReason, sub string) {
	tb.Helper()
	r, _, msg := t.Stopped()
	if r != reason || !strings.Contains(msg, sub) {
		tb.Fatalf("stopped %v %q, want %v containing %q", r, msg, reason, sub)
	}
}

// wantRunning checks the VM has not stopped.
func (t *testVM) wantRunning(tb testing.TB) {
	tb.Helper()
	if r, _, msg := t.Stopped(); r != Running {
		tb.Fatalf("VM stopped: %v %q", r, msg)
	}
}

// setFlat32 puts vCPU v in 32-bit protected mode, paging off, flat
// segments (what the loader does), and loads it into the fake hardware.
func setFlat32(v *VCPU) {
	code := Segment{Selector: 8, Limit: 0xffffffff, Attr: SegP | SegS | SegDB | SegG | 0xb}
	data := Segment{Selector: 0x10, Limit: 0xffffffff, Attr: SegP | SegS | SegDB | SegG | 0x3}
	v.SRegs = SRegs{CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR: Segment{Attr: SegP | 0xb, Limit: 0x67}, CR0: cr0PE | 1<<4}
	v.Regs.RFLAGS = rflagsFixed
	v.SRegsValid, v.SRegsDirty = true, true
	v.backend.(*fakeVCPU).sregs = v.SRegs
}

// pageTables builds 4-level page tables in guest RAM from a bump
// allocator.
type pageTables struct {
	mem  *GuestMemory
	root uint64
	next uint64
}

func newPageTables(mem *GuestMemory, at uint64) *pageTables {
	pt := &pageTables{mem: mem, root: at, next: at + 0x1000}
	s, _ := mem.Slice(at, 0x1000)
	clear(s)
	return pt
}

// Leaf flags for mapping tests.
const (
	fP  = pteP
	fRW = pteRW
	fUS = pteUS
)

// map4K maps va to pa with the leaf flags; tables get P|RW|US.
func (pt *pageTables) map4K(va, pa, flags uint64) {
	table := pt.root
	for lvl := 4; lvl > 1; lvl-- {
		idx := va >> (12 + 9*(lvl-1)) & 0x1ff
		e, _ := pt.mem.Read(table+idx*8, 8)
		if e&pteP == 0 {
			n := pt.next
			pt.next += 0x1000
			s, _ := pt.mem.Slice(n, 0x1000)
			clear(s)
			e = n | pteP | pteRW | pteUS
			pt.mem.Write(table+idx*8, 8, e)
		}
		table = e & pteAddr
	}
	pt.mem.Write(table+(va>>12&0x1ff)*8, 8, pa|flags)
}

// setLong64 puts v in 64-bit mode with page tables pt (CPL 0).
func setLong64(v *VCPU, pt *pageTables) {
	code := Segment{Selector: 8, Attr: SegP | SegS | SegL | SegG | 0xb}
	data := Segment{Selector: 0x10, Attr: SegP | SegS | SegDB | SegG | 0x3}
	v.SRegs = SRegs{CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:  Segment{Attr: SegP | 0xb, Limit: 0x67},
		CR0: cr0PE | cr0PG | cr0WP | 1<<4, CR3: pt.root, CR4: cr4PAE, EFER: eferLME | eferLMA | eferNXE | eferSCE}
	v.Regs.RFLAGS = rflagsFixed
	v.SRegsValid, v.SRegsDirty = true, true
	v.backend.(*fakeVCPU).sregs = v.SRegs
}

// loadSRegs makes the fake hardware hold v.SRegs (as if entered).
func loadSRegs(v *VCPU) {
	v.backend.(*fakeVCPU).sregs = v.SRegs
	v.SRegsDirty = false
	v.SRegsValid = false
}

// recDevice is an MMIO and port device that records accesses in fixed
// storage (no allocation) and returns readVal for reads.
type recDevice struct {
	readVal   uint64
	reads     int
	writes    int
	lastOff   uint64
	lastSize  uint8
	lastWrite uint64
	mem       [64]byte // backing store for stos/movs checks
	useMem    bool
}

func (d *recDevice) Read(off uint64, size uint8) uint64 {
	d.reads++
	d.lastOff, d.lastSize = off, size
	if d.useMem && off+uint64(size) <= uint64(len(d.mem)) {
		var b [8]byte
		copy(b[:], d.mem[off:off+uint64(size)])
		return binary.LittleEndian.Uint64(b[:])
	}
	return d.readVal
}

func (d *recDevice) Write(off uint64, size uint8, v uint64) {
	d.writes++
	d.lastOff, d.lastSize, d.lastWrite = off, size, v
	if d.useMem && off+uint64(size) <= uint64(len(d.mem)) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		copy(d.mem[off:off+uint64(size)], b[:size])
	}
}

func (d *recDevice) In(off uint16, size uint8) uint32 {
	return uint32(d.Read(uint64(off), size))
}

func (d *recDevice) Out(off uint16, size uint8, v uint32) { d.Write(uint64(off), size, uint64(v)) }

// writeRAM copies b into guest RAM at gpa.
func writeRAM(tb testing.TB, m *GuestMemory, gpa uint64, b []byte) {
	tb.Helper()
	s, ok := m.Slice(gpa, uint64(len(b)))
	if !ok {
		tb.Fatalf("writeRAM %#x+%d outside RAM", gpa, len(b))
	}
	copy(s, b)
}
