// timer: juice's one-shot timer hypercall and interrupt injection. It
// installs an IDT whose vector 0x30 gate calls ·tick (every other vector:
// ·unexpected), asks for vector 0x30 in 1000 microseconds (hypercall 1:
// EBX = vector, ECX = microseconds), then waits with STI; HLT.
//
//	timer: one-shot timer, vector 0x30, 1000 us
//	timer: tick                    (printed by the interrupt handler)
//	timer: done
//
// Status 0; 1 when HLT returned TIMER_WAKEUPS times without a tick, 2 on
// any other interrupt or exception.

#include "textflag.h"
#include "guest.h"

#define HC_TIMER 1
#define TIMER_VECTOR 0x30
#define TIMER_US 1000
#define TIMER_WAKEUPS 100

TEXT ·timer(SB), NOSPLIT, $0-0
	SETUP
	CALL ·loadgdt(SB)               // a known code selector for the gates

	// Every gate to unexpected, then vector 0x30 to tick.
	MOVL $·idt(SB), DI
	MOVL $·unexpected(SB), AX
	MOVL $256, BX
fill:
	CALL ·setgate(SB)
	ADDL $8, DI
	DECL BX
	JNE fill
	MOVL $·idt+(TIMER_VECTOR*8)(SB), DI
	MOVL $·tick(SB), AX
	CALL ·setgate(SB)
	// LIDT from an operand on the stack: limit, base.
	SUBL $8, SP
	MOVW $(256*8-1), 0(SP)
	MOVL $·idt(SB), AX
	MOVL AX, 2(SP)
	LIDT 0(SP)
	ADDL $8, SP

	PRINT(·timerArm)
	MOVL $HC_TIMER, AX
	MOVL $TIMER_VECTOR, BX
	MOVL $TIMER_US, CX
	VMMCALL

	MOVL $TIMER_WAKEUPS, BP
wait:
	// STI's one-instruction shadow: the interrupt cannot arrive between
	// STI and HLT, so HLT cannot sleep past it.
	STI
	HLT
	CLI
	CMPL ·ticks(SB), $0
	JNE ticked
	DECL BP
	JNE wait
	PRINT(·timerNoTick)
	EXIT(1)
ticked:
	PRINT(·timerDone)
	EXIT(0)

// setgate writes a 32-bit interrupt gate (present, DPL 0) for the
// handler at AX, in code segment SEL_CODE32, to the 8 bytes at DI.
TEXT ·setgate(SB), NOSPLIT, $0-0
	PUSHL DX
	MOVL AX, DX
	ANDL $0xFFFF, DX                // offset 15:0
	ORL $(SEL_CODE32<<16), DX       // selector
	MOVL DX, 0(DI)
	MOVL AX, DX
	ANDL $0xFFFF0000, DX            // offset 31:16
	ORL $0x8E00, DX                 // present, DPL 0, 32-bit interrupt gate
	MOVL DX, 4(DI)
	POPL DX
	RET

// tick handles vector 0x30 (no error code; juice's injected interrupt
// needs no EOI).
TEXT ·tick(SB), NOSPLIT, $0-0
	PUSHAL
	INCL ·ticks(SB)
	PRINT(·timerTick)
	POPAL
	IRETL

// unexpected handles every other vector: a failure.
TEXT ·unexpected(SB), NOSPLIT, $0-0
	PRINT(·timerUnexpected)
	EXIT(2)
