// Routines shared by the test guests: console output, exit, GDT.
// They are called with CALL from 32-bit protected mode and preserve
// every register (PUSHAL/POPAL) except what they are documented to set.

#include "textflag.h"
#include "guest.h"

// write prints CX bytes from SI to COM1. The 16550 is written without
// polling its line status: juice's and QEMU's accept every byte at once,
// and each poll would be one more VM exit.
TEXT ·write(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL $COM1, DX
	CLD
loop:
	TESTL CX, CX
	JEQ done
	LODSB
	OUTB
	DECL CX
	JMP loop
done:
	POPAL
	RET

// puts prints the NUL-terminated string at SI to COM1.
TEXT ·puts(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL $COM1, DX
	CLD
loop:
	LODSB
	TESTB AL, AL
	JEQ done
	OUTB
	JMP loop
done:
	POPAL
	RET

// puthex prints EAX as "0x" and 8 hex digits.
TEXT ·puthex(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL AX, BX
	MOVL $COM1, DX
	MOVB $'0', AL
	OUTB
	MOVB $'x', AL
	OUTB
	MOVL ·hexDigits(SB), SI
	MOVL $8, CX
digit:
	ROLL $4, BX             // next nibble, most significant first
	MOVL BX, AX
	ANDL $15, AX
	MOVB (SI)(AX*1), AL
	OUTB
	DECL CX
	JNE digit
	POPAL
	RET

// exit stops the VM with status EAX through the isa-debug-exit port.
TEXT ·exit(SB), NOSPLIT, $0-0
	MOVL $EXIT_PORT, DX
	OUTL
	CLI
hang:
	HLT
	JMP hang

// loadgdt loads gdt, reloads DS, ES, FS, GS and SS with the 32-bit data
// selector and returns with CS = the 32-bit code selector (a far return).
TEXT ·loadgdt(SB), NOSPLIT, $0-0
	// The GDTR operand (16-bit limit, 32-bit base) is built on the stack.
	SUBL $8, SP
	MOVW $(6*8-1), 0(SP)
	MOVL $·gdt(SB), AX
	MOVL AX, 2(SP)
	LGDT 0(SP)
	ADDL $8, SP
	MOVL $SEL_DATA32, AX
	MOV_AX_DS
	MOV_AX_ES
	MOV_AX_FS
	MOV_AX_GS
	MOV_AX_SS
	// Replace the near return address with a far one: EIP, then CS.
	POPL AX
	PUSHL $SEL_CODE32
	PUSHL AX
	RETFL

// putdec prints EDX:EAX as an unsigned decimal number (up to 20 digits),
// built backwards in a buffer on the stack.
TEXT ·putdec(SB), NOSPLIT, $0-0
	PUSHAL
	SUBL $24, SP
	LEAL 24(SP), DI         // DI: one past the last digit
	MOVL $10, BX
digit:
	// EDX:EAX /= 10, remainder in EDX: the high half first, then the
	// remainder of that with the low half.
	MOVL AX, BP
	MOVL DX, AX
	XORL DX, DX
	DIVL BX
	MOVL AX, CX             // the new high half
	MOVL BP, AX
	DIVL BX                 // EAX: the new low half, EDX: the digit
	ADDB $'0', DL
	DECL DI
	MOVB DL, 0(DI)
	MOVL CX, DX
	MOVL AX, BP
	ORL DX, BP
	JNE digit
	MOVL DI, SI
	LEAL 24(SP), CX
	SUBL DI, CX
	CALL ·write(SB)
	ADDL $24, SP
	POPAL
	RET
