package netswitch

import (
	"bytes"
	"sync"
	"testing"
)

type sink struct {
	mu     sync.Mutex
	frames [][]byte
	full   bool
}

func (k *sink) deliver(f []byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.full {
		return false
	}
	k.frames = append(k.frames, append([]byte(nil), f...))
	return true
}

func (k *sink) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.frames)
}

func frame(dst, src MAC, payload string) []byte {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), 0x08, 0x00)
	return append(f, payload...)
}

var (
	macA = MAC{0x52, 0, 0, 0, 0, 0xa}
	macB = MAC{0x52, 0, 0, 0, 0, 0xb}
	macC = MAC{0x52, 0, 0, 0, 0, 0xc}
	macX = MAC{0x52, 0, 0, 0, 0, 0xee}
)

func TestForwarding(t *testing.T) {
	s := New("lan")
	var a, b, c sink
	pa, pb, pc := s.Attach(macA, true, a.deliver), s.Attach(macB, true, b.deliver), s.Attach(macC, true, c.deliver)
	if pa == nil || pb == nil || pc == nil {
		t.Fatal("attach failed")
	}
	// Unicast to a known port: only it.
	if !pa.Send(frame(macB, macA, "hello b")) {
		t.Fatal("send refused")
	}
	if b.count() != 1 || a.count() != 0 || c.count() != 0 || !bytes.HasSuffix(b.frames[0], []byte("hello b")) {
		t.Fatalf("unicast: a %d b %d c %d", a.count(), b.count(), c.count())
	}
	// Broadcast: everyone but the sender.
	pb.Send(frame(Broadcast, macB, "arp"))
	if a.count() != 1 || b.count() != 1 || c.count() != 1 {
		t.Fatalf("broadcast: a %d b %d c %d", a.count(), b.count(), c.count())
	}
	// Unknown unicast floods.
	pc.Send(frame(macX, macC, "who"))
	if a.count() != 2 || b.count() != 2 || c.count() != 1 {
		t.Fatalf("flood: a %d b %d c %d", a.count(), b.count(), c.count())
	}
	// Spoofed source on a locked port: dropped, nobody sees it.
	if pa.Send(frame(macB, macC, "spoof")) {
		t.Error("spoofed frame accepted")
	}
	if pa.Send(frame(macB, Broadcast, "group src")) || pa.Send(make([]byte, 10)) || pa.Send(make([]byte, MaxFrame+1)) {
		t.Error("bad frame accepted")
	}
	if b.count() != 2 || pa.Stats().Dropped != 4 {
		t.Errorf("after bad frames: b %d, a's stats %+v", b.count(), pa.Stats())
	}
	// A full receiver is counted, the others still get theirs.
	c.full = true
	pa.Send(frame(Broadcast, macA, "x"))
	if pc.Stats().RxDropped != 1 || b.count() != 3 {
		t.Errorf("full receiver: %+v, b %d", pc.Stats(), b.count())
	}
	// Detach: gone from forwarding.
	pb.Detach()
	pb.Detach()
	pa.Send(frame(macB, macA, "after detach"))
	if b.count() != 3 {
		t.Error("a detached port received a frame")
	}
	if pb.Send(frame(macA, macB, "x")) {
		t.Error("a detached port sent")
	}
}

func TestIsolationBetweenSwitches(t *testing.T) {
	s1, s2 := New("a"), New("b")
	var x, y sink
	p1 := s1.Attach(macA, true, x.deliver)
	s2.Attach(macB, true, y.deliver)
	p1.Send(frame(Broadcast, macA, "x"))
	p1.Send(frame(macB, macA, "x"))
	if y.count() != 0 {
		t.Error("a frame crossed between networks")
	}
}

func TestAttachRules(t *testing.T) {
	s := New("lan")
	var k sink
	if s.Attach(Broadcast, true, k.deliver) != nil || s.Attach(macA, true, nil) != nil {
		t.Error("bad attach accepted")
	}
	if s.Attach(macA, true, k.deliver) == nil || s.Attach(macA, true, k.deliver) != nil {
		t.Error("duplicate MAC accepted")
	}
}

