package svm

import "juice/vmm"

// vmrun enters the guest whose VMCB is at host-physical address vmcb and
// returns at its next #VMEXIT. It runs in ring 0 with the host's state
// (FS, GS, TR, LDTR, KernelGSBase and the SYSCALL MSRs) saved by VMSAVE to
// the page at hostSave and restored by VMLOAD after the exit; VMRUN itself
// saves and restores RSP, RIP, RFLAGS, RAX and the control registers
// through the per-CPU host save area (VM_HSAVE_PA). The guest's RAX, RSP,
// RIP and RFLAGS travel in the VMCB; its other general registers are
// loaded from and stored back to regs. The x87/SSE state is swapped with
// FXRSTOR/FXSAVE: guestFX and hostFX are 512-byte, 16-byte-aligned areas.
// Interrupts are held off (CLGI) from before VMLOAD to after the host
// state is back (STGI), so a host interrupt taken in the guest exits
// through the INTR intercept and is serviced right after STGI.
//
// VMRUN, VMLOAD, VMSAVE, CLGI and STGI are emitted as BYTE sequences; see
// vmrun_amd64.s. Exit context: nosplit, allocation-free, no write
// barriers.
//
// With mig set, vmrun also notices that the vCPU runs on another host CPU
// than last time (see cpuCheck): it reads the CPU's number with RDTSCP
// after CLGI, where the thread can no longer move, and has VMRUN flush the
// vCPU's ASID.
//
//go:noescape
func vmrun(vmcb, hostSave uint64, regs *vmm.Regs, guestFX, hostFX *[512]byte, mig *cpuCheck)

// cpuCheck lets vmrun flush a vCPU's ASID when the vCPU moves to another
// host CPU: the ASID's TLB entries on the CPU it arrives at may predate
// changes the guest made to its page tables elsewhere (each CPU's TLB is
// its own; a guest's INVLPG or CR3 write flushes only the CPU it runs on).
// The kernel keeps each CPU's number in IA32_TSC_AUX, which RDTSCP reads.
// The layout is fixed: vmrun_amd64.s reaches the fields by offset.
type cpuCheck struct {
	last   uint32 // host CPU of the last entry; ^0: none yet
	flush  uint8  // TLB_CONTROL value that flushes the vCPU's ASID
	moved  uint8  // set by vmrun when the vCPU arrived from another CPU
	_      [2]byte
	tlbCtl *uint8 // the VMCB's TLB_CONTROL byte
}
