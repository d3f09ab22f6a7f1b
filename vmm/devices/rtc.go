package devices

import (
	"sync"
	"time"
)

// RTC port base and length.
const (
	// RTCPort is the CMOS index port; the data port follows it.
	RTCPort = 0x70
	// RTCPorts is the number of ports the RTC decodes.
	RTCPorts = 2
)

// MC146818 register indexes and bits.
const (
	rtcSec     = 0x00
	rtcSecAlm  = 0x01
	rtcMin     = 0x02
	rtcMinAlm  = 0x03
	rtcHour    = 0x04
	rtcHourAlm = 0x05
	rtcWday    = 0x06
	rtcMday    = 0x07
	rtcMonth   = 0x08
	rtcYear    = 0x09
	rtcA       = 0x0a
	rtcB       = 0x0b
	rtcC       = 0x0c
	rtcD       = 0x0d
	rtcCentury = 0x32

	rtcASet   = 0x26 // 32.768 kHz time base, 1024 Hz periodic rate
	rtcBSet   = 0x80 // SET: updates held
	rtcBUIE   = 0x10
	rtcBDM    = 0x04 // binary (not BCD)
	rtcB24h   = 0x02
	rtcCIRQF  = 0x80
	rtcCUF    = 0x10
	rtcDVRT   = 0x80 // valid RAM and time
	rtcHourPM = 0x80

	rtcNMIDisable = 0x80
)

// RTC is the MC146818-compatible real-time clock and its 128 bytes of
// CMOS RAM. Port 0 (0x70) takes the register index in bits 6:0 and the
// NMI-disable bit in bit 7 (kept, see NMIDisabled; it reads 0xff as the
// write-only port it is); port 1 (0x71) reads and writes the indexed
// register.
//
// The time registers (0x00 seconds ... 0x09 year, 0x32 century) follow a
// wall clock plus an offset the guest sets by writing them (held while
// status B's SET bit is on, applied when it clears, or at once for a
// lone write), in BCD or binary as status B bit 2 says and in 24- or
// 12-hour form (bit 7 = PM) as bit 1 says. The day of week counts Sunday
// as 1. The clock is kept in UTC.
//
// Status A reads back its writable bits; its UIP bit (7) is always 0:
// every read sees a consistent time computed at that moment, so the
// guest never has to wait for an update to finish. Status B is the
// guest's. Status C reports UF (bit 4, with IRQF when UIE is enabled)
// when the second has changed since C was last read, and reading it
// clears it; the alarm and periodic flags never set and no IRQ 8 is ever
// raised. Status D reads 0x80 (valid). The alarm registers and every
// other byte (0x0e-0x7f) are plain RAM. Register it at RTCPort with
// RTCPorts ports.
type RTC struct {
	wall func() time.Time

	mu      sync.Mutex
	index   uint8
	nmiOff  bool
	offset  time.Duration // guest time = wall + offset
	shadow  [10]uint8     // time registers while SET is on
	century uint8         // shadow century
	lastC   int64         // unix second at the last read of C
	ram     [128]uint8
}

// NewRTC returns an RTC whose time follows wall (time.Now on a host).
// Status B starts 24-hour BCD, as PC firmware leaves it.
func NewRTC(wall func() time.Time) *RTC {
	r := &RTC{wall: wall}
	r.ram[rtcA] = rtcASet
	r.ram[rtcB] = rtcB24h
	r.lastC = wall().Unix()
	return r
}

// SetMemory fills the CMOS memory-size bytes firmware would: base memory
// (0x15-0x16, 640 KiB), extended memory above 1 MiB in KiB (0x17-0x18 and
// 0x30-0x31, at most 0xffff), memory above 16 MiB in 64 KiB units
// (0x34-0x35) and memory above 4 GiB in 64 KiB units (0x5b-0x5d). low is
// the RAM below 4 GiB, high the RAM above it, in bytes. Call it before
// the VM starts.
func (r *RTC) SetMemory(low, high uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ram[0x15], r.ram[0x16] = 0x80, 0x02 // 640 KiB
	ext := uint64(0)
	if low > 1<<20 {
		ext = (low - 1<<20) >> 10
	}
	if ext > 0xffff {
		ext = 0xffff
	}
	r.ram[0x17], r.ram[0x18] = uint8(ext), uint8(ext>>8)
	r.ram[0x30], r.ram[0x31] = uint8(ext), uint8(ext>>8)
	above16 := uint64(0)
	if low > 16<<20 {
		above16 = (low - 16<<20) >> 16
	}
	if above16 > 0xffff {
		above16 = 0xffff
	}
	r.ram[0x34], r.ram[0x35] = uint8(above16), uint8(above16>>8)
	h := high >> 16
	if h > 0xffffff {
		h = 0xffffff
	}
	r.ram[0x5b], r.ram[0x5c], r.ram[0x5d] = uint8(h), uint8(h>>8), uint8(h>>16)
}

// NMIDisabled reports whether the guest's last index write set bit 7.
func (r *RTC) NMIDisabled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nmiOff
}

// In reads size bytes from offset off, one port per byte.
func (r *RTC) In(off uint16, size uint8) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		v |= uint32(r.read(off+uint16(k))) << (8 * k)
	}
	return v
}

