package main

// juice's own TCP/IP stack on a virtual switch: gVisor's netstack
// (gvisor.dev/gvisor/pkg/tcpip: IPv4 with its echo replies, ARP, TCP) with one
// network interface, which is a port of a bundle network's switch
// (vmm/netswitch) with juice's own MAC. The network console
// (netconsole.go) listens on it.
//
// Switch to stack: the switch hands the port a frame on the sending
// vCPU's exit path (or an uplink's poller): deliver copies it, with no
// allocation and bounded work, into one of switchRxSlots fixed buffers,
// finishing what a guest's virtio-net left to the receiver on the way (a
// partial checksum is completed, a TCP segmentation-offload packet is cut
// into MTU-sized segments, as the uplink does), and wakes the receive
// goroutine, which gives the frames to netstack. Frames for other
// addresses are ignored (a NIC's address filter); when every slot is full
// the frame is dropped (TCP sends it again): the console never holds a
// guest's transmit queue.
//
// Stack to switch: netstack queues outgoing frames on a channel
// endpoint (link/channel under link/ethernet, which adds the Ethernet
// header); the transmit goroutine copies each into one buffer, pads it to
// Ethernet's 60-byte minimum and transmits it on the port. A busy
// receiver (a guest's full receive ring) holds it for at most
// switchHoldLimit, waking on the switch's Wake.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"juice/vmm/netswitch"
	vnet "juice/vmm/virtio/net"
)

const (
	// switchMTU is the stack's IP MTU; frames are at most
	// switchFrameMax bytes (an Ethernet header and a VLAN tag more).
	switchMTU      = 1500
	switchFrameMax = switchMTU + 18
	// switchRxSlots is how many frames from the switch wait for the
	// stack at most.
	switchRxSlots = 64
	// switchTxQueue is how many frames the stack may queue for the
	// switch.
	switchTxQueue = 256
	// switchHoldLimit bounds how long a frame waits for a busy
	// receiver.
	switchHoldLimit = vnet.HoldLimit
	// switchNIC is the stack's one NIC.
	switchNIC tcpip.NICID = 1
	// switchTCPBuffer bounds a TCP connection's send and receive
	// buffers (bytes): the console's lines are short.
	switchTCPBuffer = 64 << 10
)

// switchLink is a netstack interface on a switch port.
type switchLink struct {
	sw   *netswitch.Switch
	port *netswitch.Port
	mac  netswitch.MAC
	ep   *channel.Endpoint
	st   *stack.Stack

	// Frames from the switch: slots[(head+i) % switchRxSlots] for i <
	// count hold them, lens their lengths. Under rxMu; deliver fills,
	// the receive goroutine empties (a slot stays counted while it is
	// read, so deliver never overwrites it).
	rxMu  sync.Mutex
	slots [switchRxSlots][switchFrameMax]byte
	lens  [switchRxSlots]int
	head  int
	count int
	rx    chan struct{} // frames waiting (capacity 1)
	wake  chan struct{} // the port's Wake (capacity 1)

	// Counters: frames from the switch given to the stack, dropped
	// (slots full, too long, an offload that could not be finished),
	// frames sent to the switch, dropped (held too long, refused).
	rxFrames, rxDropped, txFrames, txDropped atomic.Uint64
}

// newSwitchLink attaches a netstack with address addr (and default route
// via gw, if valid) to sw as a port locked to mac, and starts its
// goroutines.
func newSwitchLink(sw *netswitch.Switch, mac netswitch.MAC, addr netip.Prefix, gw netip.Addr) (*switchLink, error) {
	l := &switchLink{sw: sw, mac: mac, rx: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	l.st = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	fail := func(what string, err tcpip.Error) (*switchLink, error) {
		l.st.Close()
		return nil, fmt.Errorf("%s: %s", what, err)
	}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: switchTCPBuffer, Max: switchTCPBuffer}
	if err := l.st.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		return fail("TCP receive buffer", err)
	}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: switchTCPBuffer, Max: switchTCPBuffer}
	if err := l.st.SetTransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		return fail("TCP send buffer", err)
	}
	l.ep = channel.New(switchTxQueue, switchMTU+header.EthernetMinimumSize, tcpip.LinkAddress(mac[:]))
	if err := l.st.CreateNIC(switchNIC, ethernet.New(l.ep)); err != nil {
		return fail("network interface", err)
	}
	a := tcpip.AddrFrom4(addr.Addr().As4())
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: a, PrefixLen: addr.Bits()}}
	if err := l.st.AddProtocolAddress(switchNIC, pa, stack.AddressProperties{}); err != nil {
		return fail("address "+addr.String(), err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: switchNIC}}
	if gw.IsValid() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: switchNIC})
	}
	l.st.SetRouteTable(routes)
	l.port = sw.AttachPort(netswitch.PortConfig{MAC: mac, Locked: true, Deliver: l.deliver, Wake: l.woken})
	if l.port == nil {
		l.st.Close()
		return nil, errors.New("the switch refused the port (its MAC is taken, or the network has too many ports)")
	}
	go l.receive()
	go l.transmit()
	return l, nil
}

