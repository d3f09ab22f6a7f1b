package rtc

import (
	"testing"
	"time"

	"juice/drivers/portio"
)

// fakeCMOS models the MC146818's indexed registers.
type fakeCMOS struct {
	reg      [128]uint8
	idx      uint8
	uipReads int    // reads of register A that still report UIP
	stuckUIP bool   // UIP never clears
	onRead   func() // called after each data-port read (to model ticking)
	reads    int
}

func (c *fakeCMOS) ports() *portio.Ports {
	return &portio.Ports{
		Out8: func(port uint16, v uint8) {
			if port == PortIndex {
				c.idx = v & 0x7F
			}
		},
		In8: func(port uint16) uint8 {
			if port != PortData {
				return 0xFF
			}
			c.reads++
			v := c.reg[c.idx]
			if c.idx == regA {
				if c.stuckUIP || c.uipReads > 0 {
					v |= aUIP
					c.uipReads--
				} else {
					v &^= aUIP
				}
			}
			if c.onRead != nil {
				c.onRead()
			}
			return v
		},
	}
}

func bcd(v int) uint8 { return uint8(v/10<<4 | v%10) }

// set stores t in the CMOS with register B = b (and century at cr if cr != 0).
func (c *fakeCMOS) set(t Time, b uint8, cr uint8) {
	enc := func(v int) uint8 {
		if b&bBinary != 0 {
			return uint8(v)
		}
		return bcd(v)
	}
	c.reg[regB] = b
	c.reg[regSeconds] = enc(t.Second)
	c.reg[regMinutes] = enc(t.Minute)
	h := t.Hour
	if b&b24Hour == 0 {
		pm := h >= 12
		h %= 12
		if h == 0 {
			h = 12
		}
		c.reg[regHours] = enc(h)
		if pm {
			c.reg[regHours] |= hourPM
		}
	} else {
		c.reg[regHours] = enc(h)
	}
	c.reg[regDay] = enc(t.Day)
	c.reg[regMonth] = enc(t.Month)
	c.reg[regYear] = enc(t.Year % 100)
	if cr != 0 {
		c.reg[cr] = enc(t.Year / 100)
	}
}

func TestReadEncodings(t *testing.T) {
	times := []Time{
		{2024, 2, 29, 23, 59, 59},
		{2000, 1, 1, 0, 0, 0},
		{2099, 12, 31, 12, 30, 0},
		{2038, 1, 19, 3, 14, 7},
		{2025, 6, 15, 11, 5, 9},
	}
	for _, want := range times {
		for _, b := range []uint8{0x00, bBinary, b24Hour, bBinary | b24Hour} {
			c := &fakeCMOS{uipReads: 3}
			c.set(want, b, 0)
			got, st := Read(c.ports(), 0)
			if st != StatusOK || got != want {
				t.Errorf("B=%#x %v: Read = %v, %v", b, want, got, st)
			}
		}
	}
}

func TestCentury(t *testing.T) {
	want := Time{1999, 12, 31, 23, 59, 58}
	c := &fakeCMOS{}
	c.set(want, b24Hour, 0x32)
	if got, st := Read(c.ports(), 0x32); st != StatusOK || got != want {
		t.Fatalf("with century register: %v, %v; want %v", got, st, want)
	}
	// Without the century register the year is 20xx.
	if got, st := Read(c.ports(), 0); st != StatusOK || got.Year != 2099 {
		t.Fatalf("without century register: %v, %v; want year 2099", got, st)
	}
	// An index that is a clock register or past the CMOS is ignored.
	for _, idx := range []uint8{0x04, 0x0B, 0x80, 0xFF} {
		if got, st := Read(c.ports(), idx); st != StatusOK || got.Year != 2099 {
			t.Errorf("century index %#x: %v, %v; want it ignored", idx, got, st)
		}
	}
	// A garbage century gives a bad time, not year 9999.
	c.reg[0x32] = 0x99
	if _, st := Read(c.ports(), 0x32); st != StatusBadTime {
		t.Errorf("century 99: %v, want %v", st, StatusBadTime)
	}
}

