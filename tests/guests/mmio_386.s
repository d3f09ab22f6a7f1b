// mmio: drives juice's scratch MMIO test device (vmm/devices.Scratch at
// guest-physical 0xd0000000, see guest.h) through juice's MMIO
// instruction emulator: every access below is a nested page fault that
// juice decodes and emulates. Each check prints one line,
//
//	mmio: scratch device at 0xd0000000
//	mmio: NAME ok                     (or "mmio: FAIL: NAME: got X, want Y")
//	...
//	mmio: long mode
//	mmio: 64-bit: NAME ok             (64-bit accesses, REX forms)
//	...
//	mmio: reading 0xd0001000, past the device
//
// The 32-bit checks cover MOV r32/r16/r8 (AH and DH included) both ways,
// MOV EAX, moffs32, MOV m, imm8/16/32, MOVZX and MOVSX from 8 and 16 bits,
// the ID register's read-only bytes, the sum and counter registers,
// REP STOSD into the device, REP MOVSD device to RAM and RAM to device,
// REP MOVSB device to device, LODSD, and a backwards REP STOSB (STD).
// Then it enters long mode (the page tables map 0-1 GiB and 3-4 GiB,
// where the device is) for 8-byte accesses, R10, MOVSXD, REP STOSQ and
// MOV RAX, moffs64.
//
// Last, it reads 0xd0001000: the page after the device's, neither RAM nor
// a device, so juice must stop the VM with "juice: vm NAME: fault: ..."
// naming that address. A line after that one is a failure (status 1); if
// a check failed, the guest exits with status 1 instead of reading it.

#include "textflag.h"
#include "guest.h"

// CHECK(name, want): compares EAX with want, prints the result line for
// the check named by the Go string name. Clobbers CX, DX and SI.
#define CHECK(name, want) MOVL $want, DX; MOVL name+0(SB), SI; MOVL name+4(SB), CX; CALL ·mmiocheck(SB)

// D(k) is byte k of the scratch area (BX holds the device's base).
#define D(k) (SCRATCH_DATA+k)(BX)

// Control register and MSR bits.
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

