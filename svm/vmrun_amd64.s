#include "textflag.h"

// Offsets into vmm.Regs.
#define R_RBX 8
#define R_RCX 16
#define R_RDX 24
#define R_RSI 32
#define R_RDI 40
#define R_RBP 48
#define R_R8 64
#define R_R9 72
#define R_R10 80
#define R_R11 88
#define R_R12 96
#define R_R13 104
#define R_R14 112
#define R_R15 120

// Offsets into cpuCheck (vmrun.go).
#define MIG_LAST 0
#define MIG_FLUSH 4
#define MIG_MOVED 5
#define MIG_TLBCTL 8

// func vmrun(vmcb, hostSave uint64, regs *vmm.Regs, guestFX, hostFX *[512]byte, mig *cpuCheck)
TEXT ·vmrun(SB),NOSPLIT,$16-48
	MOVQ BP, saved-8(SP)
	// Host SSE state out, guest's in.
	MOVQ hostFX+32(FP), AX
	FXSAVE64 (AX)
	MOVQ guestFX+24(FP), AX
	FXRSTOR64 (AX)

	BYTE $0x0F; BYTE $0x01; BYTE $0xDD // CLGI
	// Moved to another host CPU since the last entry? Then flush the
	// ASID there. Interrupts are held now, so the thread stays put.
	MOVQ mig+40(FP), DI
	TESTQ DI, DI
	JEQ samecpu
	BYTE $0x0F; BYTE $0x01; BYTE $0xF9 // RDTSCP: ECX = IA32_TSC_AUX, the CPU's number
	CMPL CX, MIG_LAST(DI)
	JEQ samecpu
	MOVL CX, MIG_LAST(DI)
	MOVBLZX MIG_FLUSH(DI), AX
	MOVQ MIG_TLBCTL(DI), SI
	MOVB AX, (SI)
	MOVB $1, MIG_MOVED(DI)
samecpu:
	// Host FS/GS/TR/LDTR/KernelGSBase/STAR/LSTAR/CSTAR/SFMASK/SYSENTER.
	MOVQ hostSave+8(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0xDB // VMSAVE (RAX)
	MOVQ vmcb+0(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0xDA // VMLOAD (RAX): the guest's copies

	MOVQ regs+16(FP), AX
	MOVQ R_RBX(AX), BX
	MOVQ R_RCX(AX), CX
	MOVQ R_RDX(AX), DX
	MOVQ R_RSI(AX), SI
	MOVQ R_RDI(AX), DI
	MOVQ R_RBP(AX), BP
	MOVQ R_R8(AX), R8
	MOVQ R_R9(AX), R9
	MOVQ R_R10(AX), R10
	MOVQ R_R11(AX), R11
	MOVQ R_R12(AX), R12
	MOVQ R_R13(AX), R13
	MOVQ R_R14(AX), R14
	MOVQ R_R15(AX), R15
	MOVQ vmcb+0(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0xD8 // VMRUN (RAX)
	// #VMEXIT: RSP, RAX (= vmcb) and RIP are the host's again; every
	// other general register holds the guest's value.
	BYTE $0x0F; BYTE $0x01; BYTE $0xDB // VMSAVE (RAX): the guest's copies
	MOVQ regs+16(FP), AX
	MOVQ BX, R_RBX(AX)
	MOVQ CX, R_RCX(AX)
	MOVQ DX, R_RDX(AX)
	MOVQ SI, R_RSI(AX)
	MOVQ DI, R_RDI(AX)
	MOVQ BP, R_RBP(AX)
	MOVQ R8, R_R8(AX)
	MOVQ R9, R_R9(AX)
	MOVQ R10, R_R10(AX)
	MOVQ R11, R_R11(AX)
	MOVQ R12, R_R12(AX)
	MOVQ R13, R_R13(AX)
	MOVQ R14, R_R14(AX)
	MOVQ R15, R_R15(AX)
	MOVQ hostSave+8(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0xDA // VMLOAD (RAX): the host's FS, GS, TR...
	BYTE $0x0F; BYTE $0x01; BYTE $0xDC // STGI

	MOVQ guestFX+24(FP), AX
	FXSAVE64 (AX)
	MOVQ hostFX+32(FP), AX
	FXRSTOR64 (AX)
	MOVQ saved-8(SP), BP
	RET
