package vmm

import "sync/atomic"

// State dumps: an operator (juice's console escape) or a test asks every
// vCPU of a VM to describe itself. The description is taken on the
// vCPU's own goroutine, where its registers are coherent: at the top of
// its next loop iteration, or at once if it is halted (the request kicks
// it). The request is one atomic pointer per vCPU, so the exit path pays
// a single load for it.

// DumpFunc receives a vCPU's state on the vCPU's goroutine; halted tells
// whether the vCPU is blocked in HLT. It runs outside the hot path and may
// allocate and print.
type DumpFunc func(v *VCPU, d VCPUDump)

// VCPUDump is what a vCPU reports when asked for its state.
type VCPUDump struct {
	Halted bool
	// WaitSIPI: the vCPU waits for a STARTUP IPI (an application
	// processor not started yet, or stopped by an INIT).
	WaitSIPI   bool
	RIP, RSP   uint64
	RFLAGS     uint64
	CR0, CR3   uint64
	CR4, EFER  uint64
	LastExit   ExitReason
	Exits      uint64 // all exits so far
	HasPending bool   // an event waits for injection
	Pending    Event
	// CoreIRR is the core's own pending vectors (hypercall timer,
	// Interrupt) as a 256-bit set, lowest word first.
	CoreIRR [4]uint64
	// WindowOn is whether the core asked for an interrupt window.
	WindowOn bool
	// Timer: the core's timer and the platform's next deadline, in
	// nanoseconds from now (valid when armed).
	TimerArmed, PlatArmed bool
	TimerIn, PlatIn       int64
	// HaltPolls counts the halt loop's iterations; HaltSleep is the last
	// sleep it asked for (ns; -1: until a wake-up) and HaltAgo how long
	// ago that was.
	HaltPolls          uint64
	HaltSleep, HaltAgo int64
}

// RequestDump asks each vCPU of vm to call fn once with its state, from
// its own goroutine: a running vCPU does it at its next exit, a halted
// one is woken for it and halts again. vCPUs that have stopped never
// answer.
func (vm *VM) RequestDump(fn DumpFunc) {
	for _, v := range vm.vcpus {
		v.c.dump.Store(&fn)
		v.c.kick()
	}
}

// takeDump answers a pending dump request (the vCPU's goroutine).
func (vm *VM) takeDump(v *VCPU, halted bool) {
	p := v.c.dump.Swap(nil)
	if p == nil {
		return
	}
	v.syncSRegs()
	d := VCPUDump{
		Halted: halted, WaitSIPI: v.c.mp.Load()&mpWaitSIPI != 0, RIP: v.Regs.RIP, RSP: v.Regs.RSP, RFLAGS: v.Regs.RFLAGS,
		CR0: v.SRegs.CR0, CR3: v.SRegs.CR3, CR4: v.SRegs.CR4, EFER: v.SRegs.EFER,
		LastExit: v.Exit.Reason, HasPending: v.HasPending, Pending: v.Pending,
		WindowOn: v.c.windowOn, TimerArmed: v.c.timerArmed, PlatArmed: v.c.platArmed,
	}
	for _, n := range v.Exits {
		d.Exits += n
	}
	for i := range d.CoreIRR {
		d.CoreIRR[i] = v.c.irr[i].Load()
	}
	now := vm.clock()
	d.HaltPolls, d.HaltSleep, d.HaltAgo = v.c.haltPolls, v.c.haltSleep, now-v.c.haltAt
	if d.TimerArmed {
		d.TimerIn = v.c.timerDeadline - now
	}
	if d.PlatArmed {
		d.PlatIn = v.c.platNext - now
	}
	(*p)(v, d)
}

// ExitCount is the number of exits of all the VM's vCPUs so far, for
// status displays. It reads the vCPUs' counters while they run: each
// count is one aligned word, so the sum is at worst a few exits stale.
func (vm *VM) ExitCount() uint64 {
	var n uint64
	for _, v := range vm.vcpus {
		for i := range v.Exits {
			n += atomic.LoadUint64(&v.Exits[i])
		}
	}
	return n
}