TEXT ·mmio(SB), NOSPLIT, $0-0
	SETUP
	CALL ·loadgdt(SB)       // the GDT has the 64-bit code segment
	PRINT(·mmioStart)
	MOVL $SCRATCH_BASE, BX

	// The ID register, read every way.
	MOVL 0(BX), AX                          // 8B /r
	CHECK(·mmioID32, SCRATCH_ID)
	XORL AX, AX
	BYTE $0xA1; LONG $SCRATCH_BASE          // mov eax, [0xd0000000]
	CHECK(·mmioIDMoffs, SCRATCH_ID)
	MOVL $0xffffffff, AX
	MOVB 1(BX), AL                          // 'i'
	MOVB 3(BX), AH                          // 'j'
	CHECK(·mmioID8, 0xffff6a69)
	MOVL $0xffffffff, AX
	MOVW 2(BX), AX                          // "uj"
	CHECK(·mmioID16, 0xffff6a75)
	MOVL $0, 0(BX)
	MOVB $0, 1(BX)
	MOVL 0(BX), AX
	CHECK(·mmioIDRO, SCRATCH_ID)

	// The scratch area: writes of every width read back, lane by lane.
	MOVL $0x11223344, CX
	MOVL CX, D(0)                           // 89 /r
	MOVL D(0), AX
	CHECK(·mmioData32, 0x11223344)
	MOVL $0xab00, DX
	MOVB DH, D(1)                           // 88 /r, high-byte register
	MOVL $0xcd, CX
	MOVB CL, D(2)
	MOVL D(0), AX
	CHECK(·mmioData8, 0x11cdab44)
	MOVL $0xbeef, CX
	MOVW CX, D(3)                           // 66 89 /r, across a dword boundary
	MOVL D(0), AX
	CHECK(·mmioData16, 0xefcdab44)
	MOVL $0x5a5a1234, D(8)                  // C7 /0
	MOVL D(8), AX
	CHECK(·mmioImm32, 0x5a5a1234)
	MOVB $0x7f, D(12)                       // C6 /0
	MOVW $0x8001, D(13)                     // 66 C7 /0
	MOVL D(12), AX
	CHECK(·mmioImm816, 0x0080017f)

	// Zero and sign extension from the device.
	MOVL $0xffffffff, AX
	MOVBLZX D(14), AX                       // 0F B6
	CHECK(·mmioMovzx8, 0x80)
	MOVL $0xffffffff, AX
	MOVWLZX D(13), AX                       // 0F B7
	CHECK(·mmioMovzx16, 0x8001)
	XORL AX, AX
	MOVBLSX D(14), AX                       // 0F BE
	CHECK(·mmioMovsx8, 0xffffff80)
	XORL AX, AX
	MOVWLSX D(13), AX                       // 0F BF
	CHECK(·mmioMovsx16, 0xffff8001)

	// The sum register adds; the counter counts.
	MOVL $5, SCRATCH_ADD(BX)
	MOVL $7, SCRATCH_ADD(BX)
	MOVB $1, (SCRATCH_ADD+1)(BX)            // adds 0x100
	MOVL $0xffffffff, AX
	MOVL SCRATCH_ADD(BX), AX
	CHECK(·mmioAddWO, 0)
	MOVL SCRATCH_SUM(BX), AX
	CHECK(·mmioSum, 0x10c)
	MOVL SCRATCH_COUNT(BX), CX              // c
	MOVL 0(BX), AX                          // c+1
	MOVL SCRATCH_COUNT(BX), AX              // reads c+2
	SUBL CX, AX
	CHECK(·mmioCount, 2)

	// Outside the registers: reads 0, ignores writes.
	MOVL $0xffffffff, 0x100(BX)
	MOVL 0x100(BX), AX
	CHECK(·mmioHole, 0)
	MOVL (SCRATCH_SIZE-4)(BX), AX
	CHECK(·mmioLast, 0)

	// REP STOSD into the device: 4 dwords at D(16).
	MOVL SCRATCH_COUNT(BX), BP              // c
	CLD
	LEAL D(16), DI
	MOVL $0xc0ffee00, AX
	MOVL $4, CX
	REP; STOSL                              // c+1 .. c+4
	MOVL DI, AX
	SUBL BX, AX
	ADDL CX, AX
	CHECK(·mmioStosRegs, SCRATCH_DATA+32)
	MOVL SCRATCH_COUNT(BX), AX              // reads c+5
	SUBL BP, AX
	CHECK(·mmioStosCnt, 5)
	MOVL D(28), AX
	CHECK(·mmioStos, 0xc0ffee00)

	// REP MOVSD from the device into RAM: the whole scratch area.
	LEAL D(0), SI
	MOVL $·mmioBuf(SB), DI
	MOVL $(64/4), CX
	REP; MOVSL
	MOVL SI, AX
	SUBL BX, AX
	ADDL CX, AX
	CHECK(·mmioMovsInSI, SCRATCH_DATA+64)
	MOVL $·mmioBuf(SB), DI
	MOVL 4(DI), AX
	CHECK(·mmioMovsIn1, 0x000000be)
	MOVL 12(DI), AX
	CHECK(·mmioMovsIn3, 0x0080017f)
	MOVL 16(DI), AX
	CHECK(·mmioMovsIn4, 0xc0ffee00)

	// REP MOVSD from RAM into the device: 4 dwords at D(32).
	MOVL $·mmioPattern(SB), SI
	LEAL D(32), DI
	MOVL $4, CX
	REP; MOVSL
	MOVL D(36), AX
	CHECK(·mmioMovsOut1, 0x05060708)
	MOVL D(44), AX
	CHECK(·mmioMovsOut3, 0x0d0e0f10)

	// REP MOVSB within the device: D(32..35) to D(48..51).
	LEAL D(32), SI
	LEAL D(48), DI
	MOVL $4, CX
	REP; MOVSB
	MOVL D(48), AX
	CHECK(·mmioMovsb, 0x01020304)

	// LODSD from the ID register.
	MOVL BX, SI
	XORL AX, AX
	LODSL
	CHECK(·mmioLods, SCRATCH_ID)

	// Backwards: STD; REP STOSB fills D(63) down to D(60).
	LEAL D(63), DI
	MOVL $0x99, AX
	MOVL $4, CX
	STD
	REP; STOSB
	CLD
	MOVL D(60), AX
	CHECK(·mmioStd, 0x99999999)
	MOVL DI, AX
	SUBL BX, AX
	CHECK(·mmioStdDI, SCRATCH_DATA+59)

	// Long mode. Identity-map 0-1 GiB (the guest) and 3-4 GiB (the
	// device) with 2 MiB pages: PML4 at BP, PDPT at BP+0x1000, the page
	// directories at BP+0x2000 (0-1 GiB) and BP+0x3000 (3-4 GiB).
	MOVL $·mmioPageTables+4095(SB), BP
	ANDL $0xFFFFF000, BP
	MOVL BP, DI
	XORL AX, AX
	MOVL $(4*4096/4), CX
	REP; STOSL
	LEAL 0x1003(BP), AX
	MOVL AX, 0(BP)                          // PML4[0] -> PDPT
	LEAL 0x2003(BP), AX
	MOVL AX, 0x1000(BP)                     // PDPT[0] -> PD 0-1 GiB
	LEAL 0x3003(BP), AX
	MOVL AX, 0x1018(BP)                     // PDPT[3] -> PD 3-4 GiB
	LEAL 0x2000(BP), DI
	MOVL $0x83, AX                          // 2 MiB | present | writable
	MOVL $512, CX
