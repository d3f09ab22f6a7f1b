package kernel

import (
	"math/bits"

	"juice/cpu"
)

// Time. The TSC is juice's clock: calibrated once at boot against a
// hardware reference (CPUID 0x15/0x16 when the CPU states its frequency,
// else the PIT, else the ACPI PM timer), then every clock read is an RDTSC
// and a multiply. The local APIC timer, in TSC-deadline mode where the CPU
// has it, wakes the CPU for the next deadline.

var (
	tscHz     uint64 // TSC ticks per second
	tscMult   uint64 // ns = ticks * tscMult >> 32
	tscBase   uint64 // TSC at juice's entry: monotonic time 0
	realBase  int64  // Unix time in ns at tscBase (from the RTC)
	tscSource string

	timerDeadlineMode bool   // LAPIC TSC-deadline mode
	lapicHz           uint64 // LAPIC one-shot timer ticks per second
)

// setTSCHz installs the calibrated frequency. Kernel context.
//
//go:nosplit
func setTSCHz(hz uint64) {
	tscHz = hz
	// mult = 1e9 << 32 / hz, computed in 128 bits.
	hi, lo := bits.Mul64(1e9, 1<<32)
	if hi >= hz {
		hz = hi + 1
	}
	tscMult, _ = bits.Div64(hi, lo, hz)
	quantum = tscHz / 100 // 10 ms slices
}

// ticksToNs converts a TSC delta to nanoseconds. Kernel context.
//
//go:nosplit
func ticksToNs(d uint64) uint64 {
	hi, lo := bits.Mul64(d, tscMult)
	return hi<<32 | lo>>32
}

// nsToTicks converts nanoseconds to TSC ticks, saturating. Kernel context.
//
//go:nosplit
func nsToTicks(ns uint64) uint64 {
	hi, lo := bits.Mul64(ns, tscHz)
	if hi >= 1e9 {
		return ^uint64(0) >> 1
	}
	q, _ := bits.Div64(hi, lo, 1e9)
	return q
}

// nanotime returns nanoseconds since juice's entry. Kernel context.
//
//go:nosplit
func nanotime() uint64 {
	return ticksToNs(cpu.RDTSC() - tscBase)
}

// deadlineAfter returns the TSC value ns nanoseconds from now, never 0.
//
//go:nosplit
func deadlineAfter(ns uint64) uint64 {
	d := cpu.RDTSC() + nsToTicks(ns)
	if d == 0 {
		d = 1
	}
	return d
}

// armTimer programs the local APIC timer to fire at TSC value tsc (0
// disarms it). Kernel context.
//
//go:nosplit
func armTimer(tsc uint64) {
	if timerDeadlineMode {
		apic.ArmTSCDeadline(tsc)
		return
	}
	if tsc == 0 {
		apic.ArmOneShot(0)
		return
	}
	now := cpu.RDTSC()
	var count uint64 = 1
	if tsc > now {
		hi, lo := bits.Mul64(tsc-now, lapicHz)
		if hi >= tscHz {
			count = 0xffffffff
		} else {
			count, _ = bits.Div64(hi, lo, tscHz)
		}
	}
	if count == 0 {
		count = 1
	}
	if count > 0xffffffff {
		count = 0xffffffff
	}
	apic.ArmOneShot(uint32(count))
}

// cpuidTSCHz returns the TSC frequency the CPU states in CPUID leaf 0x15
// (crystal clock ratio) or, failing that, 0.
//
//go:nosplit
func cpuidTSCHz() uint64 {
	max, _, _, _ := cpu.CPUID(0, 0)
	if max < 0x15 {
		return 0
	}
	den, num, crystal, _ := cpu.CPUID(0x15, 0)
	if den == 0 || num == 0 {
		return 0
	}
	if crystal == 0 && max >= 0x16 {
		// Leaf 0x16 gives the base frequency in MHz; the crystal is
		// base * den / num.
		mhz, _, _, _ := cpu.CPUID(0x16, 0)
		if mhz == 0 {
			return 0
		}
		return uint64(mhz&0xffff) * 1000000
	}
	if crystal == 0 {
		return 0
	}
	return uint64(crystal) * uint64(num) / uint64(den)
}
