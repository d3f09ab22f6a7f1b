// Package pit uses the legacy PC timers — the Intel 8254 programmable
// interval timer's channel 2 and the ACPI power-management timer — as
// reference clocks: to measure the TSC's frequency at boot, and to busy-
// wait before the TSC is calibrated.
//
// It is kernel-context code: every function is //go:nosplit,
// allocation-free and bounded. A timer that never fires yields
// StatusTimeout; nothing here can hang. Each polling loop stops at
// whichever comes first of an iteration cap and a TSC budget (the ticks a
// MaxTSCHz TSC would count in the requested time, so a working timer
// always finishes first).
//
// Port I/O goes through a portio.Ports seam; the TSC is read through an
// rdtsc func (juice/cpu.RDTSC on bare metal, a model in tests).
package pit

import (
	"math/bits"

	"juice/drivers/portio"
)

// Clock rates.
const (
	PITHz     = 1193182 // 8254 input clock: 14.31818 MHz / 12
	PMTimerHz = 3579545 // ACPI PM timer: 14.31818 MHz / 4
)

// 8254 and keyboard-controller port B registers.
const (
	portCh2  uint16 = 0x42 // channel 2 data
	portCmd  uint16 = 0x43 // mode/command register
	portB    uint16 = 0x61 // NMI status and control (port B)
	bGate2          = 0x01 // port B: channel 2 gate
	bSpeaker        = 0x02 // port B: speaker data enable
	bOut2           = 0x20 // port B: channel 2 output (read-only)
	// cmdCh2Mode0 selects channel 2, lobyte/hibyte access, mode 0
	// (interrupt on terminal count: OUT goes low on this write and high
	// when the count expires), binary counting.
	cmdCh2Mode0 = 0xB0
)

// Limits.
const (
	// MaxMS is the longest one-shot the 16-bit channel-2 counter holds:
	// PITHz*55/1000 exceeds 65535.
	MaxMS = 54
	// MaxPMTimerMS bounds a PM-timer calibration; even a 24-bit PM timer
	// wraps only after 4.6 s.
	MaxPMTimerMS = 1000
	// MinTSCHz and MaxTSCHz bound a plausible TSC frequency; a measurement
	// outside them means a broken reference timer or TSC.
	MinTSCHz = 50_000_000
	MaxTSCHz = 20_000_000_000
	// ItersPerMS caps polling iterations per requested millisecond: one
	// iteration reads an I/O port (about 1 µs on hardware, more when
	// trapped), so 100000 per ms is far beyond any real timer's needs.
	ItersPerMS = 100_000
	// itersPerPITTick caps Wait's polls per PIT tick (0.84 µs), which has
	// no TSC to bound it.
	itersPerPITTick = 64
)

// Status reports the outcome of a calibration or wait.
type Status uint8

// Status values.
const (
	StatusOK        Status = iota // measured (or waited) successfully
	StatusBadArg                  // ms out of range, port 0, or a nil rdtsc
	StatusNoPorts                 // the Ports seam lacks the needed IN/OUT widths
	StatusTimeout                 // the reference timer never reached its count
	StatusBadResult               // the measured frequency is implausible
)

// String names the status; safe anywhere (it returns constants).
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusBadArg:
		return "bad argument"
	case StatusNoPorts:
		return "no port I/O"
	case StatusTimeout:
		return "reference timer never fired"
	case StatusBadResult:
		return "implausible frequency"
	}
	return "unknown timer status"
}

// CalibrateTSC measures the TSC frequency against a one-shot of ms
// milliseconds (1..MaxMS) on PIT channel 2, gated through port 0x61 and
// observed through its OUT2 bit. Port 0x61 is restored afterwards (the
// speaker stays off during the measurement). The result is in Hz.
//
//go:nosplit
func CalibrateTSC(p *portio.Ports, rdtsc func() uint64, ms uint32) (hz uint64, st Status) {
	if !p.Has8() {
		return 0, StatusNoPorts
	}
	if rdtsc == nil || ms == 0 || ms > MaxMS {
		return 0, StatusBadArg
	}
	count := uint64(PITHz) * uint64(ms) / 1000 // ≤ 64431
	saved := p.In8(portB)
	startCh2(p, saved, uint16(count))
	t0 := rdtsc()
	budget := uint64(ms) * (MaxTSCHz / 1000)
	iters := uint64(ms) * ItersPerMS
	fired := false
	var t1 uint64
	for i := uint64(0); i < iters; i++ {
		if p.In8(portB)&bOut2 != 0 {
			fired = true
			t1 = rdtsc()
			break
		}
		if rdtsc()-t0 > budget {
			break
		}
	}
	p.Out8(portB, saved)
	if !fired {
		return 0, StatusTimeout
	}
	return scale(t1-t0, PITHz, count)
}