func TestBadTime(t *testing.T) {
	good := Time{2024, 3, 10, 10, 20, 30}
	for name, mod := range map[string]func(c *fakeCMOS){
		"bcd nibble":  func(c *fakeCMOS) { c.reg[regMinutes] = 0x5A },
		"month 13":    func(c *fakeCMOS) { c.reg[regMonth] = 0x13 },
		"month 0":     func(c *fakeCMOS) { c.reg[regMonth] = 0 },
		"day 0":       func(c *fakeCMOS) { c.reg[regDay] = 0 },
		"feb 30":      func(c *fakeCMOS) { c.reg[regMonth] = 2; c.reg[regDay] = 0x30 },
		"feb 29 2023": func(c *fakeCMOS) { c.reg[regYear] = 0x23; c.reg[regMonth] = 2; c.reg[regDay] = 0x29 },
		"hour 24":     func(c *fakeCMOS) { c.reg[regHours] = 0x24 },
		"second 60":   func(c *fakeCMOS) { c.reg[regSeconds] = 0x60 },
		"all ones": func(c *fakeCMOS) {
			c.reg = [128]uint8{}
			for i := range c.reg {
				c.reg[i] = 0xFF
			}
			c.reg[regA] = 0
		},
		"binary year":    func(c *fakeCMOS) { c.reg[regB] = bBinary | b24Hour; c.reg[regYear] = 200 },
		"12h hour 0":     func(c *fakeCMOS) { c.reg[regB] = 0; c.reg[regHours] = 0 },
		"12h hour 13 pm": func(c *fakeCMOS) { c.reg[regB] = 0; c.reg[regHours] = 0x13 | hourPM },
	} {
		c := &fakeCMOS{}
		c.set(good, b24Hour, 0)
		mod(c)
		if got, st := Read(c.ports(), 0); st != StatusBadTime {
			t.Errorf("%s: Read = %v, %v; want %v", name, got, st, StatusBadTime)
		}
	}
	// Feb 29 of a leap year is fine.
	c := &fakeCMOS{}
	c.set(Time{2028, 2, 29, 0, 0, 0}, b24Hour, 0)
	if _, st := Read(c.ports(), 0); st != StatusOK {
		t.Errorf("2028-02-29: %v", st)
	}
}

func TestTwelveHour(t *testing.T) {
	for _, tc := range []struct {
		reg  uint8
		hour int
	}{
		{0x12, 0}, {0x01, 1}, {0x11, 11}, {0x12 | hourPM, 12}, {0x01 | hourPM, 13}, {0x11 | hourPM, 23},
	} {
		c := &fakeCMOS{}
		c.set(Time{2024, 1, 1, 0, 0, 0}, 0, 0)
		c.reg[regHours] = tc.reg
		got, st := Read(c.ports(), 0)
		if st != StatusOK || got.Hour != tc.hour {
			t.Errorf("hours register %#x: hour %d (%v), want %d", tc.reg, got.Hour, st, tc.hour)
		}
	}
}

func TestUIPAndTearing(t *testing.T) {
	c := &fakeCMOS{stuckUIP: true}
	c.set(Time{2024, 1, 1, 0, 0, 0}, b24Hour, 0)
	if _, st := Read(c.ports(), 0); st != StatusTimeout {
		t.Fatalf("stuck UIP: %v, want %v", st, StatusTimeout)
	}
	if c.reads > MaxUIPPolls+1 {
		t.Fatalf("stuck UIP took %d reads, bound is %d", c.reads, MaxUIPPolls)
	}

	// The clock rolls over from 23:59:59 to midnight in the middle of the
	// first snapshot: the torn read must be discarded.
	c = &fakeCMOS{}
	c.set(Time{2024, 12, 31, 23, 59, 59}, b24Hour, 0)
	n := 0
	c.onRead = func() {
		n++
		if n == 3 { // after seconds and minutes were read
			c.set(Time{2025, 1, 1, 0, 0, 0}, b24Hour, 0)
		}
	}
	got, st := Read(c.ports(), 0)
	if want := (Time{2025, 1, 1, 0, 0, 0}); st != StatusOK || got != want {
		t.Fatalf("torn read: %v, %v; want %v", got, st, want)
	}

	// A clock that changes on every read never agrees.
	c = &fakeCMOS{}
	c.set(Time{2024, 1, 1, 0, 0, 0}, b24Hour, 0)
	c.onRead = func() { c.reg[regSeconds] = (c.reg[regSeconds] + 1) % 0x50 }
	if _, st := Read(c.ports(), 0); st != StatusUnstable {
		t.Fatalf("ever-changing clock: %v, want %v", st, StatusUnstable)
	}
	if _, st := Read(nil, 0); st != StatusNoPorts {
		t.Fatalf("nil ports: %v", st)
	}
}

