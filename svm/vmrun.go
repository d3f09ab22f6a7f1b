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
//go:noescape
func vmrun(vmcb, hostSave uint64, regs *vmm.Regs, guestFX, hostFX *[512]byte)
