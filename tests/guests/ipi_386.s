// ipi: IPI round trips between two vCPUs, for the test that checks an
// interrupt reaches a vCPU computing in the guest on another host CPU at
// once, not at its next host timer tick. It needs two vCPUs.
//
//	ipi: start
//	ipi: cpu 1 up
//	ipi: rtt spin 123456   (one round trip, in TSC ticks)
//	ipi: rtt halt 123456   (IPI_ROUNDS pairs of these lines)
//	ipi: done
//
// The boot vCPU (APIC ID 0) enables its local APIC and starts vCPU 1
// (INIT, STARTUP at IPI_TRAMP: a real-mode stub that enters 32-bit
// protected mode at ·ipiAP). vCPU 1 enables its local APIC, sets ·ipiUp
// and loops with interrupts on, counting in ·ipiSpins. Each round the
// boot vCPU reads the TSC, sends vector IPI_PING to APIC 1 and waits
// until ·ipiPongs changes; vCPU 1's handler for IPI_PING sends vector
// IPI_PONG back to APIC 0, whose handler increments ·ipiPongs. The TSC
// difference is one round trip, printed in decimal.
//
// Rounds alternate between two kinds, so that both see the same host
// load. In a "spin" round both vCPUs compute while they wait: vCPU 1
// only increments ·ipiSpins, the boot vCPU only reads ·ipiPongs, nothing
// that leaves the guest, so each IPI must get its target out of the
// guest. In a "halt" round both wait in HLT (vCPU 1 once ·ipiHalt is
// set, counting its halts in ·ipiHalts), where juice wakes them without
// leaving anything to a timer: the reference. Before a spin round the
// boot vCPU waits until vCPU 1 has gone round its loop twice (after
// IPI_WAKE got it out of its HLT), before a halt round until vCPU 1 has
// counted its halt and IPI_SETTLE ticks more, so that every ping finds
// it computing, or asleep.
//
// Status 0; 1 if vCPU 1 did not come up, 2 if a pong did not come back
// or vCPU 1 did not spin, halt or wake within IPI_TIMEOUT (a halted boot
// vCPU waits for its pong for ever: the test's timeout), 3 on any other
// interrupt or exception.

#include "textflag.h"
#include "guest.h"

#define IPI_ROUNDS 40
#define IPI_PING 0x40
#define IPI_PONG 0x41
#define IPI_WAKE 0x42
// IPI_TIMEOUT bounds each wait: the high half of the TSC ticks waited
// (units of 2^32 ticks: 10 is about 20 s at 2 GHz). Far above a host
// timer tick, so that only a lost IPI, not a slow emulator, fails a
// round (QEMU's threads stall for seconds on a busy host).
#define IPI_TIMEOUT 10
// IPI_SETTLE is how long the boot vCPU lets vCPU 1 go from its count to
// its HLT before a halt round (TSC ticks, about 250 us at 2 GHz).
#define IPI_SETTLE 0x80000

// The xAPIC register page and the registers used.
#define APIC 0xfee00000
#define APIC_EOI 0xb0
#define APIC_SVR 0xf0
#define APIC_ICRLO 0x300
#define APIC_ICRHI 0x310
// ICR low values: fixed delivery, level assert, physical destination.
#define ICR_FIXED 0x4000
#define ICR_INIT 0x4500
#define ICR_STARTUP 0x4600
// SVR: software enable, spurious vector 0xff.
#define SVR_ON 0x1ff

// IPI_TRAMP is where the real-mode start-up stub is copied (vector
// IPI_TRAMP>>12 of the STARTUP IPI); TRAMP_* are offsets in it.
#define IPI_TRAMP 0x8000
#define TRAMP_SIZE 0x28
#define TRAMP_FAR 0x15
#define TRAMP_GDTR 0x20

TEXT ·ipi(SB), NOSPLIT, $0-0
	SETUP
	CALL ·loadgdt(SB)

	// The IDT both vCPUs load: IPI_PING, IPI_PONG, IPI_WAKE to their handlers,
	// every other vector to ·ipiUnexpected.
	MOVL $·ipiIDT(SB), DI
	MOVL $·ipiUnexpected(SB), AX
	MOVL $256, BX
