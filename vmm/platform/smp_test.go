package platform

import (
	"runtime"
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

// The multiprocessor tests: a scripted guest per vCPU, on the real core
// and platform, each vCPU on its own goroutine.

// mpBackend gives each vCPU its own script.
type mpBackend struct {
	mu     sync.Mutex
	vcpus  []*mpVCPU
	script map[int][]guestStep
}

func (b *mpBackend) Name() string { return "mp-script" }
func (b *mpBackend) NewVCPU(vm *vmm.VM, v *vmm.VCPU) (vmm.VCPUBackend, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &mpVCPU{steps: b.script[v.ID]}
	b.vcpus = append(b.vcpus, c)
	return c, nil
}

// mpVCPU is one vCPU's script; when it ends the vCPU idles in HLT with
// interrupts on.
type mpVCPU struct {
	mu       sync.Mutex
	steps    []guestStep
	pos      int
	sregs    vmm.SRegs // loaded state (what "hardware" holds)
	injected []uint8
}

func (c *mpVCPU) Run(v *vmm.VCPU) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.SRegsDirty {
		c.sregs = v.SRegs
		v.SRegsDirty = false
	}
	if v.HasPending {
		c.injected = append(c.injected, v.Pending.Vector)
		v.HasPending = false
	}
	v.Exit = vmm.Exit{}
	if c.pos >= len(c.steps) {
		hlt(v)
		return nil
	}
	step := c.steps[c.pos]
	c.pos++
	c.mu.Unlock()
	step(v) // may block (a guest spinning), without the lock
	c.mu.Lock()
	return nil
}
func (c *mpVCPU) GetSRegs(s *vmm.SRegs)               { c.mu.Lock(); *s = c.sregs; c.mu.Unlock() }
func (c *mpVCPU) CanInjectInterrupt(v *vmm.VCPU) bool { return v.Regs.RFLAGS&(1<<9) != 0 }
func (c *mpVCPU) RequestInterruptWindow(on bool)      {}
func (c *mpVCPU) Close()                              {}

// got returns the vectors injected so far and the loaded CS.
func (c *mpVCPU) got() ([]uint8, vmm.Segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint8(nil), c.injected...), c.sregs.CS
}

type mpVM struct {
	vm     *vmm.VM
	pc     *PC
	be     *mpBackend
	events chan string
}

