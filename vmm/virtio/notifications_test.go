package virtio

import (
	"testing"

	vt "juice/vmm/virtio/virtiotest"
)

// The per-queue counters count the driver's kicks through the transport
// (not the platform's own Notify calls) and the interrupts the device
// sent (not the ones EVENT_IDX suppressed).
func TestNotificationCounters(t *testing.T) {
	g := newRig(t, 2, 8)
	g.init(t, ^uint64(0))
	r := g.rings[1]
	r.SetUsedEvent(1) // interrupt at the second completion only
	for i := 0; i < 3; i++ {
		r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
		g.drv.Notify(1)
	}
	g.s.Notify(1) // the platform servicing the queue: not a kick
	if k, i := g.s.Notifications(1); k != 3 || i != 1 {
		t.Errorf("queue 1: %d kicks, %d interrupts; want 3 and 1", k, i)
	}
	if k, i := g.s.Notifications(0); k != 0 || i != 0 {
		t.Errorf("queue 0: %d kicks, %d interrupts; want none", k, i)
	}
	if k, i := g.s.Notifications(2); k != 0 || i != 0 {
		t.Errorf("queue out of range: %d, %d", k, i)
	}
	g.drv.Notify(7) // no such queue: ignored, not counted
	if k, _ := g.s.Notifications(1); k != 3 {
		t.Errorf("a kick of a missing queue counted on queue 1")
	}
}
