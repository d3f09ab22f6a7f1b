// modes: walks the x86 operating modes and prints a marker in each.
//
//	modes: protected mode          (32-bit, as multiboot starts it)
//	modes: real mode               (16-bit real mode, printed by port I/O)
//	modes: protected mode again    (back in 32-bit protected mode)
//	modes: long mode               (64-bit mode: PAE, EFER.LME, paging)
//
// then exits with status 0 (1 if the 64-bit checks fail).

#include "textflag.h"
#include "guest.h"

// RM_BASE is where the 16-bit code runs: its segment is RM_BASE/16 in
// real mode, and selector SEL_CODE16 has base RM_BASE in protected mode,
// so the code's offsets are the same in both.
#define RM_BASE 0x8000
#define RM_SEG 0x0800
// RM_SIZE is how many bytes of ·realmode are copied.
#define RM_SIZE 0x60
// RM_RETPTR is the offset in ·realmode of the far pointer (32-bit offset,
// 16-bit selector) its last instruction jumps through.
#define RM_RETPTR 0x40

// Control register and MSR bits.
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100
#define EFER_LMA 0x400

TEXT ·modes(SB), NOSPLIT, $0-0
	SETUP
	CALL ·loadgdt(SB)       // CS = 0x08; the GDT also has the 16- and 64-bit segments
	PRINT(·modesProtected)

	// Copy the 16-bit code below 1 MiB, where real mode can run it.
	MOVL $·realmode(SB), SI
	MOVL $RM_BASE, DI
	MOVL $RM_SIZE, CX
	CLD
	REP; MOVSB
	// Its way back: a far pointer to backto32 in the 32-bit code segment.
	MOVL $RM_BASE, DI
	MOVL $·backto32(SB), AX
	MOVL AX, RM_RETPTR(DI)
	MOVW $SEL_CODE32, (RM_RETPTR+4)(DI)

	MOVL SP, ·savedSP(SB)
	// Far jump to offset 0 of the 16-bit code segment (base RM_BASE).
	PUSHL $SEL_CODE16
	PUSHL $0
	RETFL

// realmode is copied to RM_BASE and entered in 16-bit protected mode
// (CS = SEL_CODE16, base RM_BASE). Offsets are on the left.
TEXT ·realmode(SB), NOSPLIT, $0-0
	// 16-bit protected mode: data segments with real-mode limits (64 KiB).
	BYTE $0xB8; BYTE $0x20; BYTE $0x00             // 00: mov ax, SEL_DATA16
	BYTE $0x8E; BYTE $0xD8                         // 03: mov ds, ax
	BYTE $0x8E; BYTE $0xC0                         // 05: mov es, ax
	BYTE $0x8E; BYTE $0xD0                         // 07: mov ss, ax
	// Leave protected mode.
	BYTE $0x0F; BYTE $0x20; BYTE $0xC0             // 09: mov eax, cr0
	BYTE $0x24; BYTE $0xFE                         // 0c: and al, ~CR0_PE
	BYTE $0x0F; BYTE $0x22; BYTE $0xC0             // 0e: mov cr0, eax
	BYTE $0xEA; BYTE $0x16; BYTE $0x00             // 11: jmp far RM_SEG:0x16
	BYTE $0x00; BYTE $0x08
	// Real mode: DS = RM_SEG so that the message's offset is its offset
	// here; a stack at 0:0x7000 (unused, but valid).
	BYTE $0xB8; BYTE $0x00; BYTE $0x08             // 16: mov ax, RM_SEG
	BYTE $0x8E; BYTE $0xD8                         // 19: mov ds, ax
	BYTE $0x31; BYTE $0xC0                         // 1b: xor ax, ax
	BYTE $0x8E; BYTE $0xD0                         // 1d: mov ss, ax
	BYTE $0xBC; BYTE $0x00; BYTE $0x70             // 1f: mov sp, 0x7000
	// Print the NUL-terminated message at offset 0x48 to COM1.
	BYTE $0xBE; BYTE $0x48; BYTE $0x00             // 22: mov si, 0x48
	BYTE $0xBA; BYTE $0xF8; BYTE $0x03             // 25: mov dx, COM1
	BYTE $0xAC                                     // 28: lodsb
	BYTE $0x84; BYTE $0xC0                         // 29: test al, al
	BYTE $0x74; BYTE $0x03                         // 2b: jz 0x30
	BYTE $0xEE                                     // 2d: out dx, al
	BYTE $0xEB; BYTE $0xF8                         // 2e: jmp 0x28
	// Back to protected mode, then to 32-bit code through the far
	// pointer at RM_RETPTR (filled in by modes).
	BYTE $0x0F; BYTE $0x20; BYTE $0xC0             // 30: mov eax, cr0
	BYTE $0x0C; BYTE $0x01                         // 33: or al, CR0_PE
	BYTE $0x0F; BYTE $0x22; BYTE $0xC0             // 35: mov cr0, eax
	BYTE $0x66; BYTE $0xFF; BYTE $0x2E             // 38: jmp far dword [RM_RETPTR]
	BYTE $0x40; BYTE $0x00
	BYTE $0x90; BYTE $0x90; BYTE $0x90             // 3d: (padding)
	LONG $0; WORD $0; WORD $0                      // 40: far pointer: offset, selector; pad
	// 48: the message.
	BYTE $'m'; BYTE $'o'; BYTE $'d'; BYTE $'e'; BYTE $'s'; BYTE $':'; BYTE $' '
	BYTE $'r'; BYTE $'e'; BYTE $'a'; BYTE $'l'; BYTE $' '
	BYTE $'m'; BYTE $'o'; BYTE $'d'; BYTE $'e'; BYTE $'\n'; BYTE $0
	// 5a: end (RM_SIZE covers it).

