package main

// Uplinks: a bundle network bridged to a host NIC (the manifest's
// `"uplink": "vnet0"` on a network interface). The NIC becomes one more
// port of the network's virtual switch, not locked to an address, so the
// switch learns the addresses behind it (the wire's gateway, its other
// hosts) as it learns the VMs'.
//
// VMs to wire: the switch hands the uplink's port a frame on the sending
// vCPU's exit path (deliver): it is sent on the NIC right there, copied
// into one of the driver's transmit slots. The NIC takes no offloads, so
// what a guest's virtio-net left undone is finished first: a partial
// checksum is completed in a copy, and a TCP packet sent with
// segmentation offload is cut into MTU-sized segments (juice/vmm/virtio/
// net's Segment, the code a receiving guest device uses). A NIC whose
// transmit ring is full answers Busy, and the switch holds the sender's
// frame in its guest's transmit queue until the NIC has room (the
// poller calls Ready), so an upload runs at the wire's pace instead of
// losing frames.
//
// Wire to VMs: one goroutine per uplink polls the NIC's Recv (juice has
// no host-interrupt plumbing for drivers yet): when frames come it
// forwards them at once; when idle it spins briefly (yielding the CPU)
// and then sleeps 50 µs, doubling up to 1 ms. A frame for a VM whose
// receive backlog is full is held (the poller stops reading the NIC, so
// the NIC's own receive ring fills and its sender is slowed) until the
// VM takes it or uplinkHoldLimit passes; then the frame is dropped and
// the switch drops frames for that VM until it reads again. After a burst
// of traffic (uplinkReportFrames frames, then uplinkQuiet without any)
// the poller prints the uplink's counters on juice's console.

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"juice/drivers/nic"
	"juice/vmm/bundle"
	"juice/vmm/netswitch"
	vnet "juice/vmm/virtio/net"
)

// Poller timing.
const (
	// uplinkSpinPolls is how many empty polls yield the CPU before the
	// poller starts sleeping.
	uplinkSpinPolls = 64
	// uplinkMinSleep and uplinkMaxSleep bound the idle poller's sleep.
	uplinkMinSleep = 50 * time.Microsecond
	uplinkMaxSleep = time.Millisecond
	// uplinkHoldLimit is how long a frame from the wire waits for a busy
	// VM (as a guest's frame waits for another: vmm/virtio/net's
	// HoldLimit).
	uplinkHoldLimit = vnet.HoldLimit
	// uplinkQuiet is how long traffic must have stopped before the
	// poller prints the uplink's counters, if at least uplinkReportFrames
	// frames crossed since it last did (a download, not chatter).
	uplinkQuiet        = 2 * time.Second
	uplinkReportFrames = 1000
	// uplinkMaxSegments bounds the segments one GSO frame is cut into
	// (a 64 KiB packet at the smallest MSS a guest uses).
	uplinkMaxSegments = 256
)

// txRoom is what a NIC driver may offer besides nic.Device: reclaim its
// finished transmit slots and say how many are free (virtio.Net does).
// The uplink uses it to send a segmented packet whole or not at all, and
// to learn when a full ring has room again; without it, it retries.
type txRoom interface{ TxFree() int }

// uplink is one network's bridge to a host NIC.
type uplink struct {
	nic  *hostNIC
	dev  nic.Device
	room txRoom // nil if the driver does not offer it
	sw   *netswitch.Switch
	port *netswitch.Port

	mu  sync.Mutex // deliver: one frame at a time into buf and the NIC
	buf []byte     // a frame being completed or a segment being cut

	full atomic.Bool   // deliver answered Busy: call port.Ready once the NIC has room
	wake chan struct{} // the switch's Wake: a VM we hold a frame for has room

	// Counters: frames sent on the wire (segments counted one by one),
	// frames from VMs dropped (too big, an offload that cannot be
	// finished, a NIC error), frames from the wire forwarded and dropped
	// (held too long), and the GSO packets cut.
	toWire, toWireDropped, fromWire, fromWireDropped, segmented atomic.Uint64
}

var (
	uplinksMu sync.Mutex
	uplinks   = map[*netswitch.Switch]*uplink{}
)

