// hog: a vCPU that never stops computing and never leaves the guest by
// itself (no I/O, no HLT, interrupts off), for the tests that check a
// spinning VM cannot starve the others: only juice's own host timer
// interrupts take the CPU from it.
//
//	hog start
//
// It then loops forever.

#include "textflag.h"
#include "guest.h"

TEXT ·hog(SB), NOSPLIT, $0-0
	SETUP
	PRINT(·hogStart)
	XORL AX, AX
loop:
	INCL AX
	JMP loop
