package vmm

import (
	"sync/atomic"
	"time"
)

// Architectural bits the core reads (Intel SDM Vol. 3A 2.5, AMD APM Vol. 2
// 3.1).
const (
	cr0PE = 1 << 0
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PSE  = 1 << 4
	cr4PAE  = 1 << 5
	cr4LA57 = 1 << 12
	cr4SMEP = 1 << 20
	cr4SMAP = 1 << 21

	eferSCE  = 1 << 0
	eferLME  = 1 << 8
	eferLMA  = 1 << 10
	eferNXE  = 1 << 11
	eferSVME = 1 << 12

	rflagsTF    = 1 << 8
	rflagsIF    = 1 << 9
	rflagsDF    = 1 << 10
	rflagsVM    = 1 << 17
	rflagsAC    = 1 << 18
	rflagsFixed = 1 << 1
)

// Exception vectors the core injects.
const (
	VectorDE = 0  // divide error
	VectorDB = 1  // debug
	VectorUD = 6  // invalid opcode
	VectorDF = 8  // double fault
	VectorTS = 10 // invalid TSS
	VectorNP = 11 // segment not present
	VectorSS = 12 // stack-segment fault
	VectorGP = 13 // general protection
	VectorPF = 14 // page fault
	VectorAC = 17 // alignment check
	VectorMC = 18 // machine check
)

// errCodeVectors has bit v set for the exceptions that push an error code
// (#DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX).
const errCodeVectors = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// The MMIO decode cache: decodeSets sets of decodeWays entries, the set
// chosen by the first fetched bytes. A guest's drivers touch MMIO from a
// few dozen instruction sites (Linux's virtio and APIC accessors); each
// miss runs x86asm.Decode, which allocates, so the cache must hold them
// all.
const (
	decodeSets      = 16
	decodeWays      = 4
	decodeCacheSize = decodeSets * decodeWays
	decodeHashBytes = 4 // fetched bytes that choose the set
)

// vcpuCore is the core's private per-vCPU state. Only the vCPU's own loop
// touches it, except irr (any goroutine sets bits), wake (any goroutine
// sends) and guest (any goroutine claims the kick).
type vcpuCore struct {
	// irr is the set of pending external-interrupt vectors (bit v of word
	// v/64); devices set bits with Or, the vCPU loop clears them with And.
	irr [4]atomic.Uint64
	// wake is signalled (non-blocking send, capacity 1) whenever an
	// interrupt is raised, the timer fires or the VM stops; a halted vCPU
	// blocks on it.
	wake chan struct{}
	// timer is created once (New) and Reset each time a halted vCPU
	// sleeps until timerDeadline; the loop itself decides, from the VM's
	// clock, when the timer interrupt is due (checkTimer).
	timer         *time.Timer
	timerArmed    bool
	timerVector   uint8
	timerDeadline int64

	// platNext is the platform's next timer deadline (platArmed: one
	// is armed), from the last Poll.
	platNext  int64
	platArmed bool

	// windowOn is what the core last asked RequestInterruptWindow for.
	windowOn bool
	// started is set by StartVCPU (under VM.mu).
	started bool

	// guest is 0 outside guest mode; from just before the loop's last
	// look at the pending interrupts until the backend's Run returns it
	// is guestIn | the host CPU the loop entered the guest on, plus
	// guestKicked once a goroutine has claimed this entry's kick
	// (kickGuest). cpus is Config.HostCPUs (nil: no kicks); kicks counts
	// the kicks sent (statistics).
	guest atomic.Uint32
	cpus  HostCPUs
	kicks atomic.Uint64

	// mp is the INIT/STARTUP state (mp.go): 0 while the vCPU runs; other
	// vCPUs change it, the vCPU's own loop applies it. parked is set
	// while only an INIT or a STARTUP can wake the vCPU (VM.parked
	// counts them).
	mp     atomic.Uint32
	parked atomic.Bool
	// yield asks the loop to yield the host CPU after this exit (Yield).
	yield bool
	// sliceEnd is the host time (VM clock, ns) at which the loop yields
	// the host CPU even if nothing asked it to (timeSlice); 0 after the
	// loop blocked (a halt): the next exit starts a new slice. yields
	// counts the times the loop gave the CPU up.
	sliceEnd int64
	yields   uint64

	// MSRs emulated by the core alone (not in hardware guest state).
	mtrrDefType uint64
	miscEnable  uint64

	// decode caches decoded MMIO instructions; next is the slot the
	// next miss replaces.
	decode     [decodeCacheSize]decodeEntry
	decodeNext uint64            // decodes so far (misses)
	decodeWay  [decodeSets]uint8 // next way each set replaces
	// fetch holds the instruction bytes fetched at RIP for this exit.
	fetch [15]byte

	// dump is a pending state-dump request (RequestDump), taken by the
	// vCPU's own loop.
	dump atomic.Pointer[DumpFunc]
	// haltPolls counts the halt loop's iterations; haltSleep is the
	// sleep it last asked its timer for (ns; 0: none, -1: waiting for a
	// wake-up alone) and haltAt when (by the VM's clock). Statistics for
	// the state dump.
	haltPolls uint64
	haltSleep int64
	haltAt    int64
}