// attachUplinks starts the uplinks a VM's network interfaces name,
// creating their networks' switches in switches if they do not exist
// yet; a network already bridged to the same NIC is left alone. Called
// by deviceBackends before any of the VM's back-ends are made, so that a
// VM refused here has claimed nothing.
func attachUplinks(nets []bundle.NetSpec, switches map[string]*netswitch.Switch) error {
	for i, n := range nets {
		if n.Uplink == "" {
			continue
		}
		sw := switches[n.Network]
		if sw == nil {
			sw = netswitch.New(n.Network)
			switches[n.Network] = sw
		}
		if err := startUplink(sw, n.Uplink); err != nil {
			return fmt.Errorf("network interface %d: uplink of network %s: %w", i, n.Network, err)
		}
	}
	return nil
}

// startUplink bridges sw to the host NIC called name and starts its
// poller.
func startUplink(sw *netswitch.Switch, name string) error {
	uplinksMu.Lock()
	defer uplinksMu.Unlock()
	hn, err := findHostNIC(name)
	if err != nil {
		return err
	}
	if u := uplinks[sw]; u != nil {
		if u.nic == hn {
			return nil
		}
		return fmt.Errorf("the network is bridged to %s already", u.nic.name)
	}
	for other, u := range uplinks {
		if u.nic == hn {
			return fmt.Errorf("host NIC %s is the uplink of network %s already", name, other.Name)
		}
	}
	u := newUplink(hn, sw)
	if u.port == nil {
		return fmt.Errorf("network %s refused host NIC %s's MAC %s (an interface on it has that address)", sw.Name, name, formatMAC(hn.dev.MAC()))
	}
	uplinks[sw] = u
	link := "down"
	if hn.dev.LinkUp() {
		link = "up"
	}
	log.Printf("juice: network %s: uplink %s (%s, MAC %s, link %s)", sw.Name, name, hn.driver, formatMAC(hn.dev.MAC()), link)
	go u.poll()
	return nil
}

// newUplink attaches hn to sw as an unlocked port (u.port is nil when
// the switch refuses it).
func newUplink(hn *hostNIC, sw *netswitch.Switch) *uplink {
	u := &uplink{nic: hn, dev: hn.dev, sw: sw, wake: make(chan struct{}, 1),
		buf: make([]byte, hn.dev.MTU()+netswitch.MinFrame)}
	u.room, _ = hn.dev.(txRoom)
	u.port = sw.AttachPort(netswitch.PortConfig{
		MAC:     netswitch.MAC(hn.dev.MAC()),
		Locked:  false,
		Deliver: u.deliver,
		Wake:    u.woken,
	})
	return u
}

// woken is the port's Wake: non-blocking, allocation-free.
func (u *uplink) woken() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// deliver is the switch's hand-off of a frame for the wire: a VM's vCPU
// exit path (allocation-free, bounded: at most uplinkMaxSegments sends).
func (u *uplink) deliver(frame []byte, off netswitch.Offload) netswitch.Verdict {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case off.GSO != netswitch.GSONone:
		return u.segment(frame, off)
	case len(frame) > len(u.buf):
		u.toWireDropped.Add(1)
		return netswitch.Dropped
	case off.NeedsCsum:
		b := u.buf[:len(frame)]
		copy(b, frame)
		off.Complete(b)
		return u.send(b)
	}
	return u.send(frame)
}

// send puts one frame on the wire. Caller holds mu.
func (u *uplink) send(frame []byte) netswitch.Verdict {
	switch err := u.dev.Send(frame); {
	case err == nil:
		u.toWire.Add(1)
		return netswitch.Accepted
	case errors.Is(err, nic.ErrFull):
		u.full.Store(true)
		return netswitch.Busy
	}
	u.toWireDropped.Add(1)
	return netswitch.Dropped
}

