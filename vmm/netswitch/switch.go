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
}

// Port is one attachment to a switch.
type Port struct {
	sw      *Switch
	mac     MAC
	locked  bool
	deliver func(frame []byte) bool
	gone    atomic.Bool

	sent, received, flooded, dropped, rxDropped atomic.Uint64
}

// Attach adds a port owning address mac; deliver receives the frames for
// it and reports whether it accepted the frame. A locked port may only
// send frames from mac. It fails (nil) when the switch has MaxPorts ports
// or mac is a group address or already owned by another port.
func (s *Switch) Attach(mac MAC, locked bool, deliver func(frame []byte) bool) *Port {
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
	p := &Port{sw: s, mac: mac, locked: locked, deliver: deliver}
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
}

// MAC is the port's address.
func (p *Port) MAC() MAC { return p.mac }

// Stats returns the port's counters.
func (p *Port) Stats() Stats {
	return Stats{Sent: p.sent.Load(), Received: p.received.Load(), Flooded: p.flooded.Load(),
		Dropped: p.dropped.Load(), RxDropped: p.rxDropped.Load()}
}

// Send forwards one Ethernet frame (destination, source, ...) the port's
// owner transmitted and reports whether the switch accepted it (not
// whether anyone received it). Allocation-free.
func (p *Port) Send(frame []byte) bool {
	if p.gone.Load() || len(frame) < MinFrame || len(frame) > MaxFrame {
		p.dropped.Add(1)
		return false
	}
	var dst, src MAC
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	if src.Group() || p.locked && src != p.mac {
		p.dropped.Add(1)
		return false
	}
	s := p.sw
	s.mu.RLock()
	if owner, ok := s.table[src]; !ok || owner != p {
		s.mu.RUnlock()
		s.learn(src, p)
		s.mu.RLock()
	}
	p.sent.Add(1)
	if !dst.Group() {
		if q, ok := s.table[dst]; ok {
			if q != p {
				q.take(frame)
			}
			s.mu.RUnlock()
			return true
		}
	}
	p.flooded.Add(1)
	for _, q := range s.ports {
		if q != p {
			q.take(frame)
		}
	}
	s.mu.RUnlock()
	return true
}

// take hands a frame to the port's owner.
func (q *Port) take(frame []byte) {
	if q.gone.Load() {
		return
	}
	if q.deliver(frame) {
		q.received.Add(1)
	} else {
		q.rxDropped.Add(1)
	}
}

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
