// outside: writes to, then reads, guest-physical address 0x40000000 (1 GiB),
// far outside its RAM (the tests give it 16 MiB). No RAM or device is
// there: juice must stop the VM with "juice: vm NAME: fault: ..." naming
// the address, and nothing of juice or another VM may be visible there.
//
//	outside: writing 0x40000000
//
// Anything after that line is a failure (status 1).

#include "textflag.h"
#include "guest.h"

#define FAR_ADDR 0x40000000

TEXT ·outside(SB), NOSPLIT, $0-0
	SETUP
	PRINT(·outsideStart)
	MOVL $FAR_ADDR, BX
	MOVL $0x5A5A5A5A, 0(BX)
	PRINT(·outsideRead)
	MOVL 0(BX), AX
	PRINT(·outsideValue)
	CALL ·puthex(SB)
	PRINT(·newline)
	EXIT(1)
