// triplefault: loads an IDT with limit 0 and raises an exception. The
// CPU cannot deliver it, nor the #GP that follows, nor the double fault:
// the guest shuts down (a triple fault), and juice must stop this VM
// (and only it) with "juice: vm NAME: shut down (triple fault) ...".
//
//	triplefault: empty IDT, INT3
//
// Anything after that line is a failure (status 1).

#include "textflag.h"
#include "guest.h"

TEXT ·triplefault(SB), NOSPLIT, $0-0
	SETUP
	PRINT(·triplefaultStart)
	LIDT ·emptyIDTR(SB)
	INT $3
	PRINT(·triplefaultInt3)
	XORL AX, AX
	XORL DX, DX
	XORL CX, CX
	DIVL CX
	PRINT(·triplefaultDiv)
	EXIT(1)
