package platform

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/mm"
	"juice/mm/phys"
	"juice/vmm"
	"juice/vmm/acpi"
	"juice/vmm/apic"
	"juice/vmm/devices"
)

// guestStep is one exit of a scripted guest: it fills v.Exit (and
// registers); check, if set, runs at the next entry to inspect what the
// core did (the injected event is passed).
type guestStep func(v *vmm.VCPU)

// scriptBackend runs a scripted guest: each Run records the event being
// injected and reports the next step's exit.
type scriptBackend struct {
	mu       sync.Mutex
	steps    []guestStep
	pos      int
	injected []uint8
	window   bool
}

func (b *scriptBackend) Name() string { return "script" }
func (b *scriptBackend) NewVCPU(vm *vmm.VM, v *vmm.VCPU) (vmm.VCPUBackend, error) {
	return b, nil
}

func (b *scriptBackend) Run(v *vmm.VCPU) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v.HasPending {
		b.injected = append(b.injected, v.Pending.Vector)
		v.HasPending = false
	}
	v.SRegsDirty = false
	if b.pos >= len(b.steps) {
		v.Exit = vmm.Exit{Reason: vmm.ExitIO, Port: devices.DebugExitPort, Size: 1, InstrLen: 1}
		v.Regs.RAX = 99 // script ran out
		return nil
	}
	v.Exit = vmm.Exit{}
	b.steps[b.pos](v)
	b.pos++
	return nil
}
func (b *scriptBackend) GetSRegs(s *vmm.SRegs)               {}
func (b *scriptBackend) CanInjectInterrupt(v *vmm.VCPU) bool { return v.Regs.RFLAGS&(1<<9) != 0 }
func (b *scriptBackend) RequestInterruptWindow(on bool)      { b.window = on }
func (b *scriptBackend) Close()                              {}

func wrmsr(msr uint32, val uint64) guestStep {
	return func(v *vmm.VCPU) {
		v.Exit = vmm.Exit{Reason: vmm.ExitWRMSR, InstrLen: 2}
		v.Regs.RCX, v.Regs.RAX, v.Regs.RDX = uint64(msr), val&0xffffffff, val>>32
	}
}

func out(port uint16, size uint8, val uint32) guestStep {
	return func(v *vmm.VCPU) {
		v.Exit = vmm.Exit{Reason: vmm.ExitIO, Port: port, Size: size, InstrLen: 1}
		v.Regs.RAX = uint64(val)
	}
}

func hlt(v *vmm.VCPU) {
	v.Exit = vmm.Exit{Reason: vmm.ExitHLT, InstrLen: 1}
	v.Regs.RFLAGS |= 1 << 9
}

func nop(v *vmm.VCPU) { v.Exit = vmm.Exit{Reason: vmm.ExitNone} }

type testVM struct {
	vm      *vmm.VM
	pc      *PC
	be      *scriptBackend
	console bytes.Buffer
	events  []string
	mu      sync.Mutex
}

func (t *testVM) event(s string) {
	t.mu.Lock()
	t.events = append(t.events, s)
	t.mu.Unlock()
}

const testTSCHz = 2_100_000_000

