// hypercall: juice's hypercalls (VMMCALL, function in EAX).
//
//	hypercall: version 0x00000001      (function 0: version, returns 1)
//	hypercall: exit with status 7      (function 2: exit, status in EBX)
//
// The VM must end with status 7 (not through the exit port). If the exit
// hypercall returns, it prints a FAIL line and exits with status 1 through
// the exit port; a wrong version exits with 2.

#include "textflag.h"
#include "guest.h"

#define HC_VERSION 0
#define HC_EXIT 2

TEXT ·hypercall(SB), NOSPLIT, $0-0
	SETUP
	MOVL $HC_VERSION, AX
	VMMCALL
	PRINT(·hypercallVersion)
	CALL ·puthex(SB)
	PRINT(·newline)
	CMPL AX, $1
	JEQ exit
	PRINT(·hypercallBad)
	EXIT(2)
exit:
	PRINT(·hypercallExit)
	MOVL $HC_EXIT, AX
	MOVL $7, BX
	VMMCALL
	PRINT(·hypercallAlive)
	EXIT(1)