// segment cuts a GSO frame into segments and sends them, all of them or,
// when the NIC lacks the room (and says so), none (Busy). Caller holds
// mu.
func (u *uplink) segment(frame []byte, off netswitch.Offload) netswitch.Verdict {
	n := vnet.Segments(frame, off)
	if n == 0 || n > uplinkMaxSegments {
		u.toWireDropped.Add(1)
		return netswitch.Dropped
	}
	if u.room != nil && u.room.TxFree() < n {
		u.full.Store(true)
		return netswitch.Busy
	}
	u.segmented.Add(1)
	for i := range n {
		l := vnet.Segment(u.buf, frame, off, i)
		if l == 0 {
			// A segment larger than the MTU: the guest's MSS does
			// not fit the NIC. The rest goes with it.
			u.toWireDropped.Add(uint64(n - i))
			return netswitch.Dropped
		}
		if err := u.dev.Send(u.buf[:l]); err != nil {
			// Without txRoom a full ring loses the rest; TCP
			// resends it.
			u.toWireDropped.Add(uint64(n - i))
			return netswitch.Dropped
		}
		u.toWire.Add(1)
	}
	return netswitch.Accepted
}

// poll is the uplink's goroutine: frames from the wire to the switch,
// and Ready for senders held by a full transmit ring.
func (u *uplink) poll() {
	buf := make([]byte, u.dev.MTU()+18) // a VLAN tag fits
	idle, sleep := 0, uplinkMinSleep
	var last, atReport [2]uint64
	lastMove := time.Now()
	reported := true
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		u.readyIfRoom()
		n, ok, err := u.dev.Recv(buf)
		if err != nil {
			log.Printf("juice: network %s: uplink %s failed: %v; the network goes on without it", u.sw.Name, u.nic.name, err)
			u.port.Detach()
			return
		}
		if ok {
			idle, sleep = 0, uplinkMinSleep
			u.forward(buf[:n], timer)
			continue
		}
		if now := [2]uint64{u.toWire.Load(), u.fromWire.Load()}; now != last {
			last, lastMove, reported = now, time.Now(), false
		} else if !reported && time.Since(lastMove) > uplinkQuiet {
			if now[0]+now[1]-atReport[0]-atReport[1] >= uplinkReportFrames {
				u.report()
				atReport = now
			}
			reported = true
		}
		idle++
		if idle <= uplinkSpinPolls {
			runtime.Gosched()
			continue
		}
		time.Sleep(sleep)
		if !u.full.Load() {
			sleep = min(2*sleep, uplinkMaxSleep)
		}
	}
}

// readyIfRoom tells the switch that the NIC has transmit room again, if
// deliver said it had none (without txRoom: to let the sender retry).
func (u *uplink) readyIfRoom() {
	if u.full.Load() && (u.room == nil || u.room.TxFree() > 0) {
		u.full.Store(false)
		u.port.Ready()
	}
}

// forward sends one frame from the wire into the switch, holding it
// while its VM is busy (at most uplinkHoldLimit).
func (u *uplink) forward(frame []byte, timer *time.Timer) {
	v := u.port.Transmit(frame, netswitch.Offload{})
	deadline := time.Now().Add(uplinkHoldLimit)
	for v == netswitch.Busy {
		if time.Now().After(deadline) {
			u.port.Abandon()
			u.fromWireDropped.Add(1)
			return
		}
		// Wait for the VM's Ready, in short slices so that a full
		// transmit ring is still looked after.
		timer.Reset(uplinkMinSleep * 4)
		select {
		case <-u.wake:
			timer.Stop() // Go 1.23 timers: no stale tick after Stop
		case <-timer.C:
		}
		u.readyIfRoom()
		v = u.port.Transmit(frame, netswitch.Offload{})
	}
	if v == netswitch.Accepted {
		u.fromWire.Add(1)
	} else {
		u.fromWireDropped.Add(1)
	}
}

// report prints the uplink's counters (after a burst of traffic).
func (u *uplink) report() {
	s := u.dev.Stats()
	p := u.port.Stats()
	log.Printf("juice: network %s: uplink %s: to the wire %d frames (%d GSO packets cut; %d dropped, ring full %d times), from the wire %d frames (%d dropped); NIC sent %d (%d bytes), received %d (%d bytes), dropped %d",
		u.sw.Name, u.nic.name, u.toWire.Load(), u.segmented.Load(), u.toWireDropped.Load(), s.TxFull,
		u.fromWire.Load(), u.fromWireDropped.Load()+p.Dropped, s.TxFrames, s.TxBytes, s.RxFrames, s.RxBytes, s.RxDrop)
}