// An unlocked port (a guest bridging others) learns the addresses behind
// it, but cannot take an attached port's address.
func TestLearningUnlocked(t *testing.T) {
	s := New("lan")
	var a, b, c sink
	pa := s.Attach(macA, false, a.deliver)
	pb := s.Attach(macB, true, b.deliver)
	s.Attach(macC, true, c.deliver)
	pa.Send(frame(Broadcast, macX, "from X behind A"))
	pb.Send(frame(macX, macB, "to X"))
	if a.count() != 1 || c.count() != 1 {
		t.Fatalf("learned unicast: a %d c %d", a.count(), c.count())
	}
	pa.Send(frame(Broadcast, macB, "steal B")) // A claims B's address
	pc := s.table[macB]
	if pc != pb {
		t.Error("an unlocked port stole an attached address")
	}
	// The table stays bounded.
	f := frame(Broadcast, macA, "")
	for i := 0; i < MaxEntries+100; i++ {
		f[6+3], f[6+4], f[6+5] = byte(i>>16), byte(i>>8), byte(i)
		pa.Send(f)
	}
	if len(s.table) > MaxEntries {
		t.Errorf("table grew to %d", len(s.table))
	}
}

func TestSendAllocs(t *testing.T) {
	s := New("lan")
	var n int
	pa := s.Attach(macA, true, func([]byte) bool { n++; return true })
	s.Attach(macB, true, func([]byte) bool { n++; return true })
	uni, bc := frame(macB, macA, "payload"), frame(Broadcast, macA, "payload")
	if a := testing.AllocsPerRun(1000, func() { pa.Send(uni); pa.Send(bc) }); a != 0 {
		t.Errorf("%v allocations per send", a)
	}
}

func TestConcurrent(t *testing.T) {
	s := New("lan")
	var wg sync.WaitGroup
	ports := make([]*Port, 8)
	sinks := make([]sink, 8)
	for i := range ports {
		ports[i] = s.Attach(MAC{0x52, 0, 0, 0, 1, byte(i)}, true, sinks[i].deliver)
	}
	for i := range ports {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				ports[i].Send(frame(MAC{0x52, 0, 0, 0, 1, byte((i + 1) % 8)}, ports[i].MAC(), "x"))
				ports[i].Send(frame(Broadcast, ports[i].MAC(), "b"))
			}
		}(i)
	}
	wg.Wait()
	for i := range sinks {
		if got := sinks[i].count(); got != 200+7*200 {
			t.Errorf("port %d received %d, want %d", i, got, 200+7*200)
		}
	}
}

func FuzzSend(f *testing.F) {
	f.Add(frame(macB, macA, "x"), false)
	f.Add(frame(Broadcast, macX, "y"), true)
	f.Fuzz(func(t *testing.T, fr []byte, locked bool) {
		s := New("f")
		var a, b sink
		pa := s.Attach(macA, locked, a.deliver)
		s.Attach(macB, true, b.deliver)
		pa.Send(fr)
		pa.Send(fr)
		if a.count() != 0 {
			t.Fatal("frame came back to its sender")
		}
		if locked && len(fr) >= 12 && !bytes.Equal(fr[6:12], macA[:]) && b.count() != 0 {
			t.Fatal("a locked port's foreign-source frame was forwarded")
		}
	})
}

// flowSink is a receiver with flow control: it answers Busy while full.
type flowSink struct {
	mu     sync.Mutex
	frames int
	offs   []Offload
	full   bool
	busyN  int // answer Busy this many more times, then take frames
}

func (k *flowSink) deliver(f []byte, off Offload) Verdict {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busyN > 0 {
		k.busyN--
		return Busy
	}
	if k.full {
		return Busy
	}
	k.frames++
	k.offs = append(k.offs, off)
	return Accepted
}

