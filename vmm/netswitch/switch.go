// Package netswitch is juice's virtual Ethernet switch: the VMs' network
// interfaces (virtio-net devices) are its ports, and a VM reaches exactly
// the VMs attached to the same switch (one per network named in the
// bundle's manifest).
//
// Forwarding is a learning bridge's: the switch learns which port each
// source address lives behind, sends a unicast frame to the port that
// owns its destination, and floods broadcast, multicast and unknown
// destinations to every other port. Never back to the sender. By default
// a port is locked to its own MAC address: a frame whose source is any
// other address is dropped and counted, so that one guest cannot pose as
// another or poison the table. The table is bounded (MaxEntries); frames
// are bounded (MinFrame..MaxFrame bytes).
//
// Send runs on the sending vCPU's exit path: it allocates nothing, takes
// the switch's read lock (the table's write lock only to learn a new
// address), and calls the receivers' Deliver functions under the read
// lock. Deliver must copy the frame (the sender's buffer is reused) and
// must not call back into the switch.
//
// Flow control. A port attached with AttachPort may answer Busy to a
// frame (its receive backlog is full) and call Ready once it has room
// again. A sender that uses Transmit instead of Send then gets Busy for a
// unicast frame to that port: the frame was not taken, and the sender
// holds it (in its transmit queue) until the switch calls its Wake
// function, when it transmits it again. That is the backpressure of a
// virtual link: a fast sender is slowed to its receiver's pace instead of
// losing frames. A sender must not wait forever on a receiver that stopped
// taking frames (a hung or hostile guest): it gives up with Abandon, and
// the switch then drops frames for that receiver, as a real switch does,
// until the receiver calls Ready again. Broadcast and flooded frames never
// wait.
package netswitch

import (
	"sync"
	"sync/atomic"
)

// Frame limits: an Ethernet header, and the largest frame a virtio-net
// device without TSO offers (a 65535-byte IP packet plus the header).
const (
	MinFrame   = 14
	MaxFrame   = 65535 + 14
	MaxEntries = 4096
	MaxPorts   = 256
)

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Group reports whether m is a broadcast or multicast address.
func (m MAC) Group() bool { return m[0]&1 != 0 }

// Switch is one virtual network.
type Switch struct {
	// Name is the network's name (from the manifest).
	Name string

	mu    sync.RWMutex
	ports []*Port
	table map[MAC]*Port
}

// New returns an empty switch.
func New(name string) *Switch {
	return &Switch{Name: name, table: make(map[MAC]*Port)}
}

// Stats counts a port's traffic.
type Stats struct {
	Sent, Received, Flooded uint64
	// Dropped counts frames the port sent that the switch refused: too
	// short or too long, a group or foreign source address on a locked
	// port.
	Dropped uint64
	// RxDropped counts frames for this port its Deliver refused (its
	// receive queue was full or not set up).
	RxDropped uint64
	// Held counts the times the port's Transmit answered Busy.
	Held uint64
}

// Verdict is a receiver's answer to a frame (PortConfig.Deliver) and the
// switch's answer to a sender (Transmit).
type Verdict uint8

const (
	// Accepted: Deliver took the frame; Transmit forwarded it (to its
	// owner or, flooded, to every other port; a receiver may still have
	// refused it, which its RxDropped counts).
	Accepted Verdict = iota
	// Dropped: Deliver refused the frame for good; Transmit refused a
	// malformed or spoofed frame (the port's Dropped counts it).
	Dropped
	// Busy: Deliver has no room now and will call Ready when it has;
	// Transmit did not take the frame because its destination was busy:
	// send it again after the port's Wake function runs.
	Busy
)

// Offload is what a sender left for the receiving side to finish in a
// frame (virtio-net's offloads). With NeedsCsum, the 16-bit checksum field
// at CsumStart+CsumOffset holds only the pseudo-header's sum, and the
// ones'-complement sum of the frame from CsumStart to its end completes
// it. With a GSO type, the frame is a TCP segment larger than the MTU
// that the receiving side cuts into segments of GSOSize payload bytes
// (TCP segmentation offload; NeedsCsum is then set too, for the TCP
// checksum). The switch carries it with the frame unchanged; each
// receiver either passes it on to a guest that accepts it or finishes the
// work in its own copy. A sender checks it with Valid before sending.
type Offload struct {
	NeedsCsum             bool
	CsumStart, CsumOffset uint16
	// GSO is GSONone, GSOTCPv4 or GSOTCPv6.
	GSO uint8
	// GSOSize is the payload bytes per segment; HdrLen the sender's
	// length of the headers (a hint, at most the frame's length).
	GSOSize, HdrLen uint16
}

// GSO types (virtio-net's gso_type values).
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOTCPv6 = 4
)

