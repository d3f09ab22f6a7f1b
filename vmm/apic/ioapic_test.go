package apic

import "testing"

func newIO() (*IOAPIC, *[]Route) {
	var rs []Route
	io := NewIOAPIC(2, func(r Route) { rs = append(rs, r) })
	return io, &rs
}

func ioRead(io *IOAPIC, idx uint8) uint32 {
	io.Write(IORegSel, 4, uint64(idx))
	return uint32(io.Read(IOWin, 4))
}

func ioWrite(io *IOAPIC, idx uint8, v uint32) {
	io.Write(IORegSel, 4, uint64(idx))
	io.Write(IOWin, 4, uint64(v))
}

func program(io *IOAPIC, gsi int, lo, hi uint32) {
	ioWrite(io, uint8(IORedirBase+2*gsi+1), hi)
	ioWrite(io, uint8(IORedirBase+2*gsi), lo)
}

func TestIOAPICRegisters(t *testing.T) {
	io, _ := newIO()
	tests := []struct {
		idx       uint8
		write     bool
		val, want uint32
	}{
		{IOAPICID, false, 0, 2 << 24},
		{IOAPICVer, false, 0, 0x00170020},
		{IOAPICArb, false, 0, 2 << 24},
		{IORedirBase, false, 0, RedirMasked},
		{IORedirBase + 1, false, 0, 0},
		{IORedirBase + 47, false, 0, 0},
		{0x40, false, 0, 0}, // past the table
		{IOAPICVer, true, 0xFFFFFFFF, 0x00170020},
		{IOAPICID, true, 0xFFFFFFFF, 0x0F000000},
		{IOAPICArb, true, 0, 0x0F000000}, // follows ID, read-only
		{IORedirBase + 4, true, 0xFFFFFFFF, 0x0001AFFF},
		{IORedirBase + 5, true, 0xFFFFFFFF, 0xFF000000},
		{IORedirBase + 46, true, 0x000189AB, 0x000189AB},
		{IORedirBase + 47, true, 0x12345678, 0x12000000},
	}
	for _, tc := range tests {
		if tc.write {
			ioWrite(io, tc.idx, tc.val)
		}
		if got := ioRead(io, tc.idx); got != tc.want {
			t.Errorf("reg %#x = %#x, want %#x", tc.idx, got, tc.want)
		}
	}
	io.Write(IORegSel, 4, 0x1234)
	if got := io.Read(IORegSel, 4); got != 0x34 {
		t.Errorf("IOREGSEL = %#x", got)
	}
	if got := io.Read(0x20, 4); got != 0 {
		t.Errorf("undefined offset reads %#x", got)
	}
	if got := io.Entry(23); got != 0x12000000_000189AB {
		t.Errorf("Entry(23) = %#x", got)
	}
	if io.Entry(24) != 0 || io.Entry(-1) != 0 {
		t.Error("Entry out of range")
	}
}

func TestIOAPICEdge(t *testing.T) {
	io, rs := newIO()
	io.SetIRQ(4, true) // masked: lost
	io.SetIRQ(4, false)
	if len(*rs) != 0 {
		t.Fatal("masked pin delivered")
	}
	program(io, 4, 0x0000_0834, 0x0300_0000) // vector 0x34, logical, edge
	want := Route{GSI: 4, Dest: 3, Vector: 0x34, Logical: true}
	io.SetIRQ(4, true)
	io.SetIRQ(4, true) // no new edge
	if len(*rs) != 1 || (*rs)[0] != want {
		t.Fatalf("routes %+v", *rs)
	}
	io.SetIRQ(4, false)
	io.SetIRQ(4, true)
	if len(*rs) != 2 {
		t.Fatalf("second edge: %d routes", len(*rs))
	}
	if io.Entry(4)&RedirRemoteIRR != 0 {
		t.Fatal("edge entry set remote IRR")
	}
	// Other delivery modes are passed on.
	program(io, 5, 0x0000_0400, 0)
	io.SetIRQ(5, true)
	if r := (*rs)[2]; r.Mode != NMI || r.GSI != 5 {
		t.Fatalf("NMI route %+v", r)
	}
	io.SetIRQ(99, true)
	io.SetIRQ(-1, true)
	if len(*rs) != 3 {
		t.Fatal("out-of-range GSI delivered")
	}
}