fill:
	CALL ·ipiGate(SB)
	ADDL $8, DI
	DECL BX
	JNE fill
	MOVL $·ipiIDT+(IPI_PING*8)(SB), DI
	MOVL $·ipiPing(SB), AX
	CALL ·ipiGate(SB)
	MOVL $·ipiIDT+(IPI_PONG*8)(SB), DI
	MOVL $·ipiPong(SB), AX
	CALL ·ipiGate(SB)
	MOVL $·ipiIDT+(IPI_WAKE*8)(SB), DI
	MOVL $·ipiWake(SB), AX
	CALL ·ipiGate(SB)
	CALL ·ipiLIDT(SB)

	PRINT(·ipiStartMsg)
	MOVL $APIC, DI
	MOVL $SVR_ON, APIC_SVR(DI)

	// The start-up stub below 1 MiB, pointed at ·ipiAP and at the GDT.
	MOVL $·ipiTramp(SB), SI
	MOVL $IPI_TRAMP, DI
	MOVL $TRAMP_SIZE, CX
	CLD
	REP; MOVSB
	MOVL $IPI_TRAMP, DI
	MOVL $·ipiAP(SB), AX
	MOVL AX, TRAMP_FAR(DI)
	MOVL $·gdt(SB), AX
	MOVL AX, (TRAMP_GDTR+2)(DI)

	// INIT, then STARTUP, to APIC 1.
	MOVL $APIC, DI
	MOVL $(1<<24), APIC_ICRHI(DI)
	MOVL $ICR_INIT, APIC_ICRLO(DI)
	MOVL $(1<<24), APIC_ICRHI(DI)
	MOVL $(ICR_STARTUP|(IPI_TRAMP>>12)), APIC_ICRLO(DI)
	CALL ·ipiStart(SB)
waitup:
	CMPL ·ipiUp(SB), $0
	JNE up
	CALL ·ipiLate(SB)
	JCS waitup
	PRINT(·ipiNoAP)
	EXIT(1)
up:
	PRINT(·ipiUpMsg)

	STI
	MOVL $IPI_ROUNDS, BP
round:
	// A "spin" round. vCPU 1 computes in the guest: it has gone round
	// its loop twice since it last took an interrupt (or came up).
	MOVL ·ipiSpins(SB), AX
	ADDL $2, AX
	MOVL $·ipiSpins(SB), DI
	CALL ·ipiAwait(SB)
	CALL ·ipiSend(SB)
pong:
	CMPL ·ipiPongs(SB), BX
	JNE back
	CALL ·ipiLate(SB)
	JCS pong
	PRINT(·ipiNoPong)
	EXIT(2)
back:
	CALL ·ipiElapsed(SB)
	PRINT(·ipiRTTSpin)
	CALL ·putdec(SB)
	PRINT(·newline)

	// A "halt" round. vCPU 1 halts (it counts the halt first), then
	// IPI_SETTLE ticks for it to be asleep in juice.
	MOVL ·ipiHalts(SB), AX
	INCL AX
	MOVL $1, ·ipiHalt(SB)
	MOVL $·ipiHalts(SB), DI
	CALL ·ipiAwait(SB)
	CALL ·ipiStart(SB)
settle:
	CALL ·ipiElapsed(SB)
	CMPL AX, $IPI_SETTLE
	JCS settle
	CALL ·ipiSend(SB)
hwait:
	// Checked with interrupts off, then STI; HLT: the pong cannot slip
	// in between the check and the HLT (STI's shadow).
	CLI
	CMPL ·ipiPongs(SB), BX
	JNE hback
	STI
	HLT
	JMP hwait
hback:
	STI
	CALL ·ipiElapsed(SB)
	PRINT(·ipiRTTHalt)
	CALL ·putdec(SB)
	PRINT(·newline)

	// vCPU 1 back to computing: IPI_WAKE gets it out of its HLT (or
	// interrupts its loop, if it saw ipiHalt cleared first).
	MOVL $0, ·ipiHalt(SB)
	MOVL ·ipiWakes(SB), AX
	INCL AX
	MOVL $APIC, DI
	MOVL $(1<<24), APIC_ICRHI(DI)
	MOVL $(ICR_FIXED|IPI_WAKE), APIC_ICRLO(DI)
	MOVL $·ipiWakes(SB), DI
	CALL ·ipiAwait(SB)
	DECL BP
	JNE round
	CLI
	PRINT(·ipiDoneMsg)
	EXIT(0)

