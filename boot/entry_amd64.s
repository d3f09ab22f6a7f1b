#include "textflag.h"

// Boot page tables, stack and the 64-bit GDT live in the image's NOPTR bss.
// The page tables are 4 KiB-aligned at run time (ALIGN4K below): 1 PML4,
// 1 PDPT, 4 PDs mapping 0-4 GiB with 2 MiB pages, plus slack for alignment.
GLOBL ·bootTables(SB), NOPTR, $(7*4096)
GLOBL ·bootStack(SB), NOPTR, $65536
GLOBL ·pdptAddr(SB), NOPTR, $8

// The GDT: null, 64-bit code (0x08), data (0x10), 32-bit code (0x18).
DATA ·gdt+0(SB)/8, $0
DATA ·gdt+8(SB)/8, $0x00209A0000000000
DATA ·gdt+16(SB)/8, $0x0000920000000000
DATA ·gdt+24(SB)/8, $0x00CF9A000000FFFF
GLOBL ·gdt(SB), RODATA, $32

#define IMAGE_BASE 0x1ff000
// e_entry (low 32 bits) in the loaded ELF header.
#define E_ENTRY (IMAGE_BASE+0x18)

// ADDR32 puts the absolute address of sym into dst in 32-bit mode.
// CALL +0 pushes the address of the POP; the POP takes it into AX. In 32-bit
// mode "LEAL sym(SB), dst" (8D /r disp32, emitted as RIP-relative by the Go
// assembler) yields disp32 = sym - (end of the LEA) = sym - (AX + 7).
// Clobbers AX. dst must not be AX.
#define ADDR32(sym, dst) \
	BYTE $0xE8; LONG $0; \
	POPQ AX; \
	LEAL sym, dst; \
	ADDL AX, dst; \
	ADDL $7, dst

// func entry32()
// In: 32-bit protected mode, paging off, interrupts off (both protocols).
// PVH: EBX = hvm_start_info. Multiboot2: EAX = magic, EBX = MBI.
TEXT ·entry32(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD
	// A stack, without a stack: ESP = bootStack+64K computed from e_entry.
	// LEAL at entry32+2 is 6 bytes long: disp32 = top - (entry32 + 8).
	LEAL ·bootStack+65536(SB), SP
	MOVL $E_ENTRY, CX
	ADDL (CX), SP
	ADDL $8, SP
	MOVL AX, DX        // EDX = magic; EBX (boot info) stays in EBX

	// entryEAX, entryEBX, entryTSC
	ADDR32(·entryEAX(SB), DI)
	MOVL DX, (DI)
	ADDR32(·entryEBX(SB), DI)
	MOVL BX, (DI)
	RDTSC
	ADDR32(·entryTSC(SB), DI)
	MOVL AX, (DI)
	MOVL DX, 4(DI)

	// SI = page tables, 4 KiB-aligned; zero 6 pages.
	ADDR32(·bootTables(SB), SI)
	ADDL $4095, SI
	ANDL $~4095, SI
	MOVL SI, DI
	XORL AX, AX
	MOVL $(6*1024), CX
	REP; STOSL

	// PML4[0] = PDPT | P | W
	LEAL 4096(SI), AX
	ORL $3, AX
	MOVL AX, (SI)
	// PDPT[0..3] = PD0..3 | P | W
	LEAL 8192(SI), AX
	ORL $3, AX
	MOVL AX, 4096(SI)
	ADDL $4096, AX
	MOVL AX, 4104(SI)
	ADDL $4096, AX
	MOVL AX, 4112(SI)
	ADDL $4096, AX
	MOVL AX, 4120(SI)
	// PD entries: 2048 x 2 MiB pages, P | W | PS
	LEAL 8192(SI), DI
	MOVL $0x83, AX
	MOVL $2048, CX
fillpd:
	MOVL AX, (DI)
	ADDL $0x200000, AX
	ADDL $8, DI
	DECL CX
	JNZ fillpd
	// remember the PDPT for the kernel
	ADDR32(·pdptAddr(SB), DI)
	LEAL 4096(SI), AX
	MOVL AX, (DI)

	// CR4.PAE | PGE? PAE only for now.
	MOVL CR4, AX
	ORL $0x20, AX
	MOVL AX, CR4
	MOVL SI, CR3
	// EFER.LME
	MOVL $0xC0000080, CX
	RDMSR
	ORL $0x100, AX
	WRMSR
	// CR0: PG | WP | NE | MP | PE; clear EM, TS
	MOVL CR0, AX
	ANDL $~0xC, AX
	ORL $0x80010023, AX
	MOVL AX, CR0

	// LGDT from a descriptor built on the stack.
	ADDR32(·gdt(SB), DI)
	SUBL $8, SP
	MOVW $31, (SP)
	MOVL DI, 2(SP)
	LGDT (SP)
	ADDL $8, SP

	// Far return to entry64 in the 64-bit code segment (0x08).
	ADDR32(·entry64(SB), DI)
	MOVL $0x08, AX
	PUSHQ AX           // 32-bit mode: PUSH EAX (same encoding)
	PUSHQ DI
	BYTE $0xCB         // LRET (far return, 32-bit operands)

// func entry64()
TEXT ·entry64(SB),NOSPLIT|NOFRAME,$0
	MOVL $0x10, AX
	BYTE $0x8E; BYTE $0xD8 // MOV DS, AX
	BYTE $0x8E; BYTE $0xC0 // MOV ES, AX
	BYTE $0x8E; BYTE $0xD0 // MOV SS, AX
	XORL AX, AX
	BYTE $0x8E; BYTE $0xE0 // MOV FS, AX
	BYTE $0x8E; BYTE $0xE8 // MOV GS, AX
	// The stack pointer was a 32-bit value; zero-extend it.
	MOVL SP, SP
	ANDQ $~15, SP
	// SSE before any Go code: CR0.MP=1 EM=0 TS=0 NE=1; CR4.OSFXSR|OSXMMEXCPT.
	MOVQ CR0, AX
	ANDQ $~0xC, AX
	ORQ $0x22, AX
	MOVQ AX, CR0
	MOVQ CR4, AX
	ORQ $0x600, AX
	MOVQ AX, CR4
	BYTE $0xDB; BYTE $0xE3 // FNINIT
	RDTSC
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ·longModeTSC(SB)
	JMP juice∕kernel·entry64(SB)

// func BootPDPT() uint64
TEXT ·BootPDPT(SB),NOSPLIT,$0-8
	MOVQ ·pdptAddr(SB), AX
	MOVQ AX, ret+0(FP)
	RET