func TestUnix(t *testing.T) {
	for _, tc := range []struct {
		t    Time
		unix int64
	}{
		{Time{1970, 1, 1, 0, 0, 0}, 0},
		{Time{2000, 1, 1, 0, 0, 0}, 946684800},
		{Time{2000, 2, 29, 0, 0, 0}, 951782400},
		{Time{2000, 3, 1, 0, 0, 0}, 951868800},
		{Time{2038, 1, 19, 3, 14, 8}, 1 << 31},
		{Time{2100, 3, 1, 0, 0, 0}, 4107542400}, // 2100 is not a leap year
		{Time{1969, 12, 31, 23, 59, 59}, -1},
		{Time{2024, 13, 1, 0, 0, 0}, 1735689600}, // normalised to 2025-01-01
	} {
		if got := tc.t.Unix(); got != tc.unix {
			t.Errorf("%v.Unix() = %d, want %d", tc.t, got, tc.unix)
		}
	}
	// Every day from 1970 to 2200 against the standard library.
	d := time.Date(1970, 1, 1, 12, 34, 56, 0, time.UTC)
	for d.Year() < 2200 {
		tt := Time{d.Year(), int(d.Month()), d.Day(), d.Hour(), d.Minute(), d.Second()}
		if tt.Unix() != d.Unix() {
			t.Fatalf("%v.Unix() = %d, want %d", tt, tt.Unix(), d.Unix())
		}
		if !tt.Valid() {
			t.Fatalf("%v reported invalid", tt)
		}
		d = d.AddDate(0, 0, 1)
	}
}

func FuzzUnix(f *testing.F) {
	f.Add(2024, 2, 29, 23, 59, 59)
	f.Add(-5, 0, 0, -1, 70, 3600)
	f.Add(1969, 14, -40, 0, 0, 0)
	f.Fuzz(func(t *testing.T, y, mo, d, h, mi, s int) {
		const lim = 1 << 20
		for _, v := range []int{y, mo, d, h, mi, s} {
			if v > lim || v < -lim {
				t.Skip()
			}
		}
		tt := Time{y, mo, d, h, mi, s}
		want := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).Unix()
		if got := tt.Unix(); got != want {
			t.Fatalf("%v.Unix() = %d, want %d", tt, got, want)
		}
	})
}

// FuzzRead feeds arbitrary CMOS contents: Read must not panic, and a time
// it accepts must be valid and round-trip through the standard library.
func FuzzRead(f *testing.F) {
	f.Add([]byte{0x30, 0, 0x15, 0, 0x12, 0, 0, 0x29, 0x02, 0x24, 0x26, 0x02}, uint8(0x32))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, regs []byte, centuryReg uint8) {
		c := &fakeCMOS{}
		copy(c.reg[:], regs)
		got, st := Read(c.ports(), centuryReg)
		if st == StatusOK {
			if !got.Valid() {
				t.Fatalf("accepted invalid time %v", got)
			}
			d := time.Unix(got.Unix(), 0).UTC()
			if d.Year() != got.Year || int(d.Month()) != got.Month || d.Day() != got.Day ||
				d.Hour() != got.Hour || d.Minute() != got.Minute || d.Second() != got.Second {
				t.Fatalf("%v does not round-trip (%v)", got, d)
			}
		} else if got != (Time{}) {
			t.Fatalf("status %v with non-zero time %v", st, got)
		}
	})
}

func TestNoAllocs(t *testing.T) {
	c := &fakeCMOS{}
	c.set(Time{2024, 1, 1, 0, 0, 0}, b24Hour, 0x32)
	p := c.ports()
	if n := testing.AllocsPerRun(100, func() { Read(p, 0x32) }); n != 0 {
		t.Fatalf("Read allocates %v times", n)
	}
}

func TestStatusString(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusNoPorts; s++ {
		str := s.String()
		if seen[str] || str == Status(200).String() {
			t.Errorf("status %d: bad or duplicate name %q", s, str)
		}
		seen[str] = true
	}
}