func newTestVM(t *testing.T, steps ...guestStep) *testVM {
	t.Helper()
	buf := make([]byte, 48<<20)
	mem := phys.FromSlice(buf)
	var fr mm.Frames
	if st := fr.Init(&mem, []mm.Range{{Base: 0, End: uint64(len(buf))}}, []mm.Range{{Base: 0, End: 1 << 20}}); st != mm.OK {
		t.Fatal(st)
	}
	host := &vmm.Host{Mem: &mem, Frames: &fr}
	tv := &testVM{be: &scriptBackend{steps: steps}}
	base := time.Now()
	vm, err := vmm.New(vmm.Config{
		Name: "t", MemBytes: 32 << 20, VCPUs: 1,
		HostCPUID: hostCPUID,
		Clock:     func() int64 { return int64(time.Since(base)) },
		HostTSC:   func() uint64 { return uint64(time.Since(base)) * 21 / 10 },
	}, host, tv.be)
	if err != nil {
		t.Fatal(err)
	}
	tv.vm = vm
	pc, err := New(vm, Config{
		TSCHz:    testTSCHz,
		Wall:     func() time.Time { return time.Unix(1_800_000_000, 0) },
		PowerOff: func() { tv.event("poweroff"); vm.Stop(vmm.Exited, 0, "poweroff") },
		Reset:    func() { tv.event("reset"); vm.Stop(vmm.Reset, 0, "reset") },
		Panic:    func(ev uint8) { tv.event("panic"); vm.Stop(vmm.Panicked, -1, "panic") },
	}, &tv.console)
	if err != nil {
		t.Fatal(err)
	}
	tv.pc = pc
	exit := devices.NewExitPort(func(code int) { vm.Stop(vmm.Exited, code, "") })
	if err := vm.IO().Register(devices.DebugExitPort, devices.ExitPorts, exit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	return tv
}

// hostCPUID is an AMD-like host.
func hostCPUID(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
	switch leaf {
	case 0:
		return 0xd, 0x68747541, 0x444d4163, 0x69746e65
	case 1:
		return 0x00a00f11, 0, 0x80000000 | 1<<23, 1 << 9
	case 0x80000000:
		return 0x80000008, 0, 0, 0
	}
	return 0, 0, 0, 0
}

func TestCPUIDAndTables(t *testing.T) {
	tv := newTestVM(t)
	c := tv.vm.CPUID()
	if !c.Has(1, 0, 2, 21) || !c.Has(1, 0, 2, 24) {
		t.Error("x2APIC or TSC-deadline not offered")
	}
	_, b, cx, d := c.Lookup(0, vmm.CPUIDKVMBase, 0)
	var sig [12]byte
	binary.LittleEndian.PutUint32(sig[0:], b)
	binary.LittleEndian.PutUint32(sig[4:], cx)
	binary.LittleEndian.PutUint32(sig[8:], d)
	if string(sig[:]) != vmm.KVMSignature {
		t.Errorf("KVM signature %q", sig)
	}
	if a, _, _, _ := c.Lookup(0, vmm.CPUIDKVMFeatures, 0); a&vmm.KVMFeatureClocksource2 == 0 {
		t.Errorf("KVM features %#x lack kvmclock", a)
	}
	// juice's own signature stays at 0x40000000.
	if _, b, _, _ := c.Lookup(0, vmm.CPUIDHypervisorBase, 0); b != binary.LittleEndian.Uint32([]byte("juic")) {
		t.Errorf("juice signature moved: %#x", b)
	}
	// The RSDP is in guest RAM where the PC says.
	rsdp, ok := tv.vm.Mem.Slice(tv.pc.RSDP(), 8)
	if !ok || string(rsdp) != "RSD PTR " || tv.pc.RSDP() != acpi.DefaultBase {
		t.Errorf("RSDP at %#x: %q", tv.pc.RSDP(), rsdp)
	}
}

// A guest that does what Linux does with its clock: x2APIC on, the
// TSC-deadline timer armed, HLT until it fires, EOI; then S5.
func TestTSCDeadlineTimerWakesHLT(t *testing.T) {
	const vec = 0xec
	var check guestStep = func(v *vmm.VCPU) { nop(v) }
	tv := newTestVM(t,
		wrmsr(vmm.MSRAPICBase, acpi.DefaultLAPICAddr|apic.BaseEnable|apic.BaseEXTD|apic.BaseBSP),
		wrmsr(0x80f, apic.SVREnable|0xff), // SVR: software enable
		wrmsr(0x832, vec|2<<17),           // LVT timer: TSC-deadline mode
		func(v *vmm.VCPU) { wrmsr(MSRTSCDeadline, v.VM.HostTSC()+v.MSR.TSCOffset+2_100_000)(v) }, // 1 ms
		hlt,
		check,
		wrmsr(0x80b, 0), // EOI
		out(acpi.DefaultPM1aCntPort, 2, uint32(acpi.SlpTypS5)<<10|1<<13),
	)
	start := time.Now()
	reason, status, _ := tv.vm.Run()
	if reason != vmm.Exited || status != 0 {
		t.Fatalf("stopped %v %d", reason, status)
	}
	if len(tv.be.injected) != 1 || tv.be.injected[0] != vec {
		t.Fatalf("injected %v, want [%#x]", tv.be.injected, vec)
	}
	if d := time.Since(start); d < time.Millisecond {
		t.Errorf("HLT woke after %v, before the 1 ms deadline", d)
	}
	if tv.events[0] != "poweroff" {
		t.Errorf("events %v", tv.events)
	}
	// In service until the EOI, then idle.
	if isr := tv.pc.LAPIC(0).Read(apic.RegISR+0xe0, 4); isr != 0 {
		t.Errorf("ISR after EOI: %#x", isr)
	}
}

// COM1 input reaches the guest as an interrupt through the I/O APIC.
func TestUARTInputInterrupt(t *testing.T) {
	const vec = 0x24
	fed := make(chan struct{})
	tv := newTestVM(t,
		wrmsr(vmm.MSRAPICBase, acpi.DefaultLAPICAddr|apic.BaseEnable|apic.BaseEXTD|apic.BaseBSP),
		wrmsr(0x80f, apic.SVREnable|0xff),
		out(devices.COM1+1, 1, 1),    // IER: received data available
		out(devices.COM1+4, 1, 0x0b), // MCR: DTR, RTS, OUT2
		func(v *vmm.VCPU) { close(fed); hlt(v) },
	)
	// I/O APIC pin 4: vector vec, fixed, physical destination 0, edge.
	tv.pc.ioapic.Write(0, 4, 0x10+2*4)
	tv.pc.ioapic.Write(0x10, 4, vec)
	tv.pc.ioapic.Write(0, 4, 0x10+2*4+1)
	tv.pc.ioapic.Write(0x10, 4, 0)
	go func() {
		<-fed
		time.Sleep(5 * time.Millisecond)
		tv.pc.UART().Feed([]byte("ls\n"))
	}()
	reason, status, msg := tv.vm.Run()
	if reason != vmm.Exited || status != 99 {
		t.Fatalf("stopped %v %d %s", reason, status, msg)
	}
	if len(tv.be.injected) == 0 || tv.be.injected[0] != vec {
		t.Fatalf("injected %v, want %#x first", tv.be.injected, vec)
	}
}

func TestResetAndPanicPorts(t *testing.T) {
	for _, c := range []struct {
		name   string
		step   guestStep
		reason vmm.StopReason
		event  string
	}{
		{"cf9", out(acpi.DefaultResetPort, 1, acpi.DefaultResetValue), vmm.Reset, "reset"},
		{"8042", out(devices.KBCCommandPort, 1, 0xfe), vmm.Reset, "reset"},
		{"pvpanic", out(devices.PVPanicPort, 1, 1), vmm.Panicked, "panic"},
	} {
		tv := newTestVM(t, c.step)
		if reason, _, _ := tv.vm.Run(); reason != c.reason || len(tv.events) != 1 || tv.events[0] != c.event {
			t.Errorf("%s: stopped %v, events %v", c.name, reason, tv.events)
		}
	}
}

func TestKVMClock(t *testing.T) {
	const gpa = 0x5000
	tv := newTestVM(t, wrmsr(MSRKVMSystemTime, gpa|1), wrmsr(MSRKVMWallClock, gpa+0x100))
	tv.vm.Run()
	b, _ := tv.vm.Mem.Slice(gpa, 32)
	le := binary.LittleEndian
	if ver := le.Uint32(b); ver == 0 || ver&1 != 0 {
		t.Errorf("version %d: want even, non-zero", ver)
	}
	mul, shift := le.Uint32(b[24:]), int8(b[28])
	// Linux's pvclock_tsc_khz.
	khz := uint64(1_000_000) << 32 / uint64(mul)
	if shift < 0 {
		khz <<= -shift
	} else {
		khz >>= shift
	}
	if khz < testTSCHz/1000-1 || khz > testTSCHz/1000+1 {
		t.Errorf("guest would compute %d kHz, want %d", khz, testTSCHz/1000)
	}
	if b[29]&1 == 0 {
		t.Error("TSC stable flag missing")
	}
	w, _ := tv.vm.Mem.Slice(gpa+0x100, 12)
	if sec := le.Uint32(w[4:]); sec < 1_800_000_000-5 || sec > 1_800_000_000 {
		t.Errorf("wall clock at boot %d", sec)
	}
	// Outside RAM or across a page: ignored, no panic.
	tv2 := newTestVM(t, wrmsr(MSRKVMSystemTime, 1<<40|1), wrmsr(MSRKVMSystemTime, 0xff0|1))
	if r, st, _ := tv2.vm.Run(); r != vmm.Exited || st != 99 {
		t.Errorf("bad kvmclock addresses: %v %d", r, st)
	}
}

func TestPVClockScale(t *testing.T) {
	for _, hz := range []uint64{1, 1_000_000, 999_999_999, 1e9, 1_000_000_001, 2_100_000_000, 3_999_999_999, 5e9, 1 << 40} {
		mul, shift := PVClockScale(hz)
		if mul < 1<<31 {
			t.Errorf("%d Hz: mul %#x lacks precision", hz, mul)
		}
		// One second of ticks must scale to 1e9 ns within 1 ppm.
		d := hz
		if shift < 0 {
			d >>= -shift
		} else {
			d <<= shift
		}
		hi, lo := mulHi(d, uint64(mul))
		ns := hi<<32 | lo>>32
		if ns < 1e9-1000 || ns > 1e9+1000 {
			t.Errorf("%d Hz: 1 s scales to %d ns (mul %#x shift %d)", hz, ns, mul, shift)
		}
	}
}

func mulHi(a, b uint64) (uint64, uint64) {
	const mask = 1<<32 - 1
	a0, a1, b0, b1 := a&mask, a>>32, b&mask, b>>32
	lo := a0 * b0
	mid1, mid2 := a1*b0, a0*b1
	hi := a1*b1 + mid1>>32 + mid2>>32
	m := lo>>32 + mid1&mask + mid2&mask
	hi += m >> 32
	return hi, lo&mask | m<<32
}

func TestPanicWatcher(t *testing.T) {
	var out bytes.Buffer
	var got []string
	w := NewPanicWatcher(&out, func(r string) { got = append(got, r) })
	text := "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n" +
		"[    1.1] CPU: 0 PID: 1\n[    1.2] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n"
	for i := 0; i < len(text); i += 7 { // split writes
		w.Write([]byte(text[i:min(i+7, len(text))]))
	}
	if out.String() != text {
		t.Error("output changed")
	}
	if len(got) != 1 || got[0] != "VFS: Unable to mount root fs on unknown-block(0,0)" {
		t.Errorf("got %q", got)
	}
	w.Write([]byte("---[ end Kernel panic - not syncing: again ]---\n"))
	if len(got) != 1 {
		t.Error("fired twice")
	}
	// Long lines are cut, not grown.
	w2 := NewPanicWatcher(&out, nil)
	w2.Write([]byte(strings.Repeat("x", 10000) + "\n"))
}

// The platform's exit-path methods allocate nothing: the timer poll, the
// interrupt hand-off, the APIC MSRs a Linux guest writes on every tick
// (EOI, TSC deadline), its xAPIC page, COM1 and the PM timer.
func TestExitPathAllocations(t *testing.T) {
	tv := newTestVM(t)
	v := tv.vm.VCPU(0)
	p := tv.pc
	if h, ok := p.WriteMSR(v, vmm.MSRAPICBase, acpi.DefaultLAPICAddr|apic.BaseEnable|apic.BaseEXTD|apic.BaseBSP); !h || !ok {
		t.Fatal("x2APIC enable refused")
	}
	p.WriteMSR(v, 0x80f, apic.SVREnable|0xff)
	p.WriteMSR(v, 0x832, 0xec|2<<17)
	com1 := tv.vm.IO()
	allocs := testing.AllocsPerRun(1000, func() {
		p.Poll(v, tv.vm.Now())
		p.WriteMSR(v, MSRTSCDeadline, v.VM.HostTSC()+1000)
		p.Poll(v, tv.vm.Now()+1_000_000)
		if vec, ok := p.Pending(v); ok {
			p.Ack(v, vec)
		}
		p.WriteMSR(v, 0x80b, 0) // EOI
		p.ReadMSR(v, 0x808)
		p.ReadMSR(v, MSRKVMSystemTime)
		com1.Out(devices.COM1, 1, 'x')
		com1.In(devices.COM1+5, 1)
		com1.In(acpi.DefaultPMTimerPort, 4)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round", allocs)
	}
	// The xAPIC page, before x2APIC is switched on.
	tv2 := newTestVM(t)
	v2 := tv2.vm.VCPU(0)
	base, size := tv2.pc.LocalMMIO(v2)
	if base != acpi.DefaultLAPICAddr || size != 0x1000 {
		t.Fatalf("local window %#x+%#x", base, size)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		tv2.pc.LocalWrite(v2, apic.RegTPR, 4, 0)
		tv2.pc.LocalRead(v2, apic.RegID, 4)
	})
	if allocs != 0 {
		t.Errorf("xAPIC page: %v allocations per round", allocs)
	}
}
