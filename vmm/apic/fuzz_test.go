package apic

import "testing"

// FuzzGuestAccess drives a LAPIC and an IOAPIC with arbitrary guest
// register, MSR and clock activity: nothing may panic, and the timer's
// current count never exceeds the initial count.
func FuzzGuestAccess(f *testing.F) {
	f.Add([]byte{0, 0xF0, 0xFF, 1, 0x20, 0x32, 0x80, 3, 0x38, 10, 4, 0x20})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clk := &fake{t: 1}
		io := NewIOAPIC(0, func(Route) {})
		var a *LAPIC
		a = New(1, clk.now, 3_000_000_000, func(uint8) {}, func(i IPI) {
			if i.Mode == Fixed {
				a.Accept(i.Vector)
			}
		})
		a.SetEOIBroadcast(io.EOI)
		for len(ops) >= 3 {
			op, x, y := ops[0], ops[1], ops[2]
			ops = ops[3:]
			v := uint32(y) * 0x01010101
			switch op % 10 {
			case 0:
				a.Write(uint64(x)<<4, 4, uint64(v))
			case 1:
				_ = a.Read(uint64(x)<<4|uint64(y&7), y>>5)
			case 2:
				a.WriteMSR(0x800+uint32(x), uint64(v)|uint64(y&1)<<40)
			case 3:
				_, _ = a.ReadMSR(0x800 + uint32(x))
			case 4:
				clk.t += int64(x) << (y & 31)
				a.Tick()
			case 5:
				a.SetAPICBase(DefaultBase | uint64(x&0xF)<<8)
			case 6:
				a.SetTSCDeadline(uint64(v) << (x & 31))
			case 7:
				if vec, ok := a.Pending(); ok {
					a.Ack(vec)
				}
			case 8:
				io.Write(uint64(x&0x7)<<4, 4, uint64(v))
				_ = io.Read(uint64(y&7)<<4, 4)
			case 9:
				io.SetIRQ(int(x%26)-1, y&1 != 0)
			}
			if cur, init := rd(a, RegTimerCur), rd(a, RegTimerInit); cur > init {
				t.Fatalf("current count %d > initial %d", cur, init)
			}
		}
	})
}