pd0:
	MOVL AX, 0(DI)
	ADDL $0x200000, AX
	ADDL $8, DI
	DECL CX
	JNE pd0
	MOVL $0xC0000083, AX
	MOVL $512, CX
pd3:
	MOVL AX, 0(DI)
	ADDL $0x200000, AX
	ADDL $8, DI
	DECL CX
	JNE pd3
	MOVL CR4, AX
	ORL $CR4_PAE, AX
	MOVL AX, CR4
	MOVL BP, CR3
	MOVL $MSR_EFER, CX
	RDMSR
	ORL $EFER_LME, AX
	WRMSR
	MOVL CR0, AX
	ORL $CR0_PG, AX
	MOVL AX, CR0
	PUSHL $SEL_CODE64
	PUSHL $·mmio64(SB)
	RETFL

// mmiocheck compares EAX (the value read) with EDX (the expected one) and
// prints "mmio: NAME ok" or "mmio: FAIL: NAME: got EAX, want EDX", NAME
// being CX bytes at SI; a failure sets mmioFailed. Keeps every register.
TEXT ·mmiocheck(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL SI, DI
	MOVL CX, BP
	CMPL AX, DX
	JNE bad
	PRINT(·mmioPrefix)
	MOVL DI, SI
	MOVL BP, CX
	CALL ·write(SB)
	PRINT(·mmioOK)
	POPAL
	RET
bad:
	MOVL $1, ·mmioFailed(SB)
	PRINT(·mmioFail)
	MOVL DI, SI
	MOVL BP, CX
	CALL ·write(SB)
	PRINT(·mmioGot)
	CALL ·puthex(SB)
	PRINT(·mmioWant)
	MOVL DX, AX
	CALL ·puthex(SB)
	PRINT(·newline)
	POPAL
	RET

// Instructions the 64-bit part needs that the 386 assembler cannot spell:
// mov rax, -1; mov rax, imm64 (hi:lo); mov rdx, imm64; mov rax, [rbx+d];
// mov [rbx+d], rax (d < 0x80).
#define MOV_RAX_M1 BYTE $0x48; BYTE $0xC7; BYTE $0xC0; LONG $0xffffffff
#define MOV_RAX(lo, hi) BYTE $0x48; BYTE $0xB8; LONG $lo; LONG $hi
#define MOV_RDX(lo, hi) BYTE $0x48; BYTE $0xBA; LONG $lo; LONG $hi
#define LOAD_RAX(d) BYTE $0x48; BYTE $0x8B; BYTE $0x43; BYTE $d
#define STORE_RAX(d) BYTE $0x48; BYTE $0x89; BYTE $0x43; BYTE $d

// CHECK64(name): compares RAX with RDX and prints the result line for the
// check named by the Go string name. Clobbers DI.
#define CHECK64(name) MOVL $name(SB), DI; CALL ·check64(SB)

// mmio64 is the 64-bit part. Its instructions either mean the same in 32-
// and 64-bit mode (no absolute memory operands, which are RIP-relative in
// 64-bit mode; no one-byte INC/DEC, which are REX prefixes) or are spelt
// as bytes.
TEXT ·mmio64(SB), NOSPLIT, $0-0
	MOVL $·stack+STACK_SIZE(SB), SP         // zero-extended into RSP
	MOVL $SCRATCH_BASE, BX
	MOVL $·mmioLong(SB), SI
	CALL ·print64(SB)

	MOV_RAX_M1
	BYTE $0x48; BYTE $0x8B; BYTE $0x03      // mov rax, [rbx]
	MOV_RDX(SCRATCH_ID, 0)
	CHECK64(·mmioQID)

	MOV_RAX(0x44332211, 0x88776655)
	STORE_RAX(0x18)                         // D(8)
	MOV_RAX_M1
	LOAD_RAX(0x18)
	MOV_RDX(0x44332211, 0x88776655)
	CHECK64(·mmioQData)

	MOV_RAX_M1
	BYTE $0x8B; BYTE $0x43; BYTE $0x1C      // mov eax, [rbx+0x1c]
	MOV_RDX(0x88776655, 0)
	CHECK64(·mmioQHigh)

	BYTE $0x4C; BYTE $0x8B; BYTE $0x53; BYTE $0x18 // mov r10, [rbx+0x18]
	MOV_RAX_M1
	BYTE $0x4C; BYTE $0x89; BYTE $0xD0      // mov rax, r10
	MOV_RDX(0x44332211, 0x88776655)
	CHECK64(·mmioQR10)

	BYTE $0x48; BYTE $0xC7; BYTE $0x43; BYTE $0x20; LONG $0xfffffffe // mov qword [rbx+0x20], -2
	LOAD_RAX(0x20)
	MOV_RDX(0xfffffffe, 0xffffffff)
	CHECK64(·mmioQImm)

	MOVL $0x80000001, 0x28(BX)
	BYTE $0x48; BYTE $0x63; BYTE $0x43; BYTE $0x28 // movsxd rax, [rbx+0x28]
	MOV_RDX(0x80000001, 0xffffffff)
	CHECK64(·mmioQMovsxd)

	BYTE $0x48; BYTE $0x8D; BYTE $0x7B; BYTE $0x30 // lea rdi, [rbx+0x30]
	MOVL $2, CX
	MOV_RAX(0x89abcdef, 0x01234567)
	CLD
	BYTE $0xF3; BYTE $0x48; BYTE $0xAB      // rep stosq
	MOV_RAX_M1
	LOAD_RAX(0x38)
	MOV_RDX(0x89abcdef, 0x01234567)
	CHECK64(·mmioQStos)

	MOV_RAX(0, 1)
	STORE_RAX(SCRATCH_ADD)
	LOAD_RAX(SCRATCH_SUM)
	MOV_RDX(0x10c, 1)
	CHECK64(·mmioQSum)

	MOV_RAX_M1
	BYTE $0x48; BYTE $0xA1; LONG $SCRATCH_BASE; LONG $0 // mov rax, [0xd0000000]
	MOV_RDX(SCRATCH_ID, 0)
	CHECK64(·mmioQMoffs)

	MOVL $·mmioFailed(SB), AX
	MOVL 0(AX), AX
	TESTL AX, AX
	JNE failed
	MOVL $·mmioPast(SB), SI
	CALL ·print64(SB)
	MOVL SCRATCH_SIZE(BX), AX               // guest-physical 0xd0001000
	MOVL $·mmioPastRead(SB), SI
	CALL ·print64(SB)
	JMP exit1
failed:
	MOVL $·mmioFailed1(SB), SI
	CALL ·print64(SB)
exit1:
	MOVL $1, AX
	MOVL $EXIT_PORT, DX
	OUTL
	CLI
hang:
	HLT
	JMP hang

// check64 compares RAX (the value read) with RDX (the expected one) and
// prints "mmio: NAME ok" or "mmio: FAIL: NAME", NAME being the Go string
// whose header is at DI; a failure sets mmioFailed. It runs in 64-bit
// mode (PUSHL/POPL are 8-byte pushes there) and keeps every register.
TEXT ·check64(SB), NOSPLIT, $0-0
	PUSHL AX
	PUSHL CX
	PUSHL DX
	PUSHL SI
	BYTE $0x48; BYTE $0x39; BYTE $0xD0      // cmp rax, rdx
	JNE bad
	MOVL $·mmioPrefix(SB), SI
	CALL ·print64(SB)
	MOVL DI, SI
	CALL ·print64(SB)
	MOVL $·mmioOK(SB), SI
	CALL ·print64(SB)
	JMP done
bad:
	MOVL $·mmioFailed(SB), AX
	MOVL $1, 0(AX)
	MOVL $·mmioFail(SB), SI
	CALL ·print64(SB)
	MOVL DI, SI
	CALL ·print64(SB)
	MOVL $·newline(SB), SI
	CALL ·print64(SB)
done:
	POPL SI
	POPL DX
	POPL CX
	POPL AX
	RET

// print64 prints the Go string whose header is at SI to COM1, in 32- or
// 64-bit mode. Clobbers AX, CX, DX and SI.
TEXT ·print64(SB), NOSPLIT, $0-0
	MOVL 4(SI), CX
	MOVL 0(SI), SI
	MOVL $COM1, DX
	CLD
loop:
	TESTL CX, CX
	JEQ done
	LODSB
	OUTB
	SUBL $1, CX
	JMP loop
done:
	RET