// A unicast frame for a busy port is not taken from a sender using
// Transmit: it gets Busy, and its Wake runs once the port calls Ready;
// then the frame goes through. Send (no flow control) drops it instead;
// broadcasts are never held.
func TestFlowControl(t *testing.T) {
	s := New("lan")
	var b flowSink
	woken := 0
	pa := s.AttachPort(PortConfig{MAC: macA, Locked: true, Deliver: (&flowSink{}).deliver, Wake: func() { woken++ }})
	pb := s.AttachPort(PortConfig{MAC: macB, Locked: true, Deliver: b.deliver})
	if pa == nil || pb == nil {
		t.Fatal("attach failed")
	}
	b.full = true
	if v := pa.Transmit(frame(macB, macA, "held"), Offload{}); v != Busy {
		t.Fatalf("Transmit to a busy port: %v, want Busy", v)
	}
	if st := pa.Stats(); st.Held != 1 || st.Sent != 0 || pb.Stats().RxDropped != 0 {
		t.Errorf("after Busy: sender %+v, receiver %+v", st, pb.Stats())
	}
	if pa.Send(frame(macB, macA, "dropped")) != true || pb.Stats().RxDropped != 1 {
		t.Errorf("Send to a busy port: receiver %+v, want one drop", pb.Stats())
	}
	if pa.Transmit(frame(Broadcast, macA, "arp"), Offload{}) != Accepted || pb.Stats().RxDropped != 2 {
		t.Errorf("broadcast to a busy port: receiver %+v, want it dropped, not held", pb.Stats())
	}
	if woken != 0 {
		t.Fatalf("woken %d times before Ready", woken)
	}
	b.full = false
	pb.Ready()
	pb.Ready() // a second Ready wakes nobody
	if woken != 1 {
		t.Fatalf("woken %d times by Ready, want 1", woken)
	}
	if v := pa.Transmit(frame(macB, macA, "held"), Offload{}); v != Accepted || b.frames != 1 {
		t.Errorf("Transmit after Ready: %v, %d frames received", v, b.frames)
	}
}

// Transmit asks a busy port twice, the second time after recording the
// wait, so a port that made room meanwhile takes the frame (and the
// sender is not woken later).
func TestFlowControlRoomMeanwhile(t *testing.T) {
	s := New("lan")
	b := flowSink{busyN: 1}
	woken := 0
	pa := s.AttachPort(PortConfig{MAC: macA, Locked: true, Deliver: (&flowSink{}).deliver, Wake: func() { woken++ }})
	pb := s.AttachPort(PortConfig{MAC: macB, Locked: true, Deliver: b.deliver})
	if v := pa.Transmit(frame(macB, macA, "x"), Offload{}); v != Accepted || b.frames != 1 {
		t.Fatalf("Transmit: %v, %d frames: want the second try to take it", v, b.frames)
	}
	pb.Ready()
	if woken != 0 || pa.Stats().Held != 0 {
		t.Errorf("woken %d, sender %+v: want no wait recorded", woken, pa.Stats())
	}
}

// A sender that gives up (Abandon) stalls the port: frames for it are
// dropped, not held, until it calls Ready. Detaching a busy port wakes
// the senders held by it.
func TestAbandonAndDetach(t *testing.T) {
	s := New("lan")
	b := flowSink{full: true}
	woken := 0
	pa := s.AttachPort(PortConfig{MAC: macA, Locked: true, Deliver: (&flowSink{}).deliver, Wake: func() { woken++ }})
	pb := s.AttachPort(PortConfig{MAC: macB, Locked: true, Deliver: b.deliver})
	f := frame(macB, macA, "x")
	if pa.Transmit(f, Offload{}) != Busy {
		t.Fatal("not held")
	}
	pa.Abandon()
	if v := pa.Transmit(f, Offload{}); v != Accepted || pb.Stats().RxDropped != 1 {
		t.Errorf("to a stalled port: %v, receiver %+v: want a drop", v, pb.Stats())
	}
	pb.Ready()
	if woken != 0 {
		t.Errorf("an abandoned wait was woken")
	}
	if pa.Transmit(f, Offload{}) != Busy {
		t.Error("a port that called Ready still drops instead of holding")
	}
	pb.Detach()
	if woken != 1 {
		t.Errorf("detaching the busy port woke the sender %d times, want 1", woken)
	}
	if v := pa.Transmit(f, Offload{}); v != Accepted {
		t.Errorf("after detach: %v", v)
	}
	// Cancel forgets a wait without stalling anyone.
	pc := s.AttachPort(PortConfig{MAC: macC, Locked: true, Deliver: (&flowSink{full: true}).deliver})
	if pa.Transmit(frame(macC, macA, "y"), Offload{}) != Busy {
		t.Fatal("not held by C")
	}
	pa.Cancel()
	pc.Ready()
	if woken != 1 || pa.Transmit(frame(macC, macA, "y"), Offload{}) != Busy {
		t.Errorf("after Cancel: woken %d, want 1 and C still holding senders", woken)
	}
}

