// Package net is the virtio network device (virtio 1.2 section 5.1): one
// receive and one transmit queue, a fixed MAC address, link always up,
// and the offloads a guest-to-guest link makes cheap: checksum offload
// both ways (VIRTIO_NET_F_CSUM, GUEST_CSUM) and TCP segmentation offload
// both ways (HOST_TSO4/6, GUEST_TSO4/6). A guest may leave a frame's TCP
// or UDP checksum to the device, and may send one TCP packet of up to 64
// KiB for the device to cut into MTU-sized segments; the frame crosses
// the switch with that request (netswitch.Offload), and the receiving
// device passes it on as is to a guest that accepts it (as between two
// Linux guests on a host bridge: the checksum is never computed and the
// packet never cut) or, for a guest that does not, completes the checksum
// or cuts the segments itself (gso.go) in its own copy. Its other end is
// a port of a juice/vmm/netswitch switch: transmitted frames go to the
// switch, frames the switch delivers fill the guest's receive buffers.
//
// The transmit path runs on the VM-exit path (Notify): it allocates
// nothing and handles at most a queue's worth of frames per kick. The
// switch delivers on the sender's goroutine (another VM's vCPU, inside
// its own device's Notify): the frame is only copied into a bounded
// backlog and the receiving VM is woken; its own vCPU moves the backlog
// into the guest's receive buffers (Service, from the platform's per-exit
// poll, and Notify of the receive queue), so no device lock is ever held
// across two VMs.
//
// Flow control: a frame for an interface whose backlog is full is not
// dropped but left in the sender's transmit queue (the switch answers
// Busy): the sender stops transmitting, its guest's transmit ring fills
// and its network stack waits, until the receiver has moved frames into
// its guest and has room again; then the switch wakes the sender, whose
// vCPU sends on. So a fast sender runs at its receiver's pace instead of
// losing frames to it (TCP would back off). A sender waits at most
// HoldLimit for one frame: then it drops the frame, and the switch drops
// frames for that receiver until it takes frames again, so a guest that
// stops reading cannot stall the others. Broadcasts are never held; a
// full backlog drops them, as a NIC with no free receive descriptors
// does.
package net

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"juice/vmm/netswitch"
	"juice/vmm/virtio"
)

// Feature bits offered.
const (
	FeatureCsum      = 1 << 0
	FeatureGuestCsum = 1 << 1
	FeatureMTU       = 1 << 3
	FeatureMAC       = 1 << 5
	FeatureGuestTSO4 = 1 << 7
	FeatureGuestTSO6 = 1 << 8
	FeatureHostTSO4  = 1 << 11
	FeatureHostTSO6  = 1 << 12
	FeatureStatus    = 1 << 16
)

// Limits.
const (
	QueueSize = 256
	// HeaderSize is struct virtio_net_hdr_v1 (VERSION_1: always with
	// num_buffers).
	HeaderSize = 12
	// MTU is the interface MTU the device reports; a frame is at most
	// MTU + 14 (Ethernet header) + 4 (a VLAN tag), except a GSO frame,
	// at most MaxGSOFrame.
	MTU         = 1500
	MaxFrame    = MTU + 18
	MaxGSOFrame = netswitch.MaxFrame
	// configSize: mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
	configSize = 12
	rxq, txq   = 0, 1
	statusUp   = 1
	// virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start,
	// csum_offset, num_buffers.
	hdrFNeedsCsum = 1
	hdrGSOECN     = 0x80
	hdrHdrLen     = 2
	hdrGSOSize    = 4
	hdrCsumStart  = 6
	hdrCsumOffset = 8
	hdrNumBuffers = 10
	// Backlog is how many received frames wait for the guest's buffers,
	// and BacklogBytes how many bytes they may take together.
	Backlog      = 256
	BacklogBytes = 1 << 20
	// HoldLimit is how long a transmitted frame waits for a busy
	// receiver before it is dropped.
	HoldLimit = 100 * time.Millisecond
)

// Stats counts the device's traffic.
type Stats struct {
	TxFrames, RxFrames, TxDropped, RxDropped uint64
	// TxHeld counts the times transmission stopped for a busy receiver.
	TxHeld uint64
}