// init sets up the channel and the timer (setup time: allocates).
func (c *vcpuCore) init(v *VCPU) {
	c.wake = make(chan struct{}, 1)
	c.timer = time.NewTimer(time.Hour)
	c.timer.Stop()
}

// kick wakes the vCPU if it is blocked in HLT, and gets it out of guest
// mode if it runs guest code on another host CPU (never blocks,
// allocation-free).
func (c *vcpuCore) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.kickGuest()
}

// guest's bits: guestIn marks guest mode, guestKicked a kick already
// sent for this entry; guestCPU holds the host CPU.
const (
	guestCPU    = 1<<24 - 1
	guestIn     = 1 << 24
	guestKicked = 1 << 25
)

// Guest mode and kicks. A vCPU loop publishes the host CPU it is on
// (enterGuest) before it looks at its pending interrupts for the last
// time before entry, and clears it (leaveGuest) once the backend's Run
// has returned. A goroutine that makes an interrupt pending for the vCPU
// first records it (the IRR bit, the local APIC's IRR) and then reads
// guest: both sides use sequentially consistent atomics, so either the
// loop's look finds the interrupt (and injects it at this entry) or the
// other goroutine finds the vCPU in guest mode and kicks its CPU, whose
// guest exits on the physical interrupt. One goroutine per entry wins the
// kick (compare-and-swap of guestKicked); the vCPU's own goroutine never
// kicks itself, since it makes interrupts pending for itself only outside
// that window (Poll runs before enterGuest). Two windows remain, both
// back to the old behaviour (the interrupt waits for the next exit, a
// host timer tick at the latest): a kick that lands after the loop's last
// look but before the backend holds interrupts off for VMRUN (CLGI) or
// VM entry is taken by the host then, not by the guest's exit; and a
// thread that moves to another CPU between enterGuest and the entry
// leaves a stale CPU number (the kick goes to an innocent CPU). Both last
// a few hundred instructions per entry.

// enterGuest publishes the host CPU v's loop is about to enter the guest
// on. v's own goroutine; one indirect call and one atomic store.
func (c *vcpuCore) enterGuest() {
	if c.cpus == nil {
		return
	}
	c.guest.Store(guestIn | uint32(c.cpus.Current())&guestCPU)
}

// leaveGuest ends guest mode (v's own goroutine).
func (c *vcpuCore) leaveGuest() {
	if c.cpus != nil {
		c.guest.Store(0)
	}
}

// Kicks returns how many times an interrupt made pending for v from
// another goroutine kicked the host CPU v was running guest code on
// (Config.HostCPUs). Any goroutine.
func (v *VCPU) Kicks() uint64 { return v.c.kicks.Load() }

// kickGuest kicks the host CPU the vCPU is in guest mode on, if that is
// not the caller's CPU and nobody has kicked it for this entry.
func (c *vcpuCore) kickGuest() {
	if c.cpus == nil {
		return
	}
	s := c.guest.Load()
	if s&guestIn == 0 || s&guestKicked != 0 {
		return
	}
	cpu := int(s & guestCPU)
	if cpu == c.cpus.Current() {
		return // the caller runs there: the vCPU is not in the guest now
	}
	if c.guest.CompareAndSwap(s, s|guestKicked) {
		c.kicks.Add(1)
		c.cpus.Kick(cpu)
	}
}

// Reset puts the vCPU into the x86 power-on state (Intel SDM Vol. 3A
// Table 10-1, AMD APM Vol. 2 Table 14-1): real mode, CS:IP =
// F000:FFF0 with CS base FFFF0000, RFLAGS = 2, EDX = the processor
// signature (CPUID leaf 1 EAX), CR0 = 60000010, flat 64 KiB data
// segments; the power-on values of PAT, MTRRdefType (enabled, write-back:
// what firmware would leave, since juice boots kernels directly) and
// MISC_ENABLE; no pending event or interrupt; timer disarmed. It marks
// SRegs and MSR dirty so the backend loads them at the next entry.
func (v *VCPU) Reset() {
	v.Regs = Regs{RIP: 0xfff0, RFLAGS: rflagsFixed}
	if v.VM != nil && v.VM.cpuid != nil {
		a, _, _, _ := v.VM.cpuid.Lookup(uint32(v.ID), 1, 0)
		v.Regs.RDX = uint64(a)
	}
	data := Segment{Attr: SegP | SegS | 0x3, Limit: 0xffff} // read/write, accessed
	v.SRegs = SRegs{
		CS:   Segment{Selector: 0xf000, Base: 0xffff0000, Limit: 0xffff, Attr: SegP | SegS | 0xb}, // execute/read, accessed
		DS:   data,
		ES:   data,
		FS:   data,
		GS:   data,
		SS:   data,
		TR:   Segment{Attr: SegP | 0xb, Limit: 0xffff}, // busy 32-bit TSS
		LDTR: Segment{Attr: SegP | 0x2, Limit: 0xffff}, // LDT
		GDTR: Table{Limit: 0xffff},
		IDTR: Table{Limit: 0xffff},
		CR0:  0x60000010,
	}
	v.SRegsValid = true
	v.SRegsDirty = true
	v.HasPending = false
	v.Pending = Event{}
	v.MSR = MSRState{PAT: patPowerOn}
	v.MSRDirty = true
	v.c.mtrrDefType = mtrrDefTypeBoot
	v.c.miscEnable = miscEnableFixed | miscEnableFastStrings
	for i := range v.c.irr {
		v.c.irr[i].Store(0)
	}
	v.c.timerArmed = false
	if v.c.timer != nil {
		v.c.timer.Stop()
	}
	v.c.decode = [decodeCacheSize]decodeEntry{}
	v.c.decodeWay = [decodeSets]uint8{}
}

