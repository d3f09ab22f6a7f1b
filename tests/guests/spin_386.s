// spin: keeps a vCPU busy with VM exits for a while, for the tests that
// run it next to another VM.
//
//	spin start
//	spin round 0x00000001 ... spin round 0x0000001e
//	spin done
//
// Each round reads the 16550's line status register SPIN_READS times
// (every read is an exit to juice); then it exits with status 0.

#include "textflag.h"
#include "guest.h"

#define SPIN_ROUNDS 30
#define SPIN_READS 5000

TEXT ·spin(SB), NOSPLIT, $0-0
	SETUP
	PRINT(·spinStart)
	XORL BX, BX                     // BX: rounds done
round:
	MOVL $SPIN_READS, CX
	MOVL $COM1_LSR, DX
read:
	INB
	DECL CX
	JNE read
	INCL BX
	PRINT(·spinRound)
	MOVL BX, AX
	CALL ·puthex(SB)
	PRINT(·newline)
	CMPL BX, $SPIN_ROUNDS
	JCS round
	PRINT(·spinDone)
	EXIT(0)
