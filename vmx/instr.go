package vmx

import (
	"juice/cpu"
	"juice/vmm"
)

// VMX instructions. The Go assembler has none of them, so instr_amd64.s
// emits each as a BYTE sequence with its mnemonic in a comment. Every
// routine is a leaf (nosplit, no frame beyond its arguments, allocation-
// free) and returns the instruction's status from RFLAGS: CF=1 is
// VMfailInvalid, ZF=1 VMfailValid (the reason is in the VMCS's
// VM-instruction error field).

// Status is a VMX instruction's outcome.
type Status uint8

// Instruction outcomes.
const (
	Succeeded   Status = 0
	FailInvalid Status = 1 // CF: no current VMCS, or a bad operand
	FailValid   Status = 2 // ZF: see the VM-instruction error field
)

// vmxon enters VMX operation with the VMXON region at physical pa.
func vmxon(pa uint64) Status

// vmxoff leaves VMX operation.
func vmxoff() Status

// vmclear clears the VMCS at physical pa (launch state "clear").
func vmclear(pa uint64) Status

// vmptrld makes the VMCS at physical pa current.
func vmptrld(pa uint64) Status

// vmptrst returns the physical address of the calling CPU's current VMCS
// (all ones when there is none).
func vmptrst() (uint64, Status)

// vmread reads field enc of the current VMCS.
func vmread(enc uint64) (uint64, Status)

// vmwrite writes field enc of the current VMCS.
func vmwrite(enc, v uint64) Status

// invept invalidates EPT-derived translations: typ 1 single context (desc
// = {EPTP, 0}), 2 all contexts.
func invept(typ uint64, desc *[2]uint64) Status

// invvpid invalidates VPID-tagged translations: typ 0 individual address,
// 1 single context, 2 all contexts, 3 single context retaining globals
// (desc = {VPID, linear address}).
func invvpid(typ uint64, desc *[2]uint64) Status

// vmenter runs the guest of the current VMCS until its next VM exit:
// VMLAUNCH when launched is false, VMRESUME otherwise. With interrupts
// off (CLI) it writes HOST_RSP and HOST_RIP (vmexitStub) and HOST_FS_BASE
// (the current IA32_FS_BASE: the Go runtime's TLS belongs to the thread,
// and the vCPU's goroutine may run on another thread than at its last
// entry), loads CR2 from *cr2 (the guest's; the VMCS has no CR2 field)
// and the guest's general registers from regs (RSP, RIP and RFLAGS live
// in the VMCS), and after the exit stores them back and the guest's CR2
// into *cr2, still with interrupts off, so that no host page fault can
// clobber it first. The x87/SSE state is swapped with FXSAVE/FXRSTOR
// through guestFX and hostFX (16-byte aligned). The host's RFLAGS (and so
// its interrupt flag) is restored after the exit, so an external
// interrupt that made the guest exit is taken by juice's IDT right away.
// It returns Succeeded after a VM exit, or the failure status of
// VMLAUNCH/VMRESUME (then the guest never ran). Exit context: nosplit,
// allocation-free.
//
//go:noescape
func vmenter(regs *vmm.Regs, launched bool, guestFX, hostFX *[512]byte, cr2 *uint64) Status

// vmlaunchTail and vmexitStub are vmenter's halves (see instr_amd64.s);
// declared for the assembler's symbol references only.
func vmlaunchTail()
func vmexitStub()

// flagIF is RFLAGS.IF.
const flagIF = 1 << 9

// irqOff disables interrupts on the calling CPU and returns RFLAGS as it
// was. Between irqOff and irqRestore nothing else runs on this CPU: no
// kernel thread switch (the time slice ends only at an interrupt) and, as
// long as only nosplit functions are called, no goroutine switch either.
// That is what keeps "the VMCS current on this CPU" true from a VMPTRLD to
// the VMX instructions after it, whichever other vCPU threads share the CPU.
//
//go:nosplit
func irqOff() uint64 {
	f := cpu.Flags()
	cpu.Cli()
	return f
}

// irqRestore turns interrupts back on if flags (from irqOff) had them on.
//
//go:nosplit
func irqRestore(flags uint64) {
	if flags&flagIF != 0 {
		cpu.Sti()
	}
}
