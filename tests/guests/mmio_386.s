// mmio: reads, then writes, guest-physical address 0xd0000000: in the
// hole below 4 GiB where a PC has device memory, but no device of juice's
// is there. The access is an MMIO exit that no device claims, so juice
// must stop the VM with "juice: vm NAME: fault: ..." naming the address.
// (outside does the same with a write first, at an address no PC maps.)
//
//	mmio: reading 0xd0000000
//
// Anything after that line is a failure (status 1).

#include "textflag.h"
#include "guest.h"

#define MMIO_ADDR 0xd0000000

TEXT ·mmio(SB), NOSPLIT, $0-0
	SETUP
	PRINT(·mmioStart)
	MOVL $MMIO_ADDR, BX
	MOVL 0(BX), AX
	PRINT(·mmioValue)
	CALL ·puthex(SB)
	PRINT(·newline)
	PRINT(·mmioWrite)
	MOVL AX, 0(BX)
	EXIT(1)