// Valid reports whether o fits a frame of n bytes: checksum offsets
// inside it, and for a GSO frame a known type with a checksum request
// and a non-zero segment size.
func (o Offload) Valid(n int) bool {
	if o.NeedsCsum && (int(o.CsumStart)+int(o.CsumOffset)+2 > n || o.CsumStart < MinFrame) {
		return false
	}
	switch o.GSO {
	case GSONone:
		return true
	case GSOTCPv4, GSOTCPv6:
		return o.NeedsCsum && o.GSOSize != 0 && int(o.HdrLen) <= n
	}
	return false
}

// Complete finishes frame's checksum as o asks (nothing without
// NeedsCsum, or for a GSO frame, which must be segmented instead). A sum
// of zero is stored as 0xffff (as Linux does: zero means "no checksum" to
// UDP).
func (o Offload) Complete(frame []byte) {
	if !o.NeedsCsum || o.GSO != GSONone || !o.Valid(len(frame)) {
		return
	}
	at := int(o.CsumStart) + int(o.CsumOffset)
	sum := Checksum(frame[o.CsumStart:])
	if sum == 0 {
		sum = 0xffff
	}
	frame[at], frame[at+1] = byte(sum>>8), byte(sum)
}

// Checksum is the Internet checksum (RFC 1071) of b: the complement of
// the ones'-complement sum of its big-endian 16-bit words (an odd last
// byte padded with zero).
func Checksum(b []byte) uint16 {
	var sum uint64
	for len(b) >= 8 {
		sum += (uint64(b[0])<<8 | uint64(b[1])) + (uint64(b[2])<<8 | uint64(b[3])) +
			(uint64(b[4])<<8 | uint64(b[5])) + (uint64(b[6])<<8 | uint64(b[7]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// PortConfig describes a port for AttachPort.
type PortConfig struct {
	// MAC is the port's own address.
	MAC MAC
	// Locked ports may only send frames from MAC.
	Locked bool
	// Deliver receives a frame for the port with the sender's offload
	// (copying it; the buffer is the sender's and must not be changed)
	// and answers Accepted, Dropped, or Busy (then the port must call
	// Ready when it has room again). It runs on the sender's goroutine and
	// must not call into the switch.
	Deliver func(frame []byte, off Offload) Verdict
	// Wake, if set, is called when a port this port's Transmit found
	// Busy has room again (or is gone). It runs on another port's
	// goroutine, must be quick and must not call into the switch.
	Wake func()
}

// Port is one attachment to a switch.
type Port struct {
	sw      *Switch
	mac     MAC
	locked  bool
	deliver func(frame []byte, off Offload) Verdict
	wake    func()
	gone    atomic.Bool

	// blockedOn is the port whose Busy this port's sender waits on.
	blockedOn atomic.Pointer[Port]
	// waiters: some port may be blocked on this one (Ready wakes them).
	waiters atomic.Bool
	// stalled: a sender gave up waiting on this port (Abandon); frames
	// for it are dropped instead of held until it calls Ready.
	stalled atomic.Bool

	sent, received, flooded, dropped, rxDropped, held atomic.Uint64
}

// Attach adds a port owning address mac; deliver receives the frames for
// it and reports whether it accepted the frame (frames with an Offload
// are refused: only AttachPort's receivers take them). A locked port may
// only send frames from mac. It fails (nil) when the switch has MaxPorts
// ports or mac is a group address or already owned by another port.
func (s *Switch) Attach(mac MAC, locked bool, deliver func(frame []byte) bool) *Port {
	if deliver == nil {
		return nil
	}
	return s.AttachPort(PortConfig{MAC: mac, Locked: locked, Deliver: func(frame []byte, off Offload) Verdict {
		if !off.NeedsCsum && deliver(frame) {
			return Accepted
		}
		return Dropped
	}})
}

// AttachPort is Attach with flow control (see the package comment): c's
// Deliver may answer Busy, and c's Wake resumes a sender held by Busy.
func (s *Switch) AttachPort(c PortConfig) *Port {
	mac, locked, deliver := c.MAC, c.Locked, c.Deliver
	if mac.Group() || deliver == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ports) >= MaxPorts {
		return nil
	}
	for _, p := range s.ports {
		if p.mac == mac {
			return nil
		}
	}
	p := &Port{sw: s, mac: mac, locked: locked, deliver: deliver, wake: c.Wake}
	s.ports = append(s.ports, p)
	s.table[mac] = p
	return p
}

// Detach removes the port: its address is forgotten and it receives
// nothing more. Detach is idempotent.
func (p *Port) Detach() {
	if p.gone.Swap(true) {
		return
	}
	s := p.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.ports {
		if q == p {
			s.ports = append(s.ports[:i], s.ports[i+1:]...)
			break
		}
	}
	for m, q := range s.table {
		if q == p {
			delete(s.table, m)
		}
	}
	// Senders held by this port send again (their frames now flood).
	s.wakeBlocked(p)
}

// MAC is the port's address.
func (p *Port) MAC() MAC { return p.mac }

// Stats returns the port's counters.
func (p *Port) Stats() Stats {
	return Stats{Sent: p.sent.Load(), Received: p.received.Load(), Flooded: p.flooded.Load(),
		Dropped: p.dropped.Load(), RxDropped: p.rxDropped.Load(), Held: p.held.Load()}
}

// Send forwards one Ethernet frame (destination, source, ...) the port's
// owner transmitted and reports whether the switch accepted it (not
// whether anyone received it). It never holds the sender: a busy
// receiver drops the frame. Allocation-free.
func (p *Port) Send(frame []byte) bool {
	return p.send(frame, Offload{}, false) == Accepted
}

// Transmit is Send with an offload for the receivers and flow control: a
// unicast frame whose owner is busy is not taken (Busy), and the port's
// Wake function runs when that owner has room again; the caller keeps
// the frame and calls Transmit again then (or Abandon). An offload that
// does not fit the frame drops it. Allocation-free.
func (p *Port) Transmit(frame []byte, off Offload) Verdict {
	return p.send(frame, off, true)
}

func (p *Port) send(frame []byte, off Offload, hold bool) Verdict {
	if p.gone.Load() || len(frame) < MinFrame || len(frame) > MaxFrame || !off.Valid(len(frame)) {
		p.dropped.Add(1)
		return Dropped
	}
	var dst, src MAC
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	if src.Group() || p.locked && src != p.mac {
		p.dropped.Add(1)
		return Dropped
	}
	s := p.sw
	s.mu.RLock()
	if owner, ok := s.table[src]; !ok || owner != p {
		s.mu.RUnlock()
		s.learn(src, p)
		s.mu.RLock()
	}
	if !dst.Group() {
		if q, ok := s.table[dst]; ok {
			v := Accepted
			if q != p {
				v = p.unicast(q, frame, off, hold)
			}
			s.mu.RUnlock()
			if v != Busy {
				p.sent.Add(1)
			}
			return v
		}
	}
	p.sent.Add(1)
	p.flooded.Add(1)
	for _, q := range s.ports {
		if q != p {
			q.take(frame, off)
		}
	}
	s.mu.RUnlock()
	return Accepted
}

// unicast hands frame to q. With hold, a busy q that has not stalled
// answers Busy and p waits on q (blockedOn); q is asked once more after
// that is recorded, so that a Ready that q ran meanwhile is not missed.
// Caller holds the switch's read lock.
func (p *Port) unicast(q *Port, frame []byte, off Offload, hold bool) Verdict {
	if q.gone.Load() {
		return Accepted
	}
	v := q.deliver(frame, off)
	if v == Busy && hold && !q.stalled.Load() {
		p.blockedOn.Store(q)
		q.waiters.Store(true)
		if v = q.deliver(frame, off); v == Busy {
			p.held.Add(1)
			return Busy
		}
		p.blockedOn.CompareAndSwap(q, nil)
	}
	if v == Accepted {
		q.received.Add(1)
	} else {
		q.rxDropped.Add(1)
	}
	return Accepted
}

// take hands a flooded frame to the port's owner (never held).
func (q *Port) take(frame []byte, off Offload) {
	if q.gone.Load() {
		return
	}
	if q.deliver(frame, off) == Accepted {
		q.received.Add(1)
	} else {
		q.rxDropped.Add(1)
	}
}

// Ready tells the switch that the port, which answered Busy, has room
// again: senders held by it are woken and it is no longer stalled. Cheap
// when nobody waits. Allocation-free; it must not be called from Deliver
// or Wake.
func (q *Port) Ready() {
	q.stalled.Store(false)
	if !q.waiters.Load() {
		return
	}
	s := q.sw
	s.mu.RLock()
	s.wakeBlocked(q)
	s.mu.RUnlock()
}

// wakeBlocked wakes the ports blocked on q. Caller holds s.mu (either
// way).
func (s *Switch) wakeBlocked(q *Port) {
	q.waiters.Store(false)
	for _, p := range s.ports {
		if p.blockedOn.CompareAndSwap(q, nil) && p.wake != nil {
			p.wake()
		}
	}
}

// Abandon tells the switch that the port's sender gave up on the frame
// it held for a busy port (it waited too long): that port is stalled, and
// frames for it are dropped instead of held until it calls Ready.
func (p *Port) Abandon() {
	if q := p.blockedOn.Swap(nil); q != nil {
		q.stalled.Store(true)
	}
}

// Cancel forgets that the port's sender waits (its device was reset and
// dropped the frame it held); nothing is stalled.
func (p *Port) Cancel() { p.blockedOn.Store(nil) }

// learn records that src lives behind p. A port's own address stays its
// own (a locked port never sends another; an unlocked port cannot steal
// an address another port owns by attachment). When the table is full,
// learned (not attached) entries are forgotten first.
func (s *Switch) learn(src MAC, p *Port) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner, ok := s.table[src]; ok && owner.mac == src {
		return // an attached port's own address
	}
	if len(s.table) >= MaxEntries {
		for m, q := range s.table {
			if q.mac != m {
				delete(s.table, m)
				if len(s.table) < MaxEntries {
					break
				}
			}
		}
		if len(s.table) >= MaxEntries {
			return
		}
	}
	s.table[src] = p
}
