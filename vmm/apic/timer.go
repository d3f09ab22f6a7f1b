package apic

import (
	"math"
	"math/bits"
)

// The APIC timer. In one-shot and periodic mode it counts down from the
// initial count at BusHz divided by the divide configuration, so one
// count lasts 1<<divShift ns; the current count is computed from the
// clock when read. In TSC-deadline mode it fires when the guest TSC
// reaches IA32_TSC_DEADLINE; the deadline is converted to the clock's
// nanoseconds when written (the TSC and the clock run at fixed rates).
// Nothing fires by itself: the core arms a host timer for NextDeadline
// and calls Tick once it has passed.

func (a *LAPIC) timerMode() uint32 { return a.lvt[lvtTimer] & timerModeMask }

// writeLVT writes LVT register i. While the APIC is software-disabled the
// mask bit stays set. Changing the timer mode to or from TSC-deadline
// stops the timer; switching between one-shot and periodic keeps the
// count running.
func (a *LAPIC) writeLVT(i int, v uint32) {
	if i < 0 || i >= numLVT {
		return
	}
	v &= lvtWritable[i]
	if a.svr&SVREnable == 0 {
		v |= LVTMasked
	}
	if i != lvtTimer {
		a.lvt[i] = v
		return
	}
	old := a.timerMode()
	a.lvt[i] = v
	nw := a.timerMode()
	switch {
	case old == nw:
	case old == TimerDeadline || nw == TimerDeadline:
		a.initCount, a.armed, a.tscDeadline = 0, false, 0
	default:
		now := a.now()
		if old == TimerPeriodic && a.initCount != 0 && now > a.start {
			// The one-shot count finishes the period under way.
			p := a.period()
			a.start += (now - a.start) / p * p
		}
		a.rearm(now)
	}
}

// period is the length of one count-down in ns.
func (a *LAPIC) period() int64 { return int64(a.initCount) << a.divShift }

// rearm computes the next expiry of a one-shot or periodic count started
// at a.start.
func (a *LAPIC) rearm(now int64) {
	if a.initCount == 0 || a.timerMode() == TimerDeadline {
		a.armed = false
		return
	}
	p := a.period()
	elapsed := max(now-a.start, 0)
	if a.timerMode() == TimerPeriodic {
		a.deadline = a.start + (elapsed/p+1)*p
		a.armed = true
		return
	}
	a.deadline = a.start + p
	a.armed = elapsed < p
}

// writeInitCount loads the count (ignored in TSC-deadline mode); 0 stops
// the timer.
func (a *LAPIC) writeInitCount(v uint32) {
	if a.timerMode() == TimerDeadline {
		return
	}
	now := a.now()
	a.initCount, a.start = v, now
	a.rearm(now)
}

// divShift decodes a divide configuration (bits 3, 1:0) to log2 of the
// divisor: 000 -> 2, 001 -> 4, ..., 110 -> 128, 111 -> 1.
func divShift(cfg uint32) uint {
	v := cfg&3 | cfg>>1&4
	return uint(v+1) & 7
}

// writeDivide sets the divide configuration, keeping the current count.
func (a *LAPIC) writeDivide(v uint32) {
	a.divCf = v & 0xB
	ns := divShift(a.divCf)
	if ns == a.divShift {
		return
	}
	now := a.now()
	ticks := a.elapsedTicks(now)
	a.divShift = ns
	a.start = now - int64(ticks)<<ns
	a.rearm(now)
}

// elapsedTicks is how many counts of the current count-down have passed:
// below initCount in periodic mode, at most initCount in one-shot mode.
func (a *LAPIC) elapsedTicks(now int64) uint64 {
	if a.initCount == 0 || now <= a.start {
		return 0
	}
	t := uint64(now-a.start) >> a.divShift
	if a.timerMode() == TimerPeriodic {
		return t % uint64(a.initCount)
	}
	return min(t, uint64(a.initCount))
}

// currentCount is the current-count register.
func (a *LAPIC) currentCount(now int64) uint32 {
	if a.timerMode() == TimerDeadline || a.initCount == 0 {
		return 0
	}
	return a.initCount - uint32(a.elapsedTicks(now))
}

// NextDeadline returns when (by the clock given to New, in ns) the timer
// next expires; ok is false when it is not armed. The core sleeps a
// halted vCPU no later than this and calls Tick once it has passed. It
// is reported even when the LVT is masked (Tick then only re-arms).
func (a *LAPIC) NextDeadline() (ns int64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deadline, a.armed
}

// Tick fires the timer if its deadline has passed: unless the timer LVT
// is masked its vector is accepted (and deliver called); a periodic timer
// re-arms for the next period after now (missed periods are dropped), a
// one-shot or TSC-deadline timer disarms (IA32_TSC_DEADLINE reads 0). It
// does nothing otherwise, so the core may call it at any time.
func (a *LAPIC) Tick() {
	var e effects
	a.mu.Lock()
	now := a.now()
	if a.armed && now >= a.deadline {
		l := a.lvt[lvtTimer]
		switch l & timerModeMask {
		case TimerPeriodic:
			a.rearm(now)
		case TimerDeadline:
			a.armed, a.tscDeadline = false, 0
		default:
			a.armed = false
		}
		if l&LVTMasked == 0 {
			a.accept(uint8(l), false, &e)
		}
	}
	a.mu.Unlock()
	a.run(&e)
}

// TSCDeadline reads IA32_TSC_DEADLINE: the armed deadline, 0 once fired
// or when the timer is not in TSC-deadline mode.
func (a *LAPIC) TSCDeadline() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.timerMode() != TimerDeadline {
		return 0
	}
	return a.tscDeadline
}

// SetTSCDeadline writes IA32_TSC_DEADLINE: in TSC-deadline mode a
// non-zero value arms the timer for when the guest TSC reaches it (at
// once if it already has), 0 disarms it; in other modes the write is
// ignored.
func (a *LAPIC) SetTSCDeadline(v uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.timerMode() != TimerDeadline {
		return
	}
	a.tscDeadline = v
	if v == 0 {
		a.armed = false
		return
	}
	now := a.now()
	tsc := a.tscAt(now)
	a.armed = true
	if v <= tsc {
		a.deadline = now
		return
	}
	// ns = ceil((v-tsc) * 1e9 / tscHz), saturating.
	hi, lo := bits.Mul64(v-tsc, 1_000_000_000)
	ns := uint64(math.MaxInt64)
	if hi < a.tscHz {
		q, r := bits.Div64(hi, lo, a.tscHz)
		if r != 0 {
			q++
		}
		ns = q
	}
	if ns > uint64(math.MaxInt64-max(now, 0)) {
		a.deadline = math.MaxInt64
		return
	}
	a.deadline = now + int64(ns)
}

// tscAt is the guest TSC at clock time now.
func (a *LAPIC) tscAt(now int64) uint64 {
	if a.guestTSC != nil {
		return a.guestTSC()
	}
	if now <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(now), a.tscHz)
	if hi >= 1_000_000_000 {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, 1_000_000_000)
	return q
}