// ipiAwait waits until the counter at DI reaches AX (a wrapping
// compare), failing with status 2 after IPI_TIMEOUT. It keeps BP and DI.
TEXT ·ipiAwait(SB), NOSPLIT, $0-0
	MOVL AX, BX
	CALL ·ipiStart(SB)
wait:
	MOVL 0(DI), AX
	SUBL BX, AX
	JNS done
	CALL ·ipiLate(SB)
	JCS wait
	// Which counter, and where each stands.
	PRINT(·ipiStuck)
	MOVL DI, AX
	CALL ·puthex(SB)
	PRINT(·ipiWant)
	MOVL BX, AX
	CALL ·puthex(SB)
	PRINT(·ipiCounters)
	MOVL ·ipiSpins(SB), AX
	CALL ·puthex(SB)
	PRINT(·ipiSpace)
	MOVL ·ipiHalts(SB), AX
	CALL ·puthex(SB)
	PRINT(·ipiSpace)
	MOVL ·ipiWakes(SB), AX
	CALL ·puthex(SB)
	PRINT(·ipiSpace)
	MOVL ·ipiPongs(SB), AX
	CALL ·puthex(SB)
	PRINT(·newline)
	EXIT(2)
done:
	RET

// ipiSend sends IPI_PING to APIC 1 and returns with ·ipiPongs before it
// in BX; the TSC just before the sending ICR write is in ·ipiT0.
TEXT ·ipiSend(SB), NOSPLIT, $0-0
	MOVL ·ipiPongs(SB), BX
	MOVL $APIC, DI
	MOVL $(1<<24), APIC_ICRHI(DI)
	CALL ·ipiStart(SB)
	MOVL $(ICR_FIXED|IPI_PING), APIC_ICRLO(DI)
	RET

// ipiStart records the TSC in ·ipiT0 (every register kept).
TEXT ·ipiStart(SB), NOSPLIT, $0-0
	PUSHL AX
	PUSHL DX
	RDTSC
	MOVL AX, ·ipiT0(SB)
	MOVL DX, ·ipiT0+4(SB)
	POPL DX
	POPL AX
	RET

// ipiElapsed returns the TSC ticks since ipiStart in EDX:EAX.
TEXT ·ipiElapsed(SB), NOSPLIT, $0-0
	RDTSC
	SUBL ·ipiT0(SB), AX
	SBBL ·ipiT0+4(SB), DX
	RET

// ipiLate sets CF while less than IPI_TIMEOUT has passed since ipiStart
// (for a JCS back into the wait). It clobbers AX and DX.
TEXT ·ipiLate(SB), NOSPLIT, $0-0
	CALL ·ipiElapsed(SB)
	CMPL DX, $IPI_TIMEOUT
	RET

// ipiAP is where vCPU 1 arrives from the start-up stub: 32-bit protected
// mode, CS = SEL_CODE32, interrupts off.
TEXT ·ipiAP(SB), NOSPLIT, $0-0
	MOVL $SEL_DATA32, AX
	MOV_AX_DS
	MOV_AX_ES
	MOV_AX_FS
	MOV_AX_GS
	MOV_AX_SS
	MOVL $·ipiAPStack+STACK_SIZE(SB), SP
	CALL ·ipiLIDT(SB)
	MOVL $APIC, DI
	MOVL $SVR_ON, APIC_SVR(DI)
	MOVL $1, ·ipiUp(SB)
	STI
loop:
	INCL ·ipiSpins(SB)
	CMPL ·ipiHalt(SB), $0
	JEQ loop
	// Halting: an interrupt just before the HLT is handled first (its
	// pong sent), so the HLT waits only for the next ping.
	INCL ·ipiHalts(SB)
	HLT
	JMP loop

