// Package rtc reads the wall-clock time from the PC's CMOS real-time clock
// (an MC146818-compatible RTC behind index port 0x70 and data port 0x71).
//
// juice reads it once at boot to anchor its TSC-based clock, so the package
// is kernel-context: every function is //go:nosplit, allocation-free and
// bounded. The clock's encoding (BCD or binary, 12- or 24-hour) comes from
// status register B; a time is accepted only when two consecutive reads,
// each taken outside an update cycle, agree; and a CMOS holding garbage
// yields StatusBadTime rather than a silly date.
//
// Port I/O goes through a portio.Ports seam (a modelled CMOS in tests).
package rtc

import "juice/drivers/portio"

// CMOS ports.
const (
	PortIndex uint16 = 0x70 // register select (bit 7 is the NMI mask; left clear)
	PortData  uint16 = 0x71 // register data
)

// CMOS register indices.
const (
	regSeconds = 0x00
	regMinutes = 0x02
	regHours   = 0x04
	regDay     = 0x07
	regMonth   = 0x08
	regYear    = 0x09
	regA       = 0x0A
	regB       = 0x0B
)

// Status register bits.
const (
	aUIP    = 0x80 // register A: update in progress
	bBinary = 0x04 // register B: data mode binary (else BCD)
	b24Hour = 0x02 // register B: 24-hour mode (else 12-hour)
	hourPM  = 0x80 // hours register in 12-hour mode: PM flag
)

// Bounds on the polling loops.
const (
	// MaxUIPPolls bounds the wait for update-in-progress to clear. An
	// update holds UIP for at most about 2 ms; a port read costs about
	// 1 µs, so this leaves ample margin and still gives up on a CMOS whose
	// UIP bit is stuck.
	MaxUIPPolls = 1 << 16
	// MaxReads bounds how many read pairs may disagree before giving up.
	MaxReads = 8
)

// Year bounds a decoded time must fall within.
const (
	MinYear = 1970
	MaxYear = 2199
)

// Status reports the outcome of Read.
type Status uint8

// Status values.
const (
	StatusOK       Status = iota // the time is valid
	StatusTimeout                // update-in-progress never cleared
	StatusUnstable               // consecutive reads never agreed
	StatusBadTime                // the registers do not hold a valid date and time
	StatusNoPorts                // the Ports seam lacks byte-wide IN/OUT
)

// String names the status; safe anywhere (it returns constants).
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusTimeout:
		return "rtc update never finished"
	case StatusUnstable:
		return "rtc reads never agreed"
	case StatusBadTime:
		return "rtc holds an invalid time"
	case StatusNoPorts:
		return "no port I/O"
	}
	return "unknown rtc status"
}

// Time is a calendar date and time of day in the proleptic Gregorian
// calendar. The RTC keeps whatever zone the firmware set; juice treats it
// as UTC.
type Time struct {
	Year, Month, Day, Hour, Minute, Second int
}

// raw is one snapshot of the CMOS time registers, undecoded.
type raw struct {
	sec, min, hour, day, mon, year, century, b uint8
}

// Read returns the time held by the RTC.
//
// centuryReg is the CMOS index of the century register (the FADT's
// CENTURY field); 0 means there is none and the year is taken as 20xx.
// An index outside 0x0E–0x7F (the clock and status registers, or beyond
// the 128-byte CMOS) is treated as none.
//
//go:nosplit
func Read(p *portio.Ports, centuryReg uint8) (t Time, st Status) {
	if !p.Has8() {
		return Time{}, StatusNoPorts
	}
	if centuryReg < 0x0E || centuryReg > 0x7F {
		centuryReg = 0
	}
	var prev, cur raw
	if !snapshot(p, centuryReg, &prev) {
		return Time{}, StatusTimeout
	}
	for i := 0; i < MaxReads; i++ {
		if !snapshot(p, centuryReg, &cur) {
			return Time{}, StatusTimeout
		}
		if cur == prev {
			return decode(&cur, centuryReg != 0)
		}
		prev = cur
	}
	return Time{}, StatusUnstable
}

// snapshot waits for update-in-progress to clear and reads the time
// registers into r; false if UIP never cleared.
//
//go:nosplit
func snapshot(p *portio.Ports, centuryReg uint8, r *raw) bool {
	i := 0
	for ; i < MaxUIPPolls; i++ {
		if cmos(p, regA)&aUIP == 0 {
			break
		}
	}
	if i == MaxUIPPolls {
		return false
	}
	r.sec = cmos(p, regSeconds)
	r.min = cmos(p, regMinutes)
	r.hour = cmos(p, regHours)
	r.day = cmos(p, regDay)
	r.mon = cmos(p, regMonth)
	r.year = cmos(p, regYear)
	r.b = cmos(p, regB)
	r.century = 0
	if centuryReg != 0 {
		r.century = cmos(p, centuryReg)
	}
	return true
}