// Device is one virtio-net interface.
type Device struct {
	mac  netswitch.MAC
	port *netswitch.Port

	mu   sync.Mutex // guards env and the backlog
	env  virtio.Env
	wake func()
	// The backlog: frames for the guest in arrival order, slots[head]
	// first, n of them; their bytes lie in buf, a ring of BacklogBytes
	// in which the next frame goes at wr (or at 0 when it does not fit
	// before the end).
	buf     []byte
	slots   [Backlog]slot
	head, n int
	wr      int
	waiting atomic.Bool       // the backlog is not empty
	txbuf   [MaxGSOFrame]byte // the frame being sent (Notify is serialized)

	// full: deliver answered Busy; receive calls port.Ready once there
	// is room.
	full atomic.Bool

	// Transmit held for a busy receiver (Notify is serialized; the
	// atomics are read by Waiting from any goroutine). The held frame is
	// txbuf[:heldLen], from chain heldChain, not yet returned.
	held      bool
	heldLen   int
	heldOff   netswitch.Offload
	heldChain virtio.Chain
	holding   atomic.Bool  // held, for Waiting
	holdUntil atomic.Int64 // now() after which the frame is dropped
	txWake    atomic.Bool  // the switch woke us: transmit again
	now       func() int64 // monotonic nanoseconds

	// What the driver accepted: partial checksums, GSO frames (read by
	// deliver on other goroutines) and sending GSO frames (Notify only).
	guestCsum, guestTSO4, guestTSO6 atomic.Bool
	hostTSO4, hostTSO6              bool

	txFrames, rxFrames, txDropped, rxDropped, txHeld atomic.Uint64
}

// slot is one frame in the backlog: its bytes, and what the guest is left
// to do (a partial checksum, a GSO frame it accepted).
type slot struct {
	at, n int
	off   netswitch.Offload
}

// epoch is the origin of monotonicNow.
var epoch = time.Now()

// monotonicNow is nanoseconds on the monotonic clock. Allocation-free.
func monotonicNow() int64 { return int64(time.Since(epoch)) }

var _ virtio.Device = (*Device)(nil)

// New returns an interface with address mac attached to sw (a locked
// port: it may only send from mac); wake (may be nil) is called when a
// frame arrives, to get the VM's vCPU to call Service. It fails when the
// switch refuses the port (the address is taken, or the switch is full).
func New(sw *netswitch.Switch, mac netswitch.MAC, wake func()) (*Device, error) {
	d := &Device{mac: mac, wake: wake, now: monotonicNow, buf: make([]byte, BacklogBytes)}
	d.port = sw.AttachPort(netswitch.PortConfig{MAC: mac, Locked: true, Deliver: d.deliver, Wake: d.resume})
	if d.port == nil {
		return nil, fmt.Errorf("virtio-net: network %q refused MAC %x (taken, or the network is full)", sw.Name, mac)
	}
	return d, nil
}

// Close detaches the interface from its switch.
func (d *Device) Close() { d.port.Detach() }

// Stats returns the device's counters. RxDropped counts the frames for
// this interface that its port dropped (the device was not set up, its
// backlog was full for a broadcast or after a sender gave up waiting) and
// those the guest's buffers were too small for.
func (d *Device) Stats() Stats {
	return Stats{TxFrames: d.txFrames.Load(), RxFrames: d.rxFrames.Load(), TxDropped: d.txDropped.Load(),
		RxDropped: d.rxDropped.Load() + d.port.Stats().RxDropped, TxHeld: d.txHeld.Load()}
}

// Type is IDNet.
func (d *Device) Type() uint16 { return virtio.IDNet }

// Features offers checksum and TCP segmentation offload both ways and the
// MAC, link status and MTU fields.
func (d *Device) Features() uint64 {
	return FeatureCsum | FeatureGuestCsum | FeatureHostTSO4 | FeatureHostTSO6 | FeatureGuestTSO4 | FeatureGuestTSO6 |
		FeatureMAC | FeatureStatus | FeatureMTU
}

// ConfigSize is the configuration space's size.
func (d *Device) ConfigSize() int { return configSize }

// ReadConfig reads the configuration: MAC, status (link up), one queue
// pair, MTU.
func (d *Device) ReadConfig(off int, p []byte) {
	var c [configSize]byte
	copy(c[0:6], d.mac[:])
	binary.LittleEndian.PutUint16(c[6:], statusUp)
	binary.LittleEndian.PutUint16(c[8:], 1)
	binary.LittleEndian.PutUint16(c[10:], MTU)
	copy(p, c[off:])
}

// WriteConfig ignores writes (the MAC is fixed by the manifest).
func (d *Device) WriteConfig(off int, p []byte) {}

// NumQueues is 2: receive, transmit.
func (d *Device) NumQueues() int { return 2 }

