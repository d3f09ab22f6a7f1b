package main

// ipi is the entry point of the ipi guest (ipi_386.s).
func ipi()

// ipiAP is where vCPU 1 enters 32-bit protected mode.
func ipiAP()

// ipiPing, ipiPong and ipiWake are the IPI handlers, ipiUnexpected the
// handler of every other vector.
func ipiPing()
func ipiPong()
func ipiWake()
func ipiUnexpected()

// ipiGate writes an interrupt gate; ipiLIDT loads ipiIDT.
func ipiGate()
func ipiLIDT()

// ipiAwait waits for one of vCPU 1's counters; ipiSend sends a ping.
func ipiAwait()
func ipiSend()

// ipiStart, ipiElapsed and ipiLate time the waits on the TSC (ipiT0).
func ipiStart()
func ipiElapsed()
func ipiLate()

// ipiTramp is the real-mode start-up stub copied below 1 MiB.
func ipiTramp()

var (
	// ipiIDT is the IDT both vCPUs use.
	ipiIDT [256]uint64
	// ipiAPStack is vCPU 1's stack.
	ipiAPStack [8192]byte
	// ipiUp is set by vCPU 1 once it runs in protected mode; ipiSpins
	// counts its loop; ipiPongs counts the pongs the boot vCPU took;
	// ipiHalt makes vCPU 1 halt in its loop, ipiHalts counts its halts,
	// ipiWakes the wake-up IPIs it took.
	ipiUp, ipiSpins, ipiPongs, ipiHalt, ipiHalts, ipiWakes uint32
	// ipiT0 is the TSC when the current wait began.
	ipiT0 uint64
)

// Lines ipi prints.
var (
	ipiStartMsg = "ipi: start\n"
	ipiUpMsg    = "ipi: cpu 1 up\n"
	ipiRTTSpin  = "ipi: rtt spin "
	ipiRTTHalt  = "ipi: rtt halt "
	ipiDoneMsg  = "ipi: done\n"
	ipiNoAP     = "ipi: FAIL cpu 1 did not come up\n"
	ipiStuck    = "ipi: FAIL cpu 1 did not spin, halt or wake: counter at "
	ipiWant     = " below "
	ipiCounters = "; spins, halts, wakes, pongs "
	ipiSpace    = " "
	ipiNoPong   = "ipi: FAIL no pong\n"
	ipiBadIntr  = "ipi: FAIL unexpected interrupt or exception\n"
)