// ipiPing is vCPU 1's handler for IPI_PING: IPI_PONG back to APIC 0,
// then EOI.
TEXT ·ipiPing(SB), NOSPLIT, $0-0
	PUSHL DI
	MOVL $APIC, DI
	MOVL $0, APIC_ICRHI(DI)
	MOVL $(ICR_FIXED|IPI_PONG), APIC_ICRLO(DI)
	MOVL $0, APIC_EOI(DI)
	POPL DI
	IRETL

// ipiWake is vCPU 1's handler for IPI_WAKE.
TEXT ·ipiWake(SB), NOSPLIT, $0-0
	PUSHL DI
	INCL ·ipiWakes(SB)
	MOVL $APIC, DI
	MOVL $0, APIC_EOI(DI)
	POPL DI
	IRETL

// ipiPong is the boot vCPU's handler for IPI_PONG.
TEXT ·ipiPong(SB), NOSPLIT, $0-0
	PUSHL DI
	INCL ·ipiPongs(SB)
	MOVL $APIC, DI
	MOVL $0, APIC_EOI(DI)
	POPL DI
	IRETL

// ipiUnexpected handles every other vector: a failure.
TEXT ·ipiUnexpected(SB), NOSPLIT, $0-0
	PRINT(·ipiBadIntr)
	EXIT(3)

// ipiGate writes a 32-bit interrupt gate (present, DPL 0) for the
// handler at AX, in code segment SEL_CODE32, to the 8 bytes at DI.
TEXT ·ipiGate(SB), NOSPLIT, $0-0
	PUSHL DX
	MOVL AX, DX
	ANDL $0xFFFF, DX
	ORL $(SEL_CODE32<<16), DX
	MOVL DX, 0(DI)
	MOVL AX, DX
	ANDL $0xFFFF0000, DX
	ORL $0x8E00, DX
	MOVL DX, 4(DI)
	POPL DX
	RET

// ipiLIDT loads ·ipiIDT (the operand is built on the stack).
TEXT ·ipiLIDT(SB), NOSPLIT, $0-0
	PUSHL AX
	SUBL $8, SP
	MOVW $(256*8-1), 0(SP)
	MOVL $·ipiIDT(SB), AX
	MOVL AX, 2(SP)
	LIDT 0(SP)
	ADDL $8, SP
	POPL AX
	RET

// ipiTramp is copied to IPI_TRAMP, where vCPU 1 starts in real mode at
// CS = IPI_TRAMP>>4, IP 0. Offsets are on the left; the far jump's
// offset (TRAMP_FAR) and the GDTR's base (TRAMP_GDTR+2) are patched.
TEXT ·ipiTramp(SB), NOSPLIT, $0-0
	BYTE $0xFA                                     // 00: cli
	BYTE $0x8C; BYTE $0xC8                         // 01: mov ax, cs
	BYTE $0x8E; BYTE $0xD8                         // 03: mov ds, ax
	BYTE $0x66; BYTE $0x0F; BYTE $0x01; BYTE $0x16 // 05: lgdt dword [TRAMP_GDTR]
	BYTE $0x20; BYTE $0x00
	BYTE $0x0F; BYTE $0x20; BYTE $0xC0             // 0b: mov eax, cr0
	BYTE $0x0C; BYTE $0x01                         // 0e: or al, CR0.PE
	BYTE $0x0F; BYTE $0x22; BYTE $0xC0             // 10: mov cr0, eax
	BYTE $0x66; BYTE $0xEA                         // 13: jmp dword SEL_CODE32:ipiAP
	BYTE $0x00; BYTE $0x00; BYTE $0x00; BYTE $0x00 // 15: (offset, patched)
	BYTE $0x08; BYTE $0x00                         // 19: SEL_CODE32
	BYTE $0xF4; BYTE $0xF4; BYTE $0xF4; BYTE $0xF4 // 1b: hlt (never reached)
	BYTE $0xF4
	BYTE $0x2F; BYTE $0x00                         // 20: GDT limit (6 entries)
	BYTE $0x00; BYTE $0x00; BYTE $0x00; BYTE $0x00 // 22: GDT base (patched)
	BYTE $0x00; BYTE $0x00                         // 26: padding