// MaxQueueSize is QueueSize.
func (d *Device) MaxQueueSize(q int) uint16 { return QueueSize }

// Activate starts the interface.
func (d *Device) Activate(env virtio.Env) error {
	f := env.Features()
	csum := f&FeatureGuestCsum != 0
	d.guestCsum.Store(csum)
	// GUEST_TSO needs GUEST_CSUM, HOST_TSO needs CSUM (virtio 1.2
	// 5.1.3.1); a driver that broke that gets no GSO.
	d.guestTSO4.Store(csum && f&FeatureGuestTSO4 != 0)
	d.guestTSO6.Store(csum && f&FeatureGuestTSO6 != 0)
	d.hostTSO4 = f&FeatureCsum != 0 && f&FeatureHostTSO4 != 0
	d.hostTSO6 = f&FeatureCsum != 0 && f&FeatureHostTSO6 != 0
	d.mu.Lock()
	d.env = env
	d.mu.Unlock()
	return nil
}

// Reset stops the interface: the backlog is dropped, and frames
// arriving are dropped until the driver activates it again.
func (d *Device) Reset() {
	d.mu.Lock()
	d.env = nil
	d.head, d.n, d.wr = 0, 0, 0
	d.waiting.Store(false)
	d.mu.Unlock()
	if d.held {
		// The guest's chain goes with the reset queue.
		d.held = false
		d.holding.Store(false)
		d.port.Cancel()
	}
	d.txWake.Store(false)
	d.guestCsum.Store(false)
	d.guestTSO4.Store(false)
	d.guestTSO6.Store(false)
	d.hostTSO4, d.hostTSO6 = false, false
	if d.full.Swap(false) {
		d.port.Ready() // the backlog is empty
	}
}

// Waiting reports whether the device has work for the VM's vCPU: received
// frames wait in the backlog, or a transmission held for a busy receiver
// can go on (the receiver has room, or the frame waited HoldLimit). The
// vCPU should then kick the receive queue (State.Notify(0)), which calls
// Notify(0) under the device lock. One atomic load when idle; a clock
// read while a frame is held.
func (d *Device) Waiting() bool {
	return d.waiting.Load() || d.txWake.Load() || d.holding.Load() && d.now() >= d.holdUntil.Load()
}

// resume is the switch's Wake: the receiver this device's transmission
// waits on has room again. It runs on that receiver's goroutine.
func (d *Device) resume() {
	d.txWake.Store(true)
	if d.wake != nil {
		d.wake()
	}
}

// Notify handles a kick: the transmit queue sends its frames; the
// receive queue (new buffers, or the VM servicing its device) takes
// waiting frames and resumes a held transmission.
func (d *Device) Notify(q int) {
	switch q {
	case rxq:
		d.receive()
		if d.txWake.Swap(false) || d.held && d.now() >= d.holdUntil.Load() {
			d.transmit()
		}
	case txq:
		d.txWake.Store(false)
		d.transmit()
	}
}

// transmit sends the frames of the transmit queue, at most QueueSize per
// call, starting with a held one; it stops at a busy receiver, holding
// that frame.
func (d *Device) transmit() {
	d.mu.Lock()
	env := d.env
	d.mu.Unlock()
	if env == nil {
		return
	}
	tx := env.Queue(txq)
	if d.held && !d.resend(tx) {
		return
	}
	frame := d.txbuf[:]
	n := 0
	for ; n < QueueSize; n++ {
		c, ok, err := tx.Next()
		if err != nil || !ok {
			break
		}
		if c.WriteLen() != 0 {
			env.Fail(fmt.Sprintf("queue %d, chain head %d: transmit buffer has %d device-writable bytes", txq, c.Head, c.WriteLen()))
			return
		}
		l := c.ReadLen()
		if l < HeaderSize+netswitch.MinFrame || l > HeaderSize+MaxGSOFrame {
			// Not a frame this device can carry: dropped, as a
			// NIC drops a runt or a giant.
			d.txDropped.Add(1)
			tx.Done(c, 0)
			continue
		}
		var hdr [HeaderSize]byte
		c.Read(hdr[:])
		m := c.Read(frame[:l-HeaderSize])
		off, ok := d.txOffload(hdr, m)
		if !ok {
			// A header the device cannot honour.
			d.txDropped.Add(1)
			tx.Done(c, 0)
			continue
		}
		v := d.port.Transmit(frame[:m], off)
		if v == netswitch.Busy {
			d.held, d.heldLen, d.heldOff, d.heldChain = true, m, off, c
			d.holdUntil.Store(d.now() + int64(HoldLimit))
			d.holding.Store(true)
			d.txHeld.Add(1)
			break
		}
		d.count(v)
		tx.Done(c, 0)
	}
	if n == QueueSize {
		d.txWake.Store(true) // more may wait: come back at the next exit
	}
	if tx.NeedInterrupt() {
		env.Interrupt(txq)
	}
}

