#include "textflag.h"

// func CPUID(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·CPUID(SB),NOSPLIT,$0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET

// func RDTSC() uint64
TEXT ·RDTSC(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+0(FP)
	RET

// func RDRAND64() (v uint64, ok bool)
TEXT ·RDRAND64(SB),NOSPLIT,$0-9
	RDRANDQ AX
	SETCS BX
	MOVQ AX, v+0(FP)
	MOVB BX, ok+8(FP)
	RET

// func RDSEED64() (v uint64, ok bool)
TEXT ·RDSEED64(SB),NOSPLIT,$0-9
	RDSEEDQ AX
	SETCS BX
	MOVQ AX, v+0(FP)
	MOVB BX, ok+8(FP)
	RET

// func RDMSR(msr uint32) uint64
TEXT ·RDMSR(SB),NOSPLIT,$0-16
	MOVL msr+0(FP), CX
	RDMSR
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+8(FP)
	RET

// func WRMSR(msr uint32, v uint64)
TEXT ·WRMSR(SB),NOSPLIT,$0-16
	MOVL msr+0(FP), CX
	MOVQ v+8(FP), AX
	MOVQ AX, DX
	SHRQ $32, DX
	WRMSR
	RET

// func Inb(port uint16) uint8
TEXT ·Inb(SB),NOSPLIT,$0-9
	MOVW port+0(FP), DX
	XORQ AX, AX
	INB
	MOVB AX, ret+8(FP)
	RET

// func Outb(port uint16, v uint8)
TEXT ·Outb(SB),NOSPLIT,$0-3
	MOVW port+0(FP), DX
	MOVB v+2(FP), AX
	OUTB
	RET

// func Inw(port uint16) uint16
TEXT ·Inw(SB),NOSPLIT,$0-10
	MOVW port+0(FP), DX
	XORQ AX, AX
	INW
	MOVW AX, ret+8(FP)
	RET

// func Outw(port uint16, v uint16)
TEXT ·Outw(SB),NOSPLIT,$0-4
	MOVW port+0(FP), DX
	MOVW v+2(FP), AX
	OUTW
	RET

// func Inl(port uint16) uint32
TEXT ·Inl(SB),NOSPLIT,$0-12
	MOVW port+0(FP), DX
	INL
	MOVL AX, ret+8(FP)
	RET

// func Outl(port uint16, v uint32)
TEXT ·Outl(SB),NOSPLIT,$0-8
	MOVW port+0(FP), DX
	MOVL v+4(FP), AX
	OUTL
	RET

// func Halt()
TEXT ·Halt(SB),NOSPLIT,$0-0
	HLT
	RET

// func HaltForever()
TEXT ·HaltForever(SB),NOSPLIT,$0-0
	CLI
loop:
	HLT
	JMP loop

// func Cli()
TEXT ·Cli(SB),NOSPLIT,$0-0
	CLI
	RET

// func Sti()
TEXT ·Sti(SB),NOSPLIT,$0-0
	STI
	RET

// func StiHalt()
TEXT ·StiHalt(SB),NOSPLIT,$0-0
	STI
	HLT
	CLI
	RET

// func Pause()
TEXT ·Pause(SB),NOSPLIT,$0-0
	PAUSE
	RET

// func Flags() uint64
TEXT ·Flags(SB),NOSPLIT,$0-8
	PUSHFQ
	POPQ AX
	MOVQ AX, ret+0(FP)
	RET

// func ReadCR0() uint64
TEXT ·ReadCR0(SB),NOSPLIT,$0-8
	MOVQ CR0, AX
	MOVQ AX, ret+0(FP)
	RET

// func WriteCR0(v uint64)
TEXT ·WriteCR0(SB),NOSPLIT,$0-8
	MOVQ v+0(FP), AX
	MOVQ AX, CR0
	RET

// func ReadCR2() uint64
TEXT ·ReadCR2(SB),NOSPLIT,$0-8
	MOVQ CR2, AX
	MOVQ AX, ret+0(FP)
	RET

// func ReadCR3() uint64
TEXT ·ReadCR3(SB),NOSPLIT,$0-8
	MOVQ CR3, AX
	MOVQ AX, ret+0(FP)
	RET

// func WriteCR3(v uint64)
TEXT ·WriteCR3(SB),NOSPLIT,$0-8
	MOVQ v+0(FP), AX
	MOVQ AX, CR3
	RET

// func ReadCR4() uint64
TEXT ·ReadCR4(SB),NOSPLIT,$0-8
	MOVQ CR4, AX
	MOVQ AX, ret+0(FP)
	RET

// func WriteCR4(v uint64)
TEXT ·WriteCR4(SB),NOSPLIT,$0-8
	MOVQ v+0(FP), AX
	MOVQ AX, CR4
	RET

// func Invlpg(va uintptr)
TEXT ·Invlpg(SB),NOSPLIT,$0-8
	MOVQ va+0(FP), AX
	INVLPG (AX)
	RET

// func Xgetbv(xcr uint32) uint64
TEXT ·Xgetbv(SB),NOSPLIT,$0-16
	MOVL xcr+0(FP), CX
	XGETBV
	SHLQ $32, DX
	ORQ DX, AX
	MOVQ AX, ret+8(FP)
	RET

// func Xsetbv(xcr uint32, v uint64)
TEXT ·Xsetbv(SB),NOSPLIT,$0-16
	MOVL xcr+0(FP), CX
	MOVQ v+8(FP), AX
	MOVQ AX, DX
	SHRQ $32, DX
	XSETBV
	RET