// cmos reads CMOS register idx.
//
//go:nosplit
func cmos(p *portio.Ports, idx uint8) uint8 {
	p.Out8(PortIndex, idx)
	return p.In8(PortData)
}

// decode converts a raw snapshot into a validated Time.
//
//go:nosplit
func decode(r *raw, haveCentury bool) (Time, Status) {
	bin := r.b&bBinary != 0
	pm := false
	hour := r.hour
	if r.b&b24Hour == 0 {
		pm = hour&hourPM != 0
		hour &^= hourPM
	}
	var t Time
	var ok [7]bool
	t.Second, ok[0] = field(r.sec, bin)
	t.Minute, ok[1] = field(r.min, bin)
	t.Hour, ok[2] = field(hour, bin)
	t.Day, ok[3] = field(r.day, bin)
	t.Month, ok[4] = field(r.mon, bin)
	var yy, cc int
	yy, ok[5] = field(r.year, bin)
	cc, ok[6] = 20, true
	if haveCentury {
		cc, ok[6] = field(r.century, bin)
	}
	for i := range ok {
		if !ok[i] {
			return Time{}, StatusBadTime
		}
	}
	if r.b&b24Hour == 0 {
		// 12-hour clock: hours run 12, 1, ..., 11; 12 AM is midnight.
		if t.Hour < 1 || t.Hour > 12 {
			return Time{}, StatusBadTime
		}
		if t.Hour == 12 {
			t.Hour = 0
		}
		if pm {
			t.Hour += 12
		}
	}
	if yy > 99 {
		return Time{}, StatusBadTime
	}
	t.Year = cc*100 + yy
	if !t.Valid() {
		return Time{}, StatusBadTime
	}
	return t, StatusOK
}

// field decodes one register as BCD or binary; false for a BCD digit
// above 9.
//
//go:nosplit
func field(v uint8, binary bool) (int, bool) {
	if binary {
		return int(v), true
	}
	hi, lo := v>>4, v&0x0F
	if hi > 9 || lo > 9 {
		return 0, false
	}
	return int(hi)*10 + int(lo), true
}

// Valid reports whether t is a real date and time with a year in
// [MinYear, MaxYear] (no leap seconds: the RTC has none).
//
//go:nosplit
func (t Time) Valid() bool {
	if t.Year < MinYear || t.Year > MaxYear || t.Month < 1 || t.Month > 12 {
		return false
	}
	if t.Day < 1 || t.Day > DaysIn(t.Year, t.Month) {
		return false
	}
	return t.Hour >= 0 && t.Hour < 24 && t.Minute >= 0 && t.Minute < 60 &&
		t.Second >= 0 && t.Second < 60
}

// IsLeap reports whether year is a Gregorian leap year.
//
//go:nosplit
func IsLeap(year int) bool {
	return year%4 == 0 && (year%100 != 0 || year%400 == 0)
}

// DaysIn returns the number of days in month (1–12) of year; 0 for a
// month out of range.
//
//go:nosplit
func DaysIn(year, month int) int {
	switch month {
	case 1, 3, 5, 7, 8, 10, 12:
		return 31
	case 4, 6, 9, 11:
		return 30
	case 2:
		if IsLeap(year) {
			return 29
		}
		return 28
	}
	return 0
}

// Unix returns t as seconds since 1970-01-01 00:00:00 UTC. It is pure
// arithmetic on the proleptic Gregorian calendar and, like time.Date,
// normalises out-of-range fields (month 13 is January of the next year,
// day 0 the last day of the previous month, and so on); it never panics.
// Results are exact while the fields stay within about ±2^40.
//
//go:nosplit
func (t Time) Unix() int64 {
	y := int64(t.Year)
	m := int64(t.Month) - 1 // 0-based
	q := floorDiv(m, 12)
	y += q
	m -= q * 12 // now 0..11
	// Count from 1 March so that the leap day ends the year.
	if m < 2 {
		y--
		m += 12
	}
	m -= 2 // 0 = March ... 11 = February
	era := floorDiv(y, 400)
	yoe := y - era*400                     // 0..399
	doy := (153*m+2)/5 + int64(t.Day) - 1  // day of the March-based year
	doe := yoe*365 + yoe/4 - yoe/100 + doy // day of the 400-year era
	days := era*146097 + doe - 719468      // 719468: days from 0000-03-01 to 1970-01-01
	return days*86400 + int64(t.Hour)*3600 + int64(t.Minute)*60 + int64(t.Second)
}

// floorDiv is a/b rounded toward negative infinity, for b > 0.
//
//go:nosplit
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