// resend transmits the held frame again and reports whether it is gone
// (sent, or dropped after HoldLimit); false: still held.
func (d *Device) resend(tx *virtio.Queue) bool {
	if d.now() >= d.holdUntil.Load() {
		d.port.Abandon()
		d.txDropped.Add(1)
	} else {
		v := d.port.Transmit(d.txbuf[:d.heldLen], d.heldOff)
		if v == netswitch.Busy {
			return false
		}
		d.count(v)
	}
	d.held = false
	d.holding.Store(false)
	tx.Done(d.heldChain, 0)
	return true
}

// txOffload reads the driver's header of an n-byte frame: its checksum
// and segmentation requests. ok is false for a header the device cannot
// honour: a GSO type the driver did not negotiate (or ECN, not offered),
// a frame over MaxFrame without GSO, checksum offsets outside the frame,
// GSO without a checksum request or with a zero segment size.
func (d *Device) txOffload(hdr [HeaderSize]byte, n int) (off netswitch.Offload, ok bool) {
	if hdr[0]&hdrFNeedsCsum != 0 {
		off.NeedsCsum = true
		off.CsumStart = binary.LittleEndian.Uint16(hdr[hdrCsumStart:])
		off.CsumOffset = binary.LittleEndian.Uint16(hdr[hdrCsumOffset:])
	}
	switch hdr[1] {
	case netswitch.GSONone:
		if n > MaxFrame {
			return off, false
		}
	case netswitch.GSOTCPv4:
		if !d.hostTSO4 {
			return off, false
		}
	case netswitch.GSOTCPv6:
		if !d.hostTSO6 {
			return off, false
		}
	default:
		return off, false
	}
	if hdr[1] != netswitch.GSONone {
		off.GSO = hdr[1]
		off.HdrLen = binary.LittleEndian.Uint16(hdr[hdrHdrLen:])
		off.GSOSize = binary.LittleEndian.Uint16(hdr[hdrGSOSize:])
	}
	return off, off.Valid(n)
}

// count counts a transmitted frame by the switch's verdict.
func (d *Device) count(v netswitch.Verdict) {
	if v == netswitch.Accepted {
		d.txFrames.Add(1)
	} else {
		d.txDropped.Add(1)
	}
}

// deliver is the switch's hand-off of a frame for this interface; it runs
// on the sender's goroutine and only queues the frame: as it is, with the
// sender's offload for a guest that accepts it, or with its checksum
// completed or cut into segments (gso.go) for one that does not. A full
// backlog answers Busy (the switch holds or drops the frame; receive calls
// Ready once there is room).
func (d *Device) deliver(frame []byte, off netswitch.Offload) netswitch.Verdict {
	if len(frame) > MaxGSOFrame || !off.Valid(len(frame)) {
		return netswitch.Dropped // counted by the port
	}
	d.mu.Lock()
	if d.env == nil {
		d.mu.Unlock()
		return netswitch.Dropped
	}
	v := netswitch.Accepted
	switch {
	case off.GSO == netswitch.GSONone:
		if len(frame) > MaxFrame {
			v = netswitch.Dropped
			break
		}
		at, ok := d.reserve(len(frame))
		if !ok {
			v = netswitch.Busy
			break
		}
		b := d.buf[at : at+len(frame)]
		copy(b, frame)
		if off.NeedsCsum && !d.guestCsum.Load() {
			off.Complete(b)
			off = netswitch.Offload{}
		}
		d.push(at, len(frame), off)
	case off.GSO == netswitch.GSOTCPv4 && d.guestTSO4.Load() || off.GSO == netswitch.GSOTCPv6 && d.guestTSO6.Load():
		at, ok := d.reserve(len(frame))
		if !ok {
			v = netswitch.Busy
			break
		}
		copy(d.buf[at:at+len(frame)], frame)
		d.push(at, len(frame), off)
	default:
		v = d.segment(frame, off)
	}
	if v == netswitch.Busy {
		d.full.Store(true)
	}
	if v != netswitch.Accepted {
		d.mu.Unlock()
		return v
	}
	d.waiting.Store(true)
	d.mu.Unlock()
	if d.wake != nil {
		d.wake()
	}
	return netswitch.Accepted
}

