package net

import (
	"bytes"
	"encoding/binary"
	"testing"

	"juice/vmm"
	"juice/vmm/netswitch"
	"juice/vmm/virtio"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	ramSize = 4 << 20
	rxRing  = 0x1000
	txRing  = 0x4000
	bufAt   = 0x100000
)

// nic is one guest with a virtio-net device, driven through virtio-mmio.
type nic struct {
	mem    *vmm.GuestMemory
	dev    *Device
	s      *virtio.State
	drv    *vt.MMIO
	rx, tx *vt.Ring
	woken  int
	logs   []string
}

func newNIC(t *testing.T, sw *netswitch.Switch, mac netswitch.MAC) *nic {
	t.Helper()
	return newNICFeatures(t, sw, mac, ^uint64(0))
}

// newNICFeatures is newNIC whose driver accepts only the features in
// want.
func newNICFeatures(t *testing.T, sw *netswitch.Switch, mac netswitch.MAC, want uint64) *nic {
	t.Helper()
	n := &nic{mem: vmm.NewGuestMemory(make([]byte, ramSize), 0)}
	d, err := New(sw, mac, func() { n.woken++ })
	if err != nil {
		t.Fatal(err)
	}
	n.dev = d
	n.s = virtio.NewState(d, n.mem, nil, func(s string) { n.logs = append(n.logs, s) })
	n.drv = &vt.MMIO{Dev: virtio.NewMMIO(n.s, func(bool) {})}
	n.rx, n.tx = vt.NewRing(n.mem, 16, rxRing), vt.NewRing(n.mem, 16, txRing)
	if _, err := n.drv.Init(want, []*vt.Ring{n.rx, n.tx}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *nic) send(t *testing.T, at uint64, frame []byte) {
	b, _ := n.mem.Slice(at, uint64(HeaderSize+len(frame)))
	clear(b[:HeaderSize])
	copy(b[HeaderSize:], frame)
	n.tx.Add(vt.Buf{Addr: at, Len: uint32(len(b))})
	n.drv.Notify(txq)
}

func (n *nic) postRX(at uint64, size uint32) uint16 {
	return n.rx.Add(vt.Buf{Addr: at, Len: size, Write: true})
}

// service is what the platform does on the receiving VM's exits.
func (n *nic) service() {
	if n.dev.Waiting() {
		n.s.Notify(rxq)
	}
}

func ether(dst, src netswitch.MAC, payload string) []byte {
	f := append(append(append([]byte{}, dst[:]...), src[:]...), 0x08, 0x00)
	return append(f, payload...)
}

var macA, macB = netswitch.MAC{0x52, 0, 0, 0, 0, 0xa}, netswitch.MAC{0x52, 0, 0, 0, 0, 0xb}

func TestConfig(t *testing.T) {
	n := newNIC(t, netswitch.New("lan"), macA)
	var c [configSize]byte
	n.s.ReadConfig(0, c[:])
	if !bytes.Equal(c[:6], macA[:]) || binary.LittleEndian.Uint16(c[6:]) != statusUp || binary.LittleEndian.Uint16(c[10:]) != MTU {
		t.Errorf("config % x", c)
	}
}

func TestFrameBetweenGuests(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	head := b.postRX(bufAt, 2048)
	frame := ether(macB, macA, "ping from a")
	a.send(t, bufAt, frame)
	if id, _, ok := a.tx.PopUsed(); !ok || id != 0 {
		t.Fatal("transmit buffer not returned")
	}
	if b.woken != 1 || !b.dev.Waiting() {
		t.Fatal("receiver not woken")
	}
	b.service()
	id, ln, ok := b.rx.PopUsed()
	if !ok || id != uint32(head) || ln != uint32(HeaderSize+len(frame)) {
		t.Fatalf("rx used: ok %v id %d len %d", ok, id, ln)
	}
	got, _ := b.mem.Slice(bufAt, uint64(ln))
	if binary.LittleEndian.Uint16(got[10:]) != 1 || !bytes.Equal(got[HeaderSize:], frame) {
		t.Errorf("received % x", got)
	}
	if b.dev.Waiting() || a.dev.Stats().TxFrames != 1 || b.dev.Stats().RxFrames != 1 {
		t.Errorf("stats a %+v b %+v", a.dev.Stats(), b.dev.Stats())
	}
}

// drainUsed pops every used entry of r and returns how many there were.
func drainUsed(r *vt.Ring) int {
	n := 0
	for {
		if _, _, ok := r.PopUsed(); !ok {
			return n
		}
		n++
	}
}

// fill sends n frames from a to b, returning the used transmit entries
// after each (as the guest would).
func fill(t *testing.T, a *nic, n int, frame []byte) (used int) {
	for i := 0; i < n; i++ {
		a.send(t, bufAt, frame)
		used += drainUsed(a.tx)
	}
	return used
}

// Frames that arrive before the guest posts buffers wait in the backlog
// (bounded) and go out when buffers come. A frame for a full backlog is
// not dropped: the sender holds it (its transmit chain is not returned,
// and the frames behind it wait in its ring) until the receiver has room,
// when the switch wakes the sender and its next service sends them all.
func TestBackpressure(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	used := fill(t, a, Backlog+5, ether(macB, macA, "x"))
	if used != Backlog {
		t.Errorf("%d transmit buffers returned, want the %d the backlog took", used, Backlog)
	}
	if st := a.dev.Stats(); st.TxHeld != 1 || st.TxFrames != Backlog || st.TxDropped != 0 || b.dev.Stats().RxDropped != 0 {
		t.Errorf("sender %+v, receiver %+v: want one hold and no drops", st, b.dev.Stats())
	}
	if a.dev.Waiting() {
		t.Error("the held sender wants service before the receiver has room")
	}
	b.service() // no buffers: nothing moves
	if !b.dev.Waiting() || a.woken != 0 {
		t.Fatalf("backlog lost (waiting %v) or sender woken (%d) without room", b.dev.Waiting(), a.woken)
	}
	for i := 0; i < 8; i++ {
		b.postRX(bufAt+uint64(i)*2048, 2048)
	}
	b.drv.Notify(rxq) // the driver posts buffers and kicks
	if n := drainUsed(b.rx); n != 8 || !b.dev.Waiting() {
		t.Errorf("%d frames received into 8 buffers, waiting %v", n, b.dev.Waiting())
	}
	if a.woken != 1 || !a.dev.Waiting() {
		t.Fatalf("sender woken %d times, waiting %v: want it woken once the receiver has room", a.woken, a.dev.Waiting())
	}
	a.service()
	if n := drainUsed(a.tx); n != 5 {
		t.Errorf("%d transmit buffers returned after the wake-up, want the 5 held back", n)
	}
	if st := a.dev.Stats(); st.TxFrames != Backlog+5 || st.TxDropped != 0 || b.dev.Stats().RxDropped != 0 || a.dev.Waiting() {
		t.Errorf("sender %+v (waiting %v), receiver %+v: want every frame sent, none dropped", st, a.dev.Waiting(), b.dev.Stats())
	}
}

// A receiver that takes nothing holds a sender at most HoldLimit: then
// the held frame is dropped, and frames for that receiver are dropped
// (not held) until it takes frames again. Broadcasts are never held.
func TestHoldLimit(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	var clock int64
	a.dev.now = func() int64 { return clock }
	fill(t, a, Backlog+1, ether(macB, macA, "x"))
	if a.dev.Stats().TxHeld != 1 {
		t.Fatalf("sender %+v: want a held frame", a.dev.Stats())
	}
	clock += int64(HoldLimit) - 1
	if a.dev.Waiting() {
		t.Error("the sender gave up before HoldLimit")
	}
	clock++
	if !a.dev.Waiting() {
		t.Fatal("the sender does not want service after HoldLimit")
	}
	a.service()
	if n := drainUsed(a.tx); n != 1 || a.dev.Stats().TxDropped != 1 {
		t.Fatalf("after HoldLimit: %d buffers returned, sender %+v: want the held frame dropped", n, a.dev.Stats())
	}
	// The receiver is stalled: frames for it are dropped at once.
	if used := fill(t, a, 3, ether(macB, macA, "y")); used != 3 || b.dev.Stats().RxDropped != 3 || a.dev.Stats().TxHeld != 1 {
		t.Errorf("to a stalled receiver: %d returned, receiver %+v, sender %+v", used, b.dev.Stats(), a.dev.Stats())
	}
	// A broadcast to a full backlog is dropped, never held.
	if used := fill(t, a, 1, ether(netswitch.Broadcast, macA, "arp")); used != 1 || b.dev.Stats().RxDropped != 4 {
		t.Errorf("broadcast: %d returned, receiver %+v", used, b.dev.Stats())
	}
	// Once it takes frames it is no longer stalled: a sender is held again.
	b.postRX(bufAt, 2048)
	b.drv.Notify(rxq)
	if used := fill(t, a, 2, ether(macB, macA, "z")); used != 1 || a.dev.Stats().TxHeld != 2 {
		t.Errorf("after the receiver took a frame: %d returned, sender %+v: want one sent, one held", used, a.dev.Stats())
	}
}

// A sender reset while it holds a frame forgets it; the receiver's room
// later does not wake it.
func TestResetWhileHeld(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	fill(t, a, Backlog+1, ether(macB, macA, "x"))
	a.s.Reset()
	if a.dev.Waiting() {
		t.Error("a reset sender still wants service")
	}
	b.postRX(bufAt, 2048)
	b.drv.Notify(rxq)
	if a.woken != 0 || a.dev.Waiting() {
		t.Errorf("a reset sender was woken (%d, waiting %v)", a.woken, a.dev.Waiting())
	}
}

// Hostile transmit buffers: a spoofed source is dropped by the switch, a
// runt or giant by the device, a writable descriptor fails the device.
func TestHostileTransmit(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	b.postRX(bufAt, 2048)
	a.send(t, bufAt, ether(macB, macB, "spoofed"))
	a.send(t, bufAt, []byte{1, 2, 3})
	a.send(t, bufAt, make([]byte, MaxFrame+1))
	b.service()
	if _, _, ok := b.rx.PopUsed(); ok {
		t.Fatal("a bad frame arrived")
	}
	if a.dev.Stats().TxDropped != 3 {
		t.Errorf("tx dropped %d, want 3", a.dev.Stats().TxDropped)
	}
	a.tx.Add(vt.Buf{Addr: bufAt, Len: 64, Write: true})
	a.drv.Notify(txq)
	if a.s.Status()&virtio.StatusNeedsReset == 0 || len(a.logs) == 0 {
		t.Errorf("writable transmit buffer accepted (status %#x, logs %v)", a.s.Status(), a.logs)
	}
}

// A receive buffer too small for the frame comes back empty.
func TestSmallReceiveBuffer(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	b.postRX(bufAt, 20)
	a.send(t, bufAt, ether(macB, macA, "this frame is longer than eight bytes"))
	b.service()
	if _, ln, ok := b.rx.PopUsed(); !ok || ln != 0 {
		t.Errorf("small buffer: ok %v len %d", ok, ln)
	}
	if b.dev.Stats().RxDropped != 1 {
		t.Errorf("stats %+v", b.dev.Stats())
	}
}

func TestTransmitAllocs(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	frame := ether(macB, macA, "steady state")
	allocs := testing.AllocsPerRun(200, func() {
		b.postRX(bufAt+0x10000, 2048)
		a.send(t, bufAt, frame)
		a.tx.PopUsed()
		b.service()
		b.rx.PopUsed()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame", allocs)
	}
}