// Offloads travel with the frame; receivers attached without flow
// control (Attach) refuse offloaded frames; a bad offload is refused by
// the switch.
func TestOffloadCarried(t *testing.T) {
	s := New("lan")
	var b flowSink
	var c sink
	pa := s.AttachPort(PortConfig{MAC: macA, Locked: true, Deliver: (&flowSink{}).deliver})
	s.AttachPort(PortConfig{MAC: macB, Locked: true, Deliver: b.deliver})
	pc := s.Attach(macC, true, c.deliver)
	payload := "0123456789abcdefghijklmnopqrstuvwxyz0123456789"
	f := frame(macB, macA, payload)
	off := Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	if pa.Transmit(f, off) != Accepted || len(b.offs) != 1 || b.offs[0] != off {
		t.Fatalf("offload not carried: %+v", b.offs)
	}
	if pa.Transmit(frame(macC, macA, payload), off); c.count() != 0 || pc.Stats().RxDropped != 1 {
		t.Errorf("a plain receiver took an offloaded frame (%d, %+v)", c.count(), pc.Stats())
	}
	bad := []Offload{
		{NeedsCsum: true, CsumStart: 34, CsumOffset: uint16(len(f) - 34 - 1)},
		{NeedsCsum: true, CsumStart: 2, CsumOffset: 0},
		{GSO: GSOTCPv4, GSOSize: 1448},                                                           // no checksum request
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: GSOTCPv4},                          // no segment size
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: 3, GSOSize: 1448},                  // UDP fragmentation
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: GSOTCPv4, GSOSize: 1, HdrLen: 999}, // header past the end
	}
	for _, o := range bad {
		if o.Valid(len(f)) || pa.Transmit(f, o) != Dropped {
			t.Errorf("offload %+v accepted", o)
		}
	}
	if len(b.offs) != 1 {
		t.Errorf("bad offloads delivered: %+v", b.offs[1:])
	}
}

// Checksum is RFC 1071's (its worked example), Complete stores the
// complement of the sum from CsumStart, with the pseudo-header sum found
// in the field, and writes a zero sum as 0xffff.
func TestChecksum(t *testing.T) {
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("RFC 1071 example: %#x, want %#x", got, ^uint16(0xddf2))
	}
	if got := Checksum([]byte{0x12, 0x34, 0x56}); got != ^uint16(0x1234+0x5600) {
		t.Errorf("odd length: %#x", got)
	}
	f := make([]byte, 40)
	copy(f[20:], []byte{0x10, 0x20, 0x30, 0x40, 0x12, 0x34, 0, 0, 0x01, 0x02})
	off := Offload{NeedsCsum: true, CsumStart: 20, CsumOffset: 6}
	f[26], f[27] = 0x00, 0x07 // the "pseudo-header" part
	off.Complete(f)
	// The receiver's check: the region with the pseudo-header's words.
	if Checksum(append(append([]byte{}, f[20:]...), 0x00, 0x07)) != 0 {
		t.Errorf("completed checksum does not verify: % x", f[20:])
	}
	z := make([]byte, 30)
	z[20], z[21] = 0xff, 0xff
	(Offload{NeedsCsum: true, CsumStart: 20, CsumOffset: 2}).Complete(z)
	if z[22] != 0xff || z[23] != 0xff {
		t.Errorf("zero sum stored as %#x%02x, want 0xffff", z[22], z[23])
	}
}

func TestTransmitHoldAllocs(t *testing.T) {
	s := New("lan")
	b := flowSink{full: true}
	pa := s.AttachPort(PortConfig{MAC: macA, Locked: true, Deliver: (&flowSink{}).deliver, Wake: func() {}})
	pb := s.AttachPort(PortConfig{MAC: macB, Locked: true, Deliver: b.deliver})
	f := frame(macB, macA, "payload")
	if a := testing.AllocsPerRun(1000, func() { pa.Transmit(f, Offload{}); pb.Ready() }); a != 0 {
		t.Errorf("%v allocations per held transmit and Ready", a)
	}
}
