package rng

import (
	"strings"
	"testing"

	"juice/vmm"
	"juice/vmm/virtio"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	ramSize = 4 << 20
	ringAt  = 0x1000
	bufAt   = 0x100000
)

type rig struct {
	mem  *vmm.GuestMemory
	s    *virtio.State
	drv  *vt.MMIO
	r    *vt.Ring
	line bool
	logs []string
	ctr  byte
}

// newRig brings an rng up through virtio-mmio with a counting source.
func newRig(t testing.TB) *rig {
	t.Helper()
	g := &rig{mem: vmm.NewGuestMemory(make([]byte, ramSize), 0)}
	src := func(p []byte) {
		for i := range p {
			g.ctr++
			p[i] = g.ctr
		}
	}
	g.s = virtio.NewState(New(src), g.mem, nil, func(s string) { g.logs = append(g.logs, s) })
	g.drv = &vt.MMIO{Dev: virtio.NewMMIO(g.s, func(l bool) { g.line = l })}
	g.r = vt.NewRing(g.mem, 32, ringAt)
	if _, err := g.drv.Init(^uint64(0), []*vt.Ring{g.r}); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *rig) bytes(gpa, n uint64) []byte {
	b, _ := g.mem.Slice(gpa, n)
	return b
}

func TestIdentity(t *testing.T) {
	g := newRig(t)
	g.drv.W(0x030, 1)
	if g.drv.R(0x008) != 4 || g.drv.R(0x034) != 0 {
		t.Fatal("device ID / only one queue")
	}
	g.drv.W(0x030, 0)
	if g.drv.R(0x034) != QueueSize {
		t.Fatal("queue size")
	}
}

func TestFill(t *testing.T) {
	g := newRig(t)
	head := g.r.Add(vt.Buf{Addr: bufAt, Len: 5, Write: true}, vt.Buf{Addr: bufAt + 0x100, Len: 3, Write: true})
	g.drv.Notify(0)
	id, ln, ok := g.r.PopUsed()
	if !ok || id != uint32(head) || ln != 8 {
		t.Fatalf("used %v id %d len %d", ok, id, ln)
	}
	got := append(append([]byte{}, g.bytes(bufAt, 5)...), g.bytes(bufAt+0x100, 3)...)
	for i, b := range got {
		if b != byte(i+1) {
			t.Fatalf("byte %d = %d: buffers not filled from the source in order (%v)", i, b, got)
		}
	}
	if !g.line || g.drv.Ack() != virtio.ISRQueue || g.line {
		t.Fatal("interrupt")
	}
	// Indirect request.
	g.r.AddIndirect(0x3000, vt.Buf{Addr: bufAt + 0x200, Len: 4, Write: true})
	g.drv.Notify(0)
	if _, ln, ok := g.r.PopUsed(); !ok || ln != 4 || g.bytes(bufAt+0x200, 1)[0] != 9 {
		t.Fatal("indirect fill")
	}
}

func TestRequestCap(t *testing.T) {
	g := newRig(t)
	g.r.Add(vt.Buf{Addr: bufAt, Len: MaxRequestBytes + 100, Write: true})
	g.drv.Notify(0)
	if _, ln, ok := g.r.PopUsed(); !ok || ln != MaxRequestBytes {
		t.Fatalf("used len %d, want %d", ln, MaxRequestBytes)
	}
	if g.bytes(bufAt+MaxRequestBytes, 1)[0] != 0 {
		t.Fatal("wrote past the per-request cap")
	}
}

func TestNotifyCap(t *testing.T) {
	g := newRig(t)
	const n = MaxNotifyBytes/MaxRequestBytes + 4
	for i := uint64(0); i < n; i++ {
		g.r.Add(vt.Buf{Addr: bufAt + i*MaxRequestBytes, Len: MaxRequestBytes, Write: true})
	}
	g.drv.Notify(0)
	if got := g.r.UsedIdx(); got != MaxNotifyBytes/MaxRequestBytes || !g.s.Pending() {
		t.Fatalf("first notify completed %d requests, pending %v", got, g.s.Pending())
	}
	g.s.Poll()
	if got := g.r.UsedIdx(); got != n {
		t.Fatalf("after Poll %d requests", got)
	}
}

func TestReadableBufferNeedsReset(t *testing.T) {
	g := newRig(t)
	g.r.Add(vt.Buf{Addr: bufAt, Len: 4}, vt.Buf{Addr: bufAt + 0x100, Len: 4, Write: true})
	g.drv.Notify(0)
	if g.drv.Status()&virtio.StatusNeedsReset == 0 || len(g.logs) != 1 || !strings.Contains(g.logs[0], "device-readable") {
		t.Fatalf("status %#x logs %q", g.drv.Status(), g.logs)
	}
	if g.r.UsedIdx() != 0 || g.bytes(bufAt+0x100, 1)[0] != 0 {
		t.Fatal("a rejected request must not be completed or filled")
	}
}

func TestAllocs(t *testing.T) {
	g := newRig(t)
	allocs := testing.AllocsPerRun(200, func() {
		g.r.Add(vt.Buf{Addr: bufAt, Len: 64, Write: true})
		g.drv.Notify(0)
		g.drv.Ack()
		g.r.PopUsed()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
	if g.r.UsedIdx() < 200 {
		t.Fatal("requests not completed")
	}
}
