package main

// bench is the entry point of the bench guest (bench_386.s).
func bench()

// benchReport prints one "bench: KIND N ticks/op" line.
func benchReport()

// benchStart is the TSC when bench started.
var benchStart uint64

// benchJuice is 1 when CPUID leaf 0x40000000 says juice.
var benchJuice uint32

// benchMMIOAddr is the device register the mmio loop reads.
var benchMMIOAddr uint32

// benchFailed is 1 once a sanity check failed.
var benchFailed uint32

// benchSig receives CPUID leaf 0x40000000's EBX, ECX and EDX.
var benchSig [12]byte

// benchSignature is juice's CPUID signature (vmm.HypervisorSignature).
var benchSignature = "juicejuiceHV"

// Kinds, as printed in "bench: KIND N ticks/op".
var (
	benchCPUID     = "cpuid"
	benchPIO       = "pio"
	benchMMIO      = "mmio"
	benchHypercall = "hypercall"
)

// Lines bench prints.
var (
	benchJuiceMsg   = "bench: hypervisor juice, mmio reads the scratch device's id at 0xd0000000\n"
	benchPlainMsg   = "bench: no juice, mmio reads the HPET's capabilities at 0xfed00000\n"
	benchOps        = "bench: operations per kind: "
	benchValue      = "bench: the mmio register reads "
	benchBadValue   = "bench: FAIL: unexpected mmio value\n"
	benchBadVersion = "bench: FAIL: hypercall 0 did not return 1\n"
	benchPrefix     = "bench: "
	benchSpace      = " "
	benchPerOp      = " ticks/op\n"
	benchSkipped    = "bench: hypercall skipped (not under juice)\n"
	benchTotal      = "bench: total "
	benchTicks      = " ticks\n"
)
