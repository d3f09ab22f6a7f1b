// hello: the smoke test. It checks the multiboot magic, prints
//
//	hello from guest
//	cmdline: [CMDLINE]
//	modules: 0xN
//	module: 0xSIZE [MODULE CMDLINE]      (one line per module)
//
// from the multiboot information (the command line and module lines only
// when the loader's flags say they are there) and exits with status 0.

#include "textflag.h"
#include "guest.h"

// Multiboot information offsets and flags.
#define MBI_FLAGS 0
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_HAS_CMDLINE 4
#define MBI_HAS_MODS 8

TEXT ·hello(SB), NOSPLIT, $0-0
	SETUP
	CMPL AX, $MB_MAGIC
	JEQ booted
	PRINT(·helloBadMagic)
	CALL ·puthex(SB)
	PRINT(·newline)
	EXIT(1)

booted:
	PRINT(·helloMsg)
	MOVL MBI_FLAGS(BX), DI

	TESTL $MBI_HAS_CMDLINE, DI
	JEQ modules
	PRINT(·helloCmdline)
	MOVL MBI_CMDLINE(BX), SI
	CALL ·puts(SB)
	PRINT(·helloClose)

modules:
	TESTL $MBI_HAS_MODS, DI
	JEQ done
	PRINT(·helloModules)
	MOVL MBI_MODS_COUNT(BX), BP     // BP: modules left
	MOVL BP, AX
	CALL ·puthex(SB)
	PRINT(·newline)
	MOVL MBI_MODS_ADDR(BX), DI      // DI: next entry {start, end, string, reserved}
module:
	TESTL BP, BP
	JEQ done
	PRINT(·helloModule)
	MOVL 4(DI), AX
	SUBL 0(DI), AX
	CALL ·puthex(SB)
	PRINT(·helloOpen)
	MOVL 8(DI), SI
	CALL ·puts(SB)
	PRINT(·helloClose)
	ADDL $16, DI
	DECL BP
	JMP module

done:
	EXIT(0)
