package kernel

import (
	"sync/atomic"

	"juice/cpu"
	"juice/drivers/lapic"
)

// Kicks. A vCPU thread runs its guest until the guest exits; an interrupt
// another goroutine makes pending for it (a guest IPI, a virtio
// completion) is only seen at the next exit, which for a guest that
// computes is the host's next timer interrupt, up to a time slice away.
// KickCPU shortens that: the VM core (vmm, through vmm.Config.HostCPUs)
// sends the CPU running the guest a kick IPI, which the backend's
// physical-interrupt intercept turns into a #VMEXIT at once; the kernel's
// handler only acknowledges it. The core kicks only a vCPU that is in
// guest mode on another CPU, at most once per guest entry: QEMU 7.2's
// multi-threaded TCG mishandles streams of IPIs into a CPU running a
// nested guest (see kickWaiting), so kicks must stay rare.

// kicksSent counts the kick IPIs sent (atomic).
var kicksSent uint64

// KickCPU sends host CPU n the kick IPI (vecKick). It does nothing for
// the calling CPU, a CPU that is not online, or a number out of range.
// Any goroutine, and kernel context; allocation-free; it holds interrupts
// off (a few instructions, one ICR write) so that nothing on this CPU
// sends an IPI between the xAPIC's two ICR writes.
//
//go:nosplit
func KickCPU(n int) {
	f := cpu.Flags()
	cpu.Cli()
	if o := kickTarget(n, cpuIndex()); o != nil {
		if apic.SendIPI(o.apicID, vecKick) == lapic.StatusOK {
			atomic.AddUint64(&kicksSent, 1)
		}
	}
	if f&(1<<9) != 0 {
		stiNop()
	}
}

// stiNop sets IF like cpu.Sti, but with a NOP after the STI
// (entry_amd64.s). QEMU 7.2's TCG may leave an interrupt that came
// pending while IF was clear undelivered when the STI is followed
// directly by a RET (the translation block can end with a direct jump to
// the next one, which checks no interrupts), until some other event
// makes the CPU look again; under multi-threaded TCG that could be a
// host timer tick or a kick that arrived during KickCPU. The NOP takes
// STI's shadow and the block ends normally. (Reported to QEMU in
// December 2023: https://lore.kernel.org/qemu-devel/20231210190147.129734-2-lrh2000@pku.edu.cn/;
// cpu.Sti has the pattern too.)
func stiNop()

// kickTarget returns the per-CPU block of CPU n if a kick sent from CPU
// me should go there: n is another CPU, and online.
//
//go:nosplit
func kickTarget(n int, me int32) *perCPU {
	if n < 0 || n >= maxCPUs || int32(n) == me || atomic.LoadUint64(&onlineMask)&(1<<uint(n)) == 0 {
		return nil
	}
	return &cpus[n]
}

// KicksSent returns how many kick IPIs KickCPU has sent.
func KicksSent() uint64 { return atomic.LoadUint64(&kicksSent) }

// HostCPUs is the kernel's side of vmm.Config.HostCPUs: which CPU a
// vCPU thread is on (CPU) and the kick (KickCPU).
type HostCPUs struct{}

// Current returns the calling thread's CPU (CPU).
func (HostCPUs) Current() int { return CPU() }

// Kick sends CPU n the kick IPI (KickCPU).
func (HostCPUs) Kick(n int) { KickCPU(n) }
