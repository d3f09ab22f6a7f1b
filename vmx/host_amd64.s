#include "textflag.h"

// Host descriptor-table registers and memory, for the VMCS's host-state
// area (see host.go).

// func sgdt(p *[10]byte)
TEXT ·sgdt(SB),NOSPLIT,$0-8
	MOVQ p+0(FP), AX
	SGDT (AX)
	RET

// func sidt(p *[10]byte)
TEXT ·sidt(SB),NOSPLIT,$0-8
	MOVQ p+0(FP), AX
	SIDT (AX)
	RET

// func load64(addr uint64) uint64
TEXT ·load64(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ (AX), AX
	MOVQ AX, ret+8(FP)
	RET
