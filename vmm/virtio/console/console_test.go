package console

import (
	"bytes"
	"testing"

	"juice/vmm"
	"juice/vmm/virtio"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	ramSize = 4 << 20
	rxRing  = 0x1000
	txRing  = 0x4000
	bufAt   = 0x100000
)

type rig struct {
	mem    *vmm.GuestMemory
	dev    *Device
	s      *virtio.State
	drv    *vt.MMIO
	rx, tx *vt.Ring
	out    bytes.Buffer
	woken  int
	logs   []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	g := &rig{mem: vmm.NewGuestMemory(make([]byte, ramSize), 0)}
	g.dev = New(&g.out, func() { g.woken++ })
	g.s = virtio.NewState(g.dev, g.mem, nil, func(s string) { g.logs = append(g.logs, s) })
	g.drv = &vt.MMIO{Dev: virtio.NewMMIO(g.s, func(bool) {})}
	g.rx, g.tx = vt.NewRing(g.mem, 16, rxRing), vt.NewRing(g.mem, 16, txRing)
	if _, err := g.drv.Init(^uint64(0), []*vt.Ring{g.rx, g.tx}); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *rig) put(at uint64, s string) {
	b, _ := g.mem.Slice(at, uint64(len(s)))
	copy(b, s)
}

func TestOutput(t *testing.T) {
	g := newRig(t)
	g.put(bufAt, "hello ")
	g.put(bufAt+0x100, "hvc0\n")
	g.tx.Add(vt.Buf{Addr: bufAt, Len: 6}, vt.Buf{Addr: bufAt + 0x100, Len: 5})
	g.drv.Notify(txq)
	if g.out.String() != "hello hvc0\n" {
		t.Errorf("output %q", g.out.String())
	}
	if _, ln, ok := g.tx.PopUsed(); !ok || ln != 0 {
		t.Error("transmit chain not returned")
	}
}

func TestInput(t *testing.T) {
	g := newRig(t)
	if g.dev.Feed([]byte("ls\r")) != 3 || g.woken != 1 || !g.dev.Waiting() {
		t.Fatal("feed")
	}
	head := g.rx.Add(vt.Buf{Addr: bufAt, Len: 2, Write: true})
	g.rx.Add(vt.Buf{Addr: bufAt + 0x100, Len: 64, Write: true})
	g.s.Notify(rxq) // the vCPU services the waiting input
	id, ln, ok := g.rx.PopUsed()
	b, _ := g.mem.Slice(bufAt, 2)
	if !ok || id != uint32(head) || ln != 2 || string(b) != "ls" {
		t.Fatalf("first buffer: %v %d %d %q", ok, id, ln, b)
	}
	_, ln, ok = g.rx.PopUsed()
	b, _ = g.mem.Slice(bufAt+0x100, 1)
	if !ok || ln != 1 || string(b) != "\r" || g.dev.Waiting() {
		t.Fatalf("second buffer: %v %d %q waiting %v", ok, ln, b, g.dev.Waiting())
	}
	// Bounded input: the excess is counted.
	if n := g.dev.Feed(make([]byte, InputBuffer+10)); n != InputBuffer || g.dev.Dropped() != 10 {
		t.Errorf("fed %d, dropped %d", n, g.dev.Dropped())
	}
}

func TestHostile(t *testing.T) {
	g := newRig(t)
	g.tx.Add(vt.Buf{Addr: bufAt, Len: 8, Write: true})
	g.drv.Notify(txq)
	if g.s.Status()&virtio.StatusNeedsReset == 0 {
		t.Error("writable output buffer accepted")
	}
	g = newRig(t)
	g.dev.Feed([]byte("x"))
	g.rx.Add(vt.Buf{Addr: bufAt, Len: 8})
	g.s.Notify(rxq)
	if g.s.Status()&virtio.StatusNeedsReset == 0 {
		t.Error("readable input buffer accepted")
	}
}

func TestOutputAllocs(t *testing.T) {
	g := newRig(t)
	g.put(bufAt, "line\n")
	var sink discard
	g.dev.w = &sink
	if a := testing.AllocsPerRun(200, func() {
		g.tx.Add(vt.Buf{Addr: bufAt, Len: 5})
		g.drv.Notify(txq)
		g.tx.PopUsed()
	}); a != 0 {
		t.Errorf("%v allocations per write", a)
	}
}

type discard struct{ n int }

func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