// backto32 runs in 32-bit protected mode with the real-mode data
// segments still loaded: reload them first.
TEXT ·backto32(SB), NOSPLIT, $0-0
	MOVL $SEL_DATA32, AX
	MOV_AX_DS
	MOV_AX_ES
	MOV_AX_SS
	MOVL ·savedSP(SB), SP
	PRINT(·modesBack)

	// Identity-map the first 1 GiB with 2 MiB pages: PML4[0] -> PDPT,
	// PDPT[0] -> PD, PD[i] = i * 2 MiB. BX = the PML4, 4 KiB-aligned.
	MOVL $·pageTables+4095(SB), BX
	ANDL $0xFFFFF000, BX
	MOVL BX, DI
	XORL AX, AX
	MOVL $(3*4096/4), CX
	CLD
	REP; STOSL
	LEAL 0x1003(BX), AX     // PDPT | present | writable
	MOVL AX, 0(BX)
	LEAL 0x2003(BX), AX     // PD | present | writable
	MOVL AX, 0x1000(BX)
	LEAL 0x2000(BX), DI
	MOVL $0x83, AX          // 2 MiB page | present | writable
	MOVL $512, CX
pde:
	MOVL AX, 0(DI)
	ADDL $0x200000, AX
	ADDL $8, DI
	DECL CX
	JNE pde

	// Long mode: CR4.PAE, CR3, EFER.LME, then CR0.PG activates it.
	MOVL CR4, AX
	ORL $CR4_PAE, AX
	MOVL AX, CR4
	MOVL BX, CR3
	MOVL $MSR_EFER, CX
	RDMSR
	ORL $EFER_LME, AX
	WRMSR
	MOVL CR0, AX
	ORL $CR0_PG, AX
	MOVL AX, CR0
	// Compatibility mode now; a far jump to the 64-bit code segment.
	PUSHL $SEL_CODE64
	PUSHL $·long64(SB)
	RETFL

// long64 runs in 64-bit mode. Every instruction here has the same
// meaning in 32-bit and 64-bit mode except the two marked ones, which
// prove the mode: they leave EAX = 1 only in 64-bit mode.
TEXT ·long64(SB), NOSPLIT, $0-0
	MOVL $1, AX
	BYTE $0x48; BYTE $0xC1; BYTE $0xE0; BYTE $0x20 // 64-bit: shl rax, 32 (32-bit: dec eax; shl eax, 0)
	BYTE $0x48; BYTE $0xC1; BYTE $0xE8; BYTE $0x20 // 64-bit: shr rax, 32 (32-bit: dec eax; shr eax, 0)
	MOVL $·modesNotLong(SB), BX
	CMPL AX, $1
	JNE print
	// And the CPU says so: EFER.LMA.
	MOVL $MSR_EFER, CX
	RDMSR
	TESTL $EFER_LMA, AX
	JEQ print
	MOVL $·modesLong(SB), BX

	// Print the string whose header is at BX; no absolute memory operands
	// (RIP-relative in 64-bit mode) and no one-byte DEC (a REX prefix).
print:
	MOVL 0(BX), SI
	MOVL 4(BX), CX
	MOVL $COM1, DX
	CLD
loop:
	TESTL CX, CX
	JEQ printed
	LODSB
	OUTB
	SUBL $1, CX
	JMP loop
printed:
	MOVL $·modesLong(SB), AX
	CMPL BX, AX
	MOVL $0, AX
	JEQ status
	MOVL $1, AX
status:
	MOVL $EXIT_PORT, DX
	OUTL
	CLI
hang:
	HLT
	JMP hang