// segment queues the segments of GSO frame, all or none. Caller holds
// mu.
func (d *Device) segment(frame []byte, off netswitch.Offload) netswitch.Verdict {
	g, ok := parseGSO(frame, off)
	mss := int(off.GSOSize)
	if !ok {
		return netswitch.Dropped
	}
	nseg := g.segments(len(frame), mss)
	if nseg > Backlog {
		return netswitch.Dropped // a segment size no sender uses
	}
	n, wr := d.n, d.wr
	for i := range nseg {
		l := g.segLen(len(frame), mss, i)
		at, ok := d.reserve(l)
		if !ok {
			d.n, d.wr = n, wr
			return netswitch.Busy
		}
		g.segment(d.buf[at:at+l], frame, mss, i, nseg)
		d.push(at, l, netswitch.Offload{})
	}
	return netswitch.Accepted
}

// reserve finds room for an l-byte frame in buf. Caller holds mu.
func (d *Device) reserve(l int) (int, bool) {
	if d.n == Backlog || l > len(d.buf) {
		return 0, false
	}
	if d.n == 0 {
		d.wr = 0
		return 0, true
	}
	rd := d.slots[d.head].at
	switch {
	case d.wr > rd: // used: [rd, wr); free: [wr, end) and [0, rd)
		if l <= len(d.buf)-d.wr {
			return d.wr, true
		}
		if l <= rd {
			return 0, true
		}
	case d.wr < rd: // used: [rd, end) and [0, wr); free: [wr, rd)
		if l <= rd-d.wr {
			return d.wr, true
		}
	}
	return 0, false // wr == rd: full
}

// push appends the frame reserve placed at at. Caller holds mu.
func (d *Device) push(at, l int, off netswitch.Offload) {
	d.slots[(d.head+d.n)%Backlog] = slot{at: at, n: l, off: off}
	d.n++
	d.wr = at + l
}

// rxHeader is the virtio_net_hdr for a frame the guest is left off to
// finish.
func rxHeader(off netswitch.Offload) [HeaderSize]byte {
	var hdr [HeaderSize]byte
	if off.NeedsCsum {
		hdr[0] = hdrFNeedsCsum
		binary.LittleEndian.PutUint16(hdr[hdrCsumStart:], off.CsumStart)
		binary.LittleEndian.PutUint16(hdr[hdrCsumOffset:], off.CsumOffset)
	}
	if off.GSO != netswitch.GSONone {
		hdr[1] = off.GSO
		binary.LittleEndian.PutUint16(hdr[hdrHdrLen:], off.HdrLen)
		binary.LittleEndian.PutUint16(hdr[hdrGSOSize:], off.GSOSize)
	}
	binary.LittleEndian.PutUint16(hdr[hdrNumBuffers:], 1)
	return hdr
}

// receive moves backlog frames into the guest's receive buffers, one
// frame per buffer, until either runs out. It runs under the device lock
// State holds for Notify.
func (d *Device) receive() {
	d.mu.Lock()
	env := d.env
	d.mu.Unlock()
	if env == nil {
		return
	}
	rx := env.Queue(rxq)
	for {
		d.mu.Lock()
		if d.n == 0 {
			d.waiting.Store(false)
			d.mu.Unlock()
			break
		}
		d.mu.Unlock()
		c, ok, err := rx.Next()
		if err != nil || !ok {
			break // no buffer: the frames wait for the next kick
		}
		d.mu.Lock()
		sl := d.slots[d.head]
		frame := d.buf[sl.at : sl.at+sl.n]
		d.head, d.n = (d.head+1)%Backlog, d.n-1
		if c.ReadLen() != 0 || c.WriteLen() < uint32(HeaderSize+len(frame)) {
			// A buffer the guest made too small (or readable): the
			// frame is dropped and the buffer returned empty.
			d.mu.Unlock()
			d.rxDropped.Add(1)
			rx.Done(c, 0)
			continue
		}
		hdr := rxHeader(sl.off)
		c.Write(hdr[:])
		c.Write(frame)
		d.mu.Unlock()
		rx.Done(c, uint32(HeaderSize+len(frame)))
		d.rxFrames.Add(1)
	}
	if rx.NeedInterrupt() {
		env.Interrupt(rxq)
	}
	d.mu.Lock()
	room := d.n < Backlog
	d.mu.Unlock()
	if room && d.full.Swap(false) {
		d.port.Ready()
	}
}
