// bench: times VM exits from inside a guest, in TSC ticks per operation
// (the guest does not know the TSC's frequency; under juice and under
// QEMU TCG it is the host's TSC). It runs under juice and on a plain QEMU
// machine (q35, which has an HPET), and prints
//
//	bench: hypervisor juice, mmio reads ...   (or "bench: no juice, ...")
//	bench: operations per kind: 2000
//	bench: the mmio register reads 0x...
//	bench: cpuid N ticks/op                  CPUID leaf 0
//	bench: pio N ticks/op                    IN AL, 0x3fd (COM1's line status)
//	bench: mmio N ticks/op                   MOV EAX, [dev]: juice's scratch ID
//	                                         register, else the HPET's
//	bench: hypercall N ticks/op              VMMCALL function 0 (juice only;
//	                                         else "bench: hypercall skipped ...")
//	bench: total T ticks                     from the first instruction on
//
// Each kind is a loop of BENCH_N operations between two RDTSCs, so the
// figures include the loop's own few instructions. juice is recognised by
// CPUID leaf 0x40000000's signature. The status is 0, or 1 if the mmio
// register or the hypercall returned something unexpected.

#include "textflag.h"
#include "guest.h"

#define BENCH_N 2000
#define HPET_BASE 0xfed00000
#define HC_VERSION 0

// TSTART saves the TSC in DI:SI and loads the loop count into BP.
#define TSTART RDTSC; MOVL AX, SI; MOVL DX, DI; MOVL $BENCH_N, BP
// TSTOP(name) prints the line for the kind named by the Go string name.
#define TSTOP(name) RDTSC; SUBL SI, AX; SBBL DI, DX; MOVL $name(SB), BX; CALL ·benchReport(SB)

TEXT ·bench(SB), NOSPLIT, $0-0
	SETUP
	RDTSC
	MOVL AX, ·benchStart+0(SB)
	MOVL DX, ·benchStart+4(SB)

	// Under juice? CPUID leaf 0x40000000 returns its signature.
	MOVL $0x40000000, AX
	XORL CX, CX
	CPUID
	MOVL $·benchSig(SB), DI
	MOVL BX, 0(DI)
	MOVL CX, 4(DI)
	MOVL DX, 8(DI)
	MOVL ·benchSignature+0(SB), SI
	MOVL $12, CX
	CLD
	REP; CMPSB
	JNE plain
	MOVL $1, ·benchJuice(SB)
	MOVL $SCRATCH_BASE, ·benchMMIOAddr(SB)
	PRINT(·benchJuiceMsg)
	JMP known
plain:
	MOVL $HPET_BASE, ·benchMMIOAddr(SB)
	PRINT(·benchPlainMsg)
known:
	PRINT(·benchOps)
	MOVL $BENCH_N, AX
	XORL DX, DX
	CALL ·putdec(SB)
	PRINT(·newline)

	// One read of the device register first: it must be the scratch ID,
	// or an HPET capabilities word (neither 0 nor all ones).
	MOVL ·benchMMIOAddr(SB), BX
	MOVL 0(BX), AX
	PRINT(·benchValue)
	CALL ·puthex(SB)
	PRINT(·newline)
	CMPL ·benchJuice(SB), $0
	JEQ hpetvalue
	CMPL AX, $SCRATCH_ID
	JEQ cpuid
	JMP badvalue
hpetvalue:
	TESTL AX, AX
	JEQ badvalue
	CMPL AX, $0xffffffff
	JNE cpuid
badvalue:
	MOVL $1, ·benchFailed(SB)
	PRINT(·benchBadValue)

cpuid:
	TSTART
cpuidloop:
	XORL AX, AX
	XORL CX, CX
	CPUID
	DECL BP
	JNE cpuidloop
	TSTOP(·benchCPUID)

	TSTART
	MOVL $COM1_LSR, DX
pioloop:
	INB
	DECL BP
	JNE pioloop
	TSTOP(·benchPIO)

	MOVL ·benchMMIOAddr(SB), BX
	TSTART
mmioloop:
	MOVL 0(BX), AX
	DECL BP
	JNE mmioloop
	TSTOP(·benchMMIO)

	CMPL ·benchJuice(SB), $0
	JNE hypercall
	PRINT(·benchSkipped)
	JMP total
hypercall:
	MOVL $HC_VERSION, AX
	VMMCALL
	CMPL AX, $1
	JEQ hcloop0
	MOVL $1, ·benchFailed(SB)
	PRINT(·benchBadVersion)
hcloop0:
	TSTART
hcloop:
	MOVL $HC_VERSION, AX
	VMMCALL
	DECL BP
	JNE hcloop
	TSTOP(·benchHypercall)

total:
	RDTSC
	SUBL ·benchStart+0(SB), AX
	SBBL ·benchStart+4(SB), DX
	PRINT(·benchTotal)
	CALL ·putdec(SB)
	PRINT(·benchTicks)
	MOVL ·benchFailed(SB), AX
	JMP ·exit(SB)

// benchReport prints "bench: NAME N ticks/op", N being EDX:EAX (the ticks
// of BENCH_N operations) / BENCH_N and NAME the Go string whose header is
// at BX. Keeps every register.
TEXT ·benchReport(SB), NOSPLIT, $0-0
	PUSHAL
	// EDX:EAX /= BENCH_N in two steps, so that no quotient overflows.
	MOVL $BENCH_N, CX
	MOVL AX, BP
	MOVL DX, AX
	XORL DX, DX
	DIVL CX
	MOVL AX, DI             // the quotient's high half
	MOVL BP, AX
	DIVL CX                 // and its low half
	MOVL DI, DX
	PRINT(·benchPrefix)
	MOVL 0(BX), SI
	MOVL 4(BX), CX
	CALL ·write(SB)
	PRINT(·benchSpace)
	CALL ·putdec(SB)
	PRINT(·benchPerOp)
	POPAL
	RET
