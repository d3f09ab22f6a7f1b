// cpuid: checks what CPUID tells a guest of juice.
//
//	cpuid: signature [SIGNATURE] max leaf 0x...
//	cpuid: hypervisor bit set, no VMX, no SVM
//	cpuid: ok
//
// Leaf 0x40000000's signature must start with cpuidSignature, leaf 1 ECX
// must have the hypervisor bit (31) and not VMX (5), and leaf 0x80000001
// ECX must not have SVM (2): juice does not offer nested virtualization.
// Each failure prints a "cpuid: FAIL: ..." line; the status is 0 when
// every check passed, else 1.

#include "textflag.h"
#include "guest.h"

TEXT ·cpuid(SB), NOSPLIT, $0-0
	SETUP
	XORL BP, BP                     // BP: 1 once a check failed

	// The hypervisor leaf.
	MOVL $0x40000000, AX
	XORL CX, CX
	CPUID
	MOVL $·cpuidSig(SB), DI
	MOVL BX, 0(DI)
	MOVL CX, 4(DI)
	MOVL DX, 8(DI)
	PRINT(·cpuidSigMsg)
	MOVL $·cpuidSig(SB), SI
	MOVL $12, CX
	CALL ·write(SB)
	PRINT(·cpuidMaxMsg)
	CALL ·puthex(SB)
	PRINT(·newline)
	// Compare the first len(cpuidSignature) bytes.
	MOVL ·cpuidSignature+0(SB), SI
	MOVL ·cpuidSignature+4(SB), CX
	MOVL $·cpuidSig(SB), DI
	CLD
	REP; CMPSB
	JEQ leaf1
	PRINT(·cpuidBadSig)
	PRINT(·cpuidSignature)
	PRINT(·cpuidQuote)
	MOVL $1, BP

leaf1:
	MOVL $1, AX
	XORL CX, CX
	CPUID
	MOVL CX, DI
	TESTL $0x80000000, DI
	JNE vmx
	PRINT(·cpuidNoHV)
	MOVL $1, BP
vmx:
	TESTL $0x20, DI
	JEQ svm
	PRINT(·cpuidVMX)
	MOVL $1, BP
svm:
	MOVL $0x80000000, AX
	XORL CX, CX
	CPUID
	CMPL AX, $0x80000001
	JCS summary                     // no leaf 0x80000001 at all: no SVM
	MOVL $0x80000001, AX
	XORL CX, CX
	CPUID
	TESTL $0x4, CX
	JEQ summary
	PRINT(·cpuidSVM)
	MOVL $1, BP

summary:
	TESTL BP, BP
	JNE fail
	PRINT(·cpuidHypervisor)
	PRINT(·cpuidOK)
	EXIT(0)
fail:
	EXIT(1)