// Out writes size bytes at offset off, one port per byte.
func (r *RTC) Out(off uint16, size uint8, value uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := uint8(0); k < size && k < 4; k++ {
		r.write(off+uint16(k), uint8(value>>(8*k)))
	}
}

func (r *RTC) read(off uint16) uint8 {
	if off != 1 {
		return 0xff // the index port is write-only
	}
	i := r.index & 0x7f
	switch {
	case i <= rtcYear && i != rtcSecAlm && i != rtcMinAlm && i != rtcHourAlm:
		if r.ram[rtcB]&rtcBSet != 0 {
			return r.shadow[i]
		}
		return r.timeReg(r.now(), i)
	case i == rtcCentury:
		if r.ram[rtcB]&rtcBSet != 0 {
			return r.century
		}
		return r.timeReg(r.now(), i)
	case i == rtcA:
		return r.ram[rtcA] &^ 0x80 // UIP never set
	case i == rtcC:
		return r.readC()
	case i == rtcD:
		return rtcDVRT
	}
	return r.ram[i]
}

func (r *RTC) readC() uint8 {
	s := r.wall().Unix()
	var c uint8
	if s != r.lastC {
		c = rtcCUF
		if r.ram[rtcB]&rtcBUIE != 0 {
			c |= rtcCIRQF
		}
	}
	r.lastC = s
	return c
}

func (r *RTC) write(off uint16, v uint8) {
	if off == 0 {
		r.index = v & 0x7f
		r.nmiOff = v&rtcNMIDisable != 0
		return
	}
	if off != 1 {
		return
	}
	i := r.index & 0x7f
	set := r.ram[rtcB]&rtcBSet != 0
	switch {
	case i <= rtcYear && i != rtcSecAlm && i != rtcMinAlm && i != rtcHourAlm, i == rtcCentury:
		if !set {
			r.snapshot()
		}
		if i == rtcCentury {
			r.century = v
		} else {
			r.shadow[i] = v
		}
		if !set {
			r.commit()
		}
	case i == rtcA:
		r.ram[rtcA] = v &^ 0x80
	case i == rtcB:
		if !set && v&rtcBSet != 0 {
			r.snapshot() // freeze the time the guest is about to set
		}
		if v&rtcBSet != 0 {
			v &^= rtcBUIE
		}
		r.ram[rtcB] = v
		if set && v&rtcBSet == 0 {
			r.commit()
		}
	case i == rtcC, i == rtcD: // read-only
	default:
		r.ram[i] = v
	}
}

// now is the guest's time.
func (r *RTC) now() time.Time { return r.wall().Add(r.offset).UTC() }

// snapshot copies the current time into the shadow registers.
func (r *RTC) snapshot() {
	t := r.now()
	for i := uint8(0); i <= rtcYear; i++ {
		r.shadow[i] = r.timeReg(t, i)
	}
	r.century = r.timeReg(t, rtcCentury)
}

// commit sets the offset so the clock reads the shadow registers now.
func (r *RTC) commit() {
	b := r.ram[rtcB]
	year := int(r.fromReg(r.century, b))*100 + int(r.fromReg(r.shadow[rtcYear], b))
	hr := r.shadow[rtcHour]
	hour := int(r.fromReg(hr&^rtcHourPM, b))
	if b&rtcB24h == 0 {
		hour %= 12
		if hr&rtcHourPM != 0 {
			hour += 12
		}
	} else {
		hour = int(r.fromReg(hr, b))
	}
	t := time.Date(year, time.Month(r.fromReg(r.shadow[rtcMonth], b)), int(r.fromReg(r.shadow[rtcMday], b)),
		hour, int(r.fromReg(r.shadow[rtcMin], b)), int(r.fromReg(r.shadow[rtcSec], b)), 0, time.UTC)
	w := r.wall()
	// Keep the sub-second phase of the wall clock so seconds tick at the
	// same instants as before.
	r.offset = t.Sub(w.Truncate(time.Second))
}

// timeReg encodes time register i of t in the format status B selects.
func (r *RTC) timeReg(t time.Time, i uint8) uint8 {
	b := r.ram[rtcB]
	var v int
	switch i {
	case rtcSec:
		v = t.Second()
	case rtcMin:
		v = t.Minute()
	case rtcHour:
		h := t.Hour()
		if b&rtcB24h == 0 {
			pm := h >= 12
			h %= 12
			if h == 0 {
				h = 12
			}
			e := toReg(uint8(h), b)
			if pm {
				e |= rtcHourPM
			}
			return e
		}
		v = h
	case rtcWday:
		v = int(t.Weekday()) + 1
	case rtcMday:
		v = t.Day()
	case rtcMonth:
		v = int(t.Month())
	case rtcYear:
		v = t.Year() % 100
	case rtcCentury:
		v = t.Year() / 100 % 100
	default:
		return r.ram[i&0x7f]
	}
	return toReg(uint8(v), b)
}

// toReg encodes v (0-99) as BCD unless status b selects binary.
func toReg(v, b uint8) uint8 {
	if b&rtcBDM != 0 {
		return v
	}
	return v/10<<4 | v%10
}

// fromReg decodes a register value in the format status b selects.
func (r *RTC) fromReg(v, b uint8) uint8 {
	if b&rtcBDM != 0 {
		return v
	}
	return (v>>4)*10 + v&0x0f
}
