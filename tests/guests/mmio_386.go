package main

// mmio is the entry point of the mmio guest (mmio_386.s).
func mmio()

// mmiocheck is mmio's 32-bit check: see mmio_386.s.
func mmiocheck()

// mmio64 is mmio's 64-bit part.
func mmio64()

// check64 is mmio's check in 64-bit mode.
func check64()

// print64 prints a Go string in 32- or 64-bit mode.
func print64()

// mmioFailed is set to 1 by a failed check.
var mmioFailed uint32

// mmioBuf is the RAM that REP MOVSD copies the scratch area into.
var mmioBuf [16]uint32

// mmioPattern is what REP MOVSD copies from RAM into the scratch area.
var mmioPattern = [4]uint32{0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10}

// mmioPageTables is room for the PML4, the PDPT and two page directories
// of mmio's long-mode part, plus the slack to align them to 4 KiB.
var mmioPageTables [5*4096 - 1]byte

// Lines mmio prints: each check prints "mmio: NAME ok" or
// "mmio: FAIL: NAME ...".
var (
	mmioStart    = "mmio: scratch device at 0xd0000000\n"
	mmioPrefix   = "mmio: "
	mmioOK       = " ok\n"
	mmioFail     = "mmio: FAIL: "
	mmioGot      = ": got "
	mmioWant     = ", want "
	mmioLong     = "mmio: long mode\n"
	mmioPast     = "mmio: reading 0xd0001000, past the device\n"
	mmioPastRead = "mmio: FAIL: the read past the device returned\n"
	mmioFailed1  = "mmio: FAIL: some checks failed\n"

	// 32-bit checks.
	mmioID32     = "id: mov r32"
	mmioIDMoffs  = "id: mov eax, moffs32"
	mmioID8      = "id: mov r8 (al, ah)"
	mmioID16     = "id: mov r16 keeps the upper half"
	mmioIDRO     = "id: ignores writes"
	mmioData32   = "scratch: mov r32 write, read back"
	mmioData8    = "scratch: mov r8 writes (cl, dh)"
	mmioData16   = "scratch: unaligned mov r16 write"
	mmioImm32    = "scratch: mov m32, imm32"
	mmioImm816   = "scratch: mov m8, imm8 and mov m16, imm16"
	mmioMovzx8   = "movzx r32, m8"
	mmioMovzx16  = "movzx r32, m16"
	mmioMovsx8   = "movsx r32, m8"
	mmioMovsx16  = "movsx r32, m16"
	mmioAddWO    = "sum: the add register reads 0"
	mmioSum      = "sum: 5 + 7 + 0x100 (byte lane 1)"
	mmioCount    = "counter: counts accesses"
	mmioHole     = "unused register reads 0, ignores writes"
	mmioLast     = "last dword of the page reads 0"
	mmioStosRegs = "rep stosd: edi advanced, ecx 0"
	mmioStosCnt  = "rep stosd: one device access per dword"
	mmioStos     = "rep stosd: 4 dwords written"
	mmioMovsIn1  = "rep movsd device to RAM: dword 1"
	mmioMovsIn3  = "rep movsd device to RAM: dword 3"
	mmioMovsIn4  = "rep movsd device to RAM: dword 4"
	mmioMovsInSI = "rep movsd device to RAM: esi advanced"
	mmioMovsOut1 = "rep movsd RAM to device: dword 1"
	mmioMovsOut3 = "rep movsd RAM to device: dword 3"
	mmioMovsb    = "rep movsb device to device"
	mmioLods     = "lodsd"
	mmioStd      = "std; rep stosb (backwards)"
	mmioStdDI    = "std; rep stosb: edi moved down"

	// 64-bit checks (Go string headers the 64-bit code points DI at).
	mmioQID     = "64-bit: mov r64 reads the id, upper half 0"
	mmioQData   = "64-bit: mov m64, r64 and back"
	mmioQHigh   = "64-bit: mov r32 zero-extends"
	mmioQR10    = "64-bit: mov r10, m64"
	mmioQImm    = "64-bit: mov m64, imm32 sign-extended"
	mmioQMovsxd = "64-bit: movsxd"
	mmioQStos   = "64-bit: rep stosq"
	mmioQSum    = "64-bit: 64-bit add to the sum"
	mmioQMoffs  = "64-bit: mov rax, moffs64"
)
