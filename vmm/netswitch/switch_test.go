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