// deliver is the port's Deliver: on the sender's goroutine (a vCPU's
// exit path), allocation-free, bounded (at most switchRxSlots copies).
func (l *switchLink) deliver(frame []byte, off netswitch.Offload) netswitch.Verdict {
	if len(frame) < netswitch.MinFrame {
		return netswitch.Dropped
	}
	var dst netswitch.MAC
	copy(dst[:], frame[:6])
	if dst != l.mac && dst != netswitch.Broadcast {
		return netswitch.Accepted // not ours: a NIC's filter drops it quietly
	}
	l.rxMu.Lock()
	v := l.store(frame, off)
	l.rxMu.Unlock()
	if v == netswitch.Accepted {
		select {
		case l.rx <- struct{}{}:
		default:
		}
	} else {
		l.rxDropped.Add(1)
	}
	return v
}

// store copies frame into free slots (rxMu held): whole, with its
// checksum completed, or cut into segments. All of a segmented packet or
// none of it.
func (l *switchLink) store(frame []byte, off netswitch.Offload) netswitch.Verdict {
	free := switchRxSlots - l.count
	if off.GSO != netswitch.GSONone {
		n := vnet.Segments(frame, off)
		if n == 0 || n > free {
			return netswitch.Dropped
		}
		for i := range n {
			at := (l.head + l.count + i) % switchRxSlots
			m := vnet.Segment(l.slots[at][:], frame, off, i)
			if m == 0 {
				return netswitch.Dropped // a segment larger than a slot
			}
			l.lens[at] = m
		}
		l.count += n
		return netswitch.Accepted
	}
	if free == 0 || len(frame) > switchFrameMax {
		return netswitch.Dropped
	}
	at := (l.head + l.count) % switchRxSlots
	b := l.slots[at][:len(frame)]
	copy(b, frame)
	off.Complete(b)
	l.lens[at] = len(frame)
	l.count++
	return netswitch.Accepted
}

// receive gives the stored frames to the stack.
func (l *switchLink) receive() {
	for range l.rx {
		for {
			l.rxMu.Lock()
			if l.count == 0 {
				l.rxMu.Unlock()
				break
			}
			at := l.head
			l.rxMu.Unlock()
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
				Payload: buffer.MakeWithData(l.slots[at][:l.lens[at]]), // a copy
			})
			l.rxMu.Lock()
			l.head = (l.head + 1) % switchRxSlots
			l.count--
			l.rxMu.Unlock()
			l.rxFrames.Add(1)
			l.ep.InjectInbound(0, pkt) // link/ethernet reads the type
			pkt.DecRef()
		}
	}
}

// woken is the port's Wake: non-blocking.
func (l *switchLink) woken() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// transmit sends the stack's frames on the switch.
func (l *switchLink) transmit() {
	buf := make([]byte, switchFrameMax)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		pkt := l.ep.ReadContext(context.Background())
		if pkt == nil {
			return // the endpoint was closed
		}
		n := 0
		for _, s := range pkt.AsSlices() {
			if n+len(s) > len(buf) {
				n = -1
				break
			}
			n += copy(buf[n:], s)
		}
		pkt.DecRef()
		if n < 0 {
			l.txDropped.Add(1)
			continue
		}
		for n < header.EthernetMinimumSize+46 { // Ethernet's minimum frame, without its FCS
			buf[n] = 0
			n++
		}
		l.send(buf[:n], timer)
	}
}

// send transmits one frame, holding it while its receiver is busy (at
// most switchHoldLimit).
func (l *switchLink) send(frame []byte, timer *time.Timer) {
	v := l.port.Transmit(frame, netswitch.Offload{})
	deadline := time.Now().Add(switchHoldLimit)
	for v == netswitch.Busy {
		if time.Now().After(deadline) {
			l.port.Abandon()
			l.txDropped.Add(1)
			return
		}
		timer.Reset(time.Millisecond)
		select {
		case <-l.wake:
			timer.Stop()
		case <-timer.C:
		}
		v = l.port.Transmit(frame, netswitch.Offload{})
	}
	if v == netswitch.Accepted {
		l.txFrames.Add(1)
	} else {
		l.txDropped.Add(1)
	}
}

// stats describes the link's counters.
func (l *switchLink) stats() string {
	return fmt.Sprintf("frames received %d (%d dropped), sent %d (%d dropped)",
		l.rxFrames.Load(), l.rxDropped.Load(), l.txFrames.Load(), l.txDropped.Load())
}