// syncSRegs makes v.SRegs current (asks the backend once per exit).
func (v *VCPU) syncSRegs() {
	if !v.SRegsValid {
		v.backend.GetSRegs(&v.SRegs)
		v.SRegsValid = true
	}
}

// Mode is the vCPU's execution mode, from the current system state: 16
// for real mode, virtual-8086 mode and 16-bit protected-mode code; 32 for
// 32-bit protected-mode and compatibility-mode code with CS.D set; 64 for
// 64-bit mode (EFER.LMA and CS.L).
func (v *VCPU) Mode() int {
	v.syncSRegs()
	return modeOf(&v.SRegs, v.Regs.RFLAGS)
}

func modeOf(s *SRegs, rflags uint64) int {
	switch {
	case s.CR0&cr0PE == 0 || rflags&rflagsVM != 0:
		return 16
	case s.EFER&eferLMA != 0 && s.CS.Attr&SegL != 0:
		return 64
	case s.CS.Attr&SegDB != 0:
		return 32
	}
	return 16
}

// CPL is the vCPU's current privilege level: 0 in real mode, 3 in
// virtual-8086 mode, else SS.DPL (which equals CS.DPL outside conforming
// code and is what AMD's VMCB CPL field holds).
func (v *VCPU) CPL() uint8 {
	v.syncSRegs()
	return cplOf(&v.SRegs, v.Regs.RFLAGS)
}

func cplOf(s *SRegs, rflags uint64) uint8 {
	switch {
	case s.CR0&cr0PE == 0:
		return 0
	case rflags&rflagsVM != 0:
		return 3
	}
	return uint8(s.SS.Attr>>5) & 3
}

// InjectException queues exception vector for delivery at the next entry,
// with errCode for the vectors that push one (#DF, #TS, #NP, #SS, #GP,
// #PF, #AC, ...; ignored for the others). If an exception is already
// queued the SDM's rules for a second exception apply (Intel SDM Vol. 3A
// 6.15, Table 6-5): contributory after contributory, or a page fault or
// contributory exception after a page fault, becomes #DF(0); any of those
// after #DF shuts the vCPU down (the VM stops with Shutdown); otherwise the
// new exception replaces the old one (re-executing the instruction raises
// the old one again). A queued external interrupt is put back into the
// pending set, never lost.
func (v *VCPU) InjectException(vector uint8, errCode uint32) {
	if v.HasPending {
		p := v.Pending
		switch {
		case p.Kind == EventExtInt:
			v.c.raise(p.Vector)
		case p.Kind == EventException && p.Vector == VectorDF && (contributory(vector) || vector == VectorPF):
			v.HasPending = false
			v.VM.stopf(Shutdown, -1, "vCPU %d shut down: exception %d while delivering a double fault (triple fault) at RIP %#x",
				v.ID, vector, v.Regs.RIP)
			return
		case p.Kind == EventException && ((contributory(p.Vector) && contributory(vector)) ||
			(p.Vector == VectorPF && (contributory(vector) || vector == VectorPF))):
			vector, errCode = VectorDF, 0
		}
	}
	hasErr := vector < 32 && errCodeVectors&(1<<vector) != 0
	if !hasErr {
		errCode = 0
	}
	v.Pending = Event{Kind: EventException, Vector: vector, HasErr: hasErr, ErrCode: errCode}
	v.HasPending = true
}

// InjectPageFault queues #PF with error code pfec for linear address la
// (written to CR2).
func (v *VCPU) InjectPageFault(la uint64, pfec uint32) {
	v.syncSRegs()
	v.SRegs.CR2 = la
	v.SRegsDirty = true
	v.InjectException(VectorPF, pfec)
}

func contributory(vec uint8) bool {
	return vec == VectorDE || (vec >= VectorTS && vec <= VectorGP)
}