// startCh2 loads count into channel 2 in mode 0 with its gate raised and
// the speaker disconnected; counting starts as the high byte lands.
//
//go:nosplit
func startCh2(p *portio.Ports, portBValue uint8, count uint16) {
	p.Out8(portB, portBValue&^bSpeaker|bGate2)
	p.Out8(portCmd, cmdCh2Mode0)
	p.Out8(portCh2, uint8(count))
	p.Out8(portCh2, uint8(count>>8))
}

// scale converts a TSC delta measured over refTicks ticks of a refHz clock
// into a TSC frequency, checking plausibility.
//
//go:nosplit
func scale(delta, refHz, refTicks uint64) (uint64, Status) {
	if delta == 0 || refTicks == 0 {
		return 0, StatusBadResult
	}
	hi, lo := bits.Mul64(delta, refHz)
	if hi >= refTicks { // quotient would not fit in 64 bits
		return 0, StatusBadResult
	}
	hz, _ := bits.Div64(hi, lo, refTicks)
	if hz < MinTSCHz || hz > MaxTSCHz {
		return 0, StatusBadResult
	}
	return hz, StatusOK
}

// Wait busy-waits for us microseconds using PIT channel 2, in one-shots of
// at most 50 ms. It needs no TSC, so it serves before calibration (for
// example the 10 ms INIT-to-SIPI delay). Each one-shot's poll loop is
// capped at 64 polls per PIT tick; a PIT that never fires yields
// StatusTimeout. Port 0x61 is restored afterwards.
//
//go:nosplit
func Wait(p *portio.Ports, us uint32) Status {
	if !p.Has8() {
		return StatusNoPorts
	}
	saved := p.In8(portB)
	st := StatusOK
	for us > 0 && st == StatusOK {
		chunk := us
		if chunk > 50_000 {
			chunk = 50_000
		}
		us -= chunk
		count := uint64(PITHz) * uint64(chunk) / 1_000_000 // ≤ 59659
		if count == 0 {
			count = 1
		}
		startCh2(p, saved, uint16(count))
		st = StatusTimeout
		for i := uint64(0); i < count*itersPerPITTick+4096; i++ {
			if p.In8(portB)&bOut2 != 0 {
				st = StatusOK
				break
			}
		}
	}
	p.Out8(portB, saved)
	return st
}

// CalibrateTSCWithPMTimer measures the TSC frequency against the ACPI
// power-management timer at I/O port port (the FADT's PM_TMR_BLK) over
// about ms milliseconds (1..MaxPMTimerMS). is32 says the counter is 32
// bits wide (FADT flag TMR_VAL_EXT); otherwise it is 24 bits and wraps
// sooner. The measurement starts on a counter edge and uses the ticks
// actually elapsed, so it does not depend on hitting the target exactly.
//
//go:nosplit
func CalibrateTSCWithPMTimer(p *portio.Ports, port uint16, is32 bool, rdtsc func() uint64, ms uint32) (uint64, Status) {
	if p == nil || p.In32 == nil {
		return 0, StatusNoPorts
	}
	if port == 0 || rdtsc == nil || ms == 0 || ms > MaxPMTimerMS {
		return 0, StatusBadArg
	}
	mask := uint32(0x00FF_FFFF)
	if is32 {
		mask = 0xFFFF_FFFF
	}
	target := uint64(PMTimerHz) * uint64(ms) / 1000
	budget := uint64(ms) * (MaxTSCHz / 1000)
	iters := uint64(ms) * ItersPerMS

	// Align to a tick edge so the start is exact to one read.
	first := p.In32(port) & mask
	c0 := first
	ts := rdtsc()
	for i := uint64(0); c0 == first; i++ {
		if i >= ItersPerMS || rdtsc()-ts > MaxTSCHz/1000 {
			return 0, StatusTimeout // no tick within a millisecond's budget: stuck
		}
		c0 = p.In32(port) & mask
	}
	t0 := rdtsc()
	for i := uint64(0); i < iters; i++ {
		elapsed := uint64((p.In32(port) - c0) & mask)
		if elapsed >= target {
			return scale(rdtsc()-t0, PMTimerHz, elapsed)
		}
		if rdtsc()-t0 > budget {
			break
		}
	}
	return 0, StatusTimeout
}