// newMPVM builds an n-vCPU VM on the platform with a script per vCPU
// (script may refer to the VM it is given).
func newMPVM(t *testing.T, n int, script func(m *mpVM) map[int][]guestStep) *mpVM {
	t.Helper()
	buf := make([]byte, 48<<20)
	mem := phys.FromSlice(buf)
	var fr mm.Frames
	if st := fr.Init(&mem, []mm.Range{{Base: 0, End: uint64(len(buf))}}, []mm.Range{{Base: 0, End: 1 << 20}}); st != mm.OK {
		t.Fatal(st)
	}
	host := &vmm.Host{Mem: &mem, Frames: &fr}
	m := &mpVM{be: &mpBackend{}, events: make(chan string, 16)}
	m.be.script = script(m)
	base := time.Now()
	vm, err := vmm.New(vmm.Config{
		Name: "smp", MemBytes: 32 << 20, VCPUs: n,
		HostCPUID: hostCPUID,
		Clock:     func() int64 { return int64(time.Since(base)) },
		HostTSC:   func() uint64 { return uint64(time.Since(base)) * 21 / 10 },
	}, host, m.be)
	if err != nil {
		t.Fatal(err)
	}
	m.vm = vm
	pc, err := New(vm, Config{
		TSCHz: testTSCHz,
		Reset: func() { m.events <- "reset"; vm.Stop(vmm.Reset, 0, "reset") },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.pc = pc
	exit := devices.NewExitPort(func(code int) { vm.Stop(vmm.Exited, code, "") })
	if err := vm.IO().Register(devices.DebugExitPort, devices.ExitPorts, exit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	return m
}

// run runs the VM (at most 10 s) and returns how it stopped.
func (m *mpVM) run(t *testing.T) (vmm.StopReason, int, string) {
	t.Helper()
	type res struct {
		r   vmm.StopReason
		st  int
		msg string
	}
	done := make(chan res, 1)
	go func() {
		r, st, msg := m.vm.Run()
		done <- res{r, st, msg}
	}()
	select {
	case x := <-done:
		return x.r, x.st, x.msg
	case <-time.After(10 * time.Second):
		for i, c := range m.be.vcpus {
			c.mu.Lock()
			t.Logf("vCPU %d: at step %d of %d, injected %#x, waiting for SIPI %v", i, c.pos, len(c.steps), c.injected, m.vm.VCPU(i).WaitingForSIPI())
			c.mu.Unlock()
		}
		for _, s := range m.pc.DebugState() {
			t.Log(s)
		}
		m.vm.Stop(vmm.Killed, -1, "test timeout")
		x := <-done
		t.Fatalf("the VM did not stop within 10 s: %v %q", x.r, x.msg)
		return x.r, x.st, x.msg
	}
}

// x2APIC ICR values (MSR 0x830): destination in 63:32.
const (
	icrInitAssert   = 5<<8 | 1<<14 | 1<<15
	icrInitDeassert = 5<<8 | 1<<15
	icrStartup      = 6 << 8
	icrNMI          = 4 << 8
	icrAllButSelf   = 3 << 18
	icrSelf         = 1 << 18
)

func x2apicOn(bsp bool) guestStep {
	v := uint64(acpi.DefaultLAPICAddr | apic.BaseEnable | apic.BaseEXTD)
	if bsp {
		v |= apic.BaseBSP
	}
	return wrmsr(vmm.MSRAPICBase, v)
}

func rdmsr(msr uint32) guestStep {
	return func(v *vmm.VCPU) {
		v.Exit = vmm.Exit{Reason: vmm.ExitRDMSR, InstrLen: 2}
		v.Regs.RCX = uint64(msr)
	}
}

func exitStatus(code uint32) guestStep { return out(devices.DebugExitPort, 1, code) }

// then runs f (a check, or waiting) before the step.
func then(f func(v *vmm.VCPU), s guestStep) guestStep {
	return func(v *vmm.VCPU) { f(v); s(v) }
}

// TestSMPBringUpAndIPIs is Linux's AP start-up and first IPIs in x2APIC
// mode: the boot vCPU sends INIT (assert, de-assert) and two STARTUPs
// with vector 0x9a through the x2APIC ICR, whose delivery status reads
// idle; the AP starts at 9a00:0000 once, enables its local APIC and
// halts; a fixed IPI from the boot vCPU wakes it and is injected; it
// answers with a fixed IPI that wakes the halted boot vCPU, then sends a
// self-IPI and an all-but-self broadcast.
func TestSMPBringUpAndIPIs(t *testing.T) {
	apReady, bspEOI := make(chan struct{}), make(chan struct{})
	bspGot := make(chan []uint8, 1)
	var icrRead uint64
	m := newMPVM(t, 2, func(m *mpVM) map[int][]guestStep {
		return map[int][]guestStep{
			0: {
				x2apicOn(true),
				wrmsr(0x80f, apic.SVREnable|0xff),
				wrmsr(0x830, 1<<32|icrInitAssert),
				wrmsr(0x830, 1<<32|icrInitDeassert),
				wrmsr(0x830, 1<<32|icrStartup|0x9a),
				wrmsr(0x830, 1<<32|icrStartup|0x9a),
				rdmsr(0x830),
				then(func(v *vmm.VCPU) { icrRead = v.Regs.RAX; <-apReady }, wrmsr(0x830, 1<<32|0x41)),
				hlt, // woken by the AP's 0x42
				wrmsr(0x80b, 0),
				then(func(*vmm.VCPU) { close(bspEOI) }, hlt), // woken by the AP's broadcast 0x44
				func(v *vmm.VCPU) {
					vecs, _ := m.be.vcpus[0].got()
					bspGot <- vecs
					exitStatus(0)(v)
				},
			},
			1: {
				x2apicOn(false),
				wrmsr(0x80f, apic.SVREnable|0xff),
				then(func(*vmm.VCPU) { close(apReady) }, hlt), // woken by 0x41
				wrmsr(0x80b, 0),
				wrmsr(0x830, 0<<32|0x42),
				wrmsr(0x83f, 0x43), // the SELF IPI register
				then(func(*vmm.VCPU) { <-bspEOI }, wrmsr(0x830, icrAllButSelf|0x44)),
			},
		}
	})
	r, st, msg := m.run(t)
	if r != vmm.Exited || st != 0 {
		t.Fatalf("stopped %v %d %q", r, st, msg)
	}
	if icrRead&(1<<12) != 0 || icrRead&0x7ff != 6<<8|0x9a {
		t.Errorf("ICR read back %#x: want the STARTUP, delivery status idle", icrRead)
	}
	apVecs, cs := m.be.vcpus[1].got()
	if cs.Selector != 0x9a00 || cs.Base != 0x9a000 {
		t.Errorf("AP started with CS %+v, want 9a00 base 0x9a000", cs)
	}
	if !has(apVecs, 0x41) || !has(apVecs, 0x43) || has(apVecs, 0x44) {
		t.Errorf("AP got %#x: want 0x41 and its self-IPI 0x43, not its own broadcast 0x44", apVecs)
	}
	if vecs := <-bspGot; !has(vecs, 0x42) || !has(vecs, 0x44) {
		t.Errorf("boot vCPU got %#x, want 0x42 and 0x44", vecs)
	}
}

func has(v []uint8, x uint8) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// TestIOAPICInterruptWakesAP: an I/O APIC pin routed to the AP (as Linux
// spreads IRQ affinity) delivers there and wakes the halted AP, while the
// boot vCPU, halted too, gets nothing.
func TestIOAPICInterruptWakesAP(t *testing.T) {
	const vec = 0x34
	apHalted := make(chan struct{})
	m := newMPVM(t, 2, func(m *mpVM) map[int][]guestStep {
		return map[int][]guestStep{
			0: {
				x2apicOn(true),
				wrmsr(0x80f, apic.SVREnable|0xff),
				out(devices.COM1+1, 1, 1),    // IER: received data available
				out(devices.COM1+4, 1, 0x0b), // MCR: DTR, RTS, OUT2
				wrmsr(0x830, 1<<32|icrStartup|0x10),
				hlt,
			},
			1: {
				x2apicOn(false),
				wrmsr(0x80f, apic.SVREnable|0xff),
				then(func(*vmm.VCPU) { close(apHalted) }, hlt),
				func(v *vmm.VCPU) {
					if vecs, _ := m.be.vcpus[1].got(); has(vecs, vec) {
						exitStatus(0)(v)
					} else {
						exitStatus(1)(v)
					}
				},
			},
		}
	})
	// I/O APIC pin 4 (COM1): vector vec, fixed, physical destination 1.
	m.pc.ioapic.Write(0, 4, 0x10+2*4)
	m.pc.ioapic.Write(0x10, 4, vec)
	m.pc.ioapic.Write(0, 4, 0x10+2*4+1)
	m.pc.ioapic.Write(0x10, 4, 1<<24)
	go func() {
		<-apHalted
		time.Sleep(5 * time.Millisecond)
		m.pc.UART().Feed([]byte("x"))
	}()
	r, st, msg := m.run(t)
	if r != vmm.Exited || st != 0 {
		t.Fatalf("stopped %v %d %q (status 1: the AP woke without the interrupt)", r, st, msg)
	}
	if vecs, _ := m.be.vcpus[0].got(); has(vecs, vec) {
		t.Errorf("the boot vCPU got the AP's interrupt")
	}
}

// TestINITRestartsAPAndResetsBSP: an AP stopped by an INIT IPI (it was
// halted) starts again at the next STARTUP's vector; an INIT IPI to the
// boot vCPU resets the machine.
func TestINITRestartsAPAndResetsBSP(t *testing.T) {
	restarted := make(chan vmm.Segment, 1)
	var again vmm.Segment
	m := newMPVM(t, 2, func(m *mpVM) map[int][]guestStep {
		return map[int][]guestStep{
			0: {
				x2apicOn(true),
				wrmsr(0x80f, apic.SVREnable|0xff),
				wrmsr(0x830, 1<<32|icrStartup|0x10),
				then(func(v *vmm.VCPU) {
					for v.VM.VCPU(1).WaitingForSIPI() { // until the AP runs
						time.Sleep(time.Millisecond)
					}
					time.Sleep(5 * time.Millisecond)
				}, wrmsr(0x830, 1<<32|icrInitAssert)),
				then(func(v *vmm.VCPU) {
					for !v.VM.VCPU(1).WaitingForSIPI() {
						time.Sleep(time.Millisecond)
					}
				}, wrmsr(0x830, 1<<32|icrStartup|0x20)),
				then(func(*vmm.VCPU) { again = <-restarted }, wrmsr(0x830, icrSelf|icrInitAssert)),
				exitStatus(1), // not reached: the INIT reset the machine
			},
			1: {
				nop, // started at 1000:0000
				hlt, // until the INIT
				func(v *vmm.VCPU) {
					_, cs := m.be.vcpus[1].got()
					restarted <- cs
					nop(v)
				},
			},
		}
	})
	r, _, msg := m.run(t)
	if r != vmm.Reset {
		t.Fatalf("stopped %v %q, want a reset", r, msg)
	}
	if again.Selector != 0x2000 || again.Base != 0x20000 {
		t.Fatalf("AP restarted with CS %+v, want 2000 base 0x20000", again)
	}
	if ev := <-m.events; ev != "reset" {
		t.Fatalf("event %q", ev)
	}
}

// TestIPIYieldsToTarget: on one host CPU (GOMAXPROCS 1, as juice runs),
// a vCPU that sends a fixed IPI to a halted vCPU yields to it, so the
// target takes the interrupt before the sender's next exit.
func TestIPIYieldsToTarget(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	apHalted := make(chan struct{})
	var tookFirst bool
	m := newMPVM(t, 2, func(m *mpVM) map[int][]guestStep {
		return map[int][]guestStep{
			0: {
				x2apicOn(true),
				wrmsr(0x80f, apic.SVREnable|0xff),
				wrmsr(0x830, 1<<32|icrStartup|0x10),
				then(func(*vmm.VCPU) { <-apHalted }, wrmsr(0x830, 1<<32|0x41)),
				func(v *vmm.VCPU) {
					vecs, _ := m.be.vcpus[1].got()
					tookFirst = has(vecs, 0x41)
					exitStatus(0)(v)
				},
			},
			1: {
				x2apicOn(false),
				wrmsr(0x80f, apic.SVREnable|0xff),
				then(func(*vmm.VCPU) { close(apHalted) }, hlt),
			},
		}
	})
	if !m.pc.yield {
		t.Fatal("the platform does not yield on one host CPU")
	}
	if r, st, msg := m.run(t); r != vmm.Exited || st != 0 {
		t.Fatalf("stopped %v %d %q", r, st, msg)
	}
	if !tookFirst {
		t.Error("the sender ran on before the target took its IPI")
	}
}

// TestIPIPathAllocationFree: sending fixed, INIT and STARTUP IPIs through
// the x2APIC ICR and taking them allocates nothing.
func TestIPIPathAllocationFree(t *testing.T) {
	m := newMPVM(t, 2, func(*mpVM) map[int][]guestStep { return nil })
	p := m.pc
	v0, v1 := m.vm.VCPU(0), m.vm.VCPU(1)
	p.WriteMSR(v0, vmm.MSRAPICBase, acpi.DefaultLAPICAddr|apic.BaseEnable|apic.BaseEXTD|apic.BaseBSP)
	p.WriteMSR(v0, 0x80f, apic.SVREnable|0xff)
	allocs := testing.AllocsPerRun(1000, func() {
		p.WriteMSR(v0, 0x830, 1<<32|icrInitAssert)
		p.WriteMSR(v0, 0x830, 1<<32|icrInitDeassert)
		p.WriteMSR(v0, 0x830, 1<<32|icrStartup|0x9a)
		p.WriteMSR(v1, vmm.MSRAPICBase, acpi.DefaultLAPICAddr|apic.BaseEnable|apic.BaseEXTD)
		p.WriteMSR(v1, 0x80f, apic.SVREnable|0xff)
		p.WriteMSR(v0, 0x830, 1<<32|0x41)
		if vec, ok := p.Pending(v1); ok {
			p.Ack(v1, vec)
		}
		p.WriteMSR(v1, 0x80b, 0)
		p.WriteMSR(v1, 0x830, icrAllButSelf|0x42)
		if vec, ok := p.Pending(v0); ok {
			p.Ack(v0, vec)
		}
		p.WriteMSR(v0, 0x80b, 0)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round", allocs)
	}
}

// TestSMPBringUpXAPIC: the same start-up through the xAPIC page (ICR high
// then low), as a guest without x2APIC does it: the AP starts at the
// STARTUP's vector and the ICR reads back idle.
func TestSMPBringUpXAPIC(t *testing.T) {
	var icrLow uint64
	apCS := make(chan vmm.Segment, 1)
	m := newMPVM(t, 2, func(m *mpVM) map[int][]guestStep {
		icr := func(dest, low uint32) guestStep {
			return func(v *vmm.VCPU) {
				m.pc.LocalWrite(v, apic.RegICRHigh, 4, uint64(dest)<<24)
				m.pc.LocalWrite(v, apic.RegICRLow, 4, uint64(low))
				nop(v)
			}
		}
		return map[int][]guestStep{
			0: {
				func(v *vmm.VCPU) { m.pc.LocalWrite(v, apic.RegSVR, 4, apic.SVREnable|0xff); nop(v) },
				icr(1, icrInitAssert),
				icr(1, icrInitDeassert),
				icr(1, icrStartup|0x9f),
				icr(1, icrStartup|0x9f),
				func(v *vmm.VCPU) {
					icrLow = m.pc.LocalRead(v, apic.RegICRLow, 4)
					cs := <-apCS
					if cs.Selector == 0x9f00 && cs.Base == 0x9f000 {
						exitStatus(0)(v)
					} else {
						exitStatus(1)(v)
					}
				},
			},
			1: {
				func(v *vmm.VCPU) {
					_, cs := m.be.vcpus[1].got()
					apCS <- cs
					nop(v)
				},
			},
		}
	})
	if r, st, msg := m.run(t); r != vmm.Exited || st != 0 {
		t.Fatalf("stopped %v %d %q (status 1: the AP started elsewhere)", r, st, msg)
	}
	if icrLow&(1<<12) != 0 || icrLow&0x7ff != 6<<8|0x9f {
		t.Errorf("ICR low read back %#x: want the STARTUP, delivery status idle", icrLow)
	}
}