func TestIOAPICLevel(t *testing.T) {
	io, rs := newIO()
	program(io, 9, RedirLevel|RedirActiveLow|0x49, 0x0100_0000)
	want := Route{GSI: 9, Dest: 1, Vector: 0x49, Level: true}
	io.SetIRQ(9, true)
	if len(*rs) != 1 || (*rs)[0] != want {
		t.Fatalf("routes %+v", *rs)
	}
	if ioRead(io, IORedirBase+18)&RedirRemoteIRR == 0 {
		t.Fatal("remote IRR not set")
	}
	io.SetIRQ(9, true) // still asserted, awaiting EOI: nothing
	if len(*rs) != 1 {
		t.Fatal("re-delivered before EOI")
	}
	io.EOI(0x48) // other vector
	if len(*rs) != 1 || io.Entry(9)&RedirRemoteIRR == 0 {
		t.Fatal("EOI of another vector ended it")
	}
	io.EOI(0x49) // still asserted: again
	if len(*rs) != 2 || io.Entry(9)&RedirRemoteIRR == 0 {
		t.Fatalf("EOI with line asserted: %d routes", len(*rs))
	}
	io.SetIRQ(9, false)
	io.Write(IOEOI, 4, 0x49) // EOI register
	if len(*rs) != 2 || io.Entry(9)&RedirRemoteIRR != 0 {
		t.Fatal("EOI with line deasserted")
	}
	// Remote IRR is read-only.
	ioWrite(io, IORedirBase+18, RedirLevel|RedirRemoteIRR|RedirMasked|0x49)
	if io.Entry(9)&RedirRemoteIRR != 0 {
		t.Fatal("remote IRR writable")
	}
	// Asserted while masked: delivered on unmask.
	io.SetIRQ(9, true)
	if len(*rs) != 2 {
		t.Fatal("masked level pin delivered")
	}
	ioWrite(io, IORedirBase+18, RedirLevel|0x49)
	if len(*rs) != 3 {
		t.Fatal("unmasking an asserted level pin did not deliver")
	}
	// Switching to edge clears remote IRR.
	ioWrite(io, IORedirBase+18, 0x49)
	if io.Entry(9)&RedirRemoteIRR != 0 {
		t.Fatal("edge entry kept remote IRR")
	}
}

// TestIOAPICWithLAPIC wires an IOAPIC to a LAPIC: a level interrupt's EOI
// reaches the IOAPIC through the broadcast.
func TestIOAPICWithLAPIC(t *testing.T) {
	a, f := newFake(0)
	enable(a)
	var io *IOAPIC
	io = NewIOAPIC(0, func(r Route) {
		if a.MatchDest(uint32(r.Dest), r.Logical) {
			a.AcceptLevel(r.Vector, r.Level)
		}
	})
	a.SetEOIBroadcast(io.EOI)
	program(io, 10, RedirLevel|0x5A, 0)
	io.SetIRQ(10, true)
	v, ok := a.Pending()
	if !ok || v != 0x5A {
		t.Fatalf("pending %#x %v", v, ok)
	}
	a.Ack(v)
	io.SetIRQ(10, false)
	wr(a, RegEOI, 0)
	if io.Entry(10)&RedirRemoteIRR != 0 {
		t.Fatal("LAPIC EOI did not reach the IOAPIC")
	}
	_ = f
}

func TestIOAPICAllocs(t *testing.T) {
	io := NewIOAPIC(0, func(Route) {})
	program(io, 1, 0x31, 0)
	program(io, 2, RedirLevel|0x32, 0)
	n := testing.AllocsPerRun(100, func() {
		_ = ioRead(io, IORedirBase+2)
		io.SetIRQ(1, true)
		io.SetIRQ(1, false)
		io.SetIRQ(2, true)
		io.SetIRQ(2, false)
		io.EOI(0x32)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}
