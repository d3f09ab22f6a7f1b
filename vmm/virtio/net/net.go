// Package net is the virtio network device (virtio 1.2 section 5.1): one
// receive and one transmit queue, a fixed MAC address, link always up, no
// offloads (the guest computes its own checksums and sends frames no
// larger than its MTU). Its other end is a port of a juice/vmm/netswitch
// switch: transmitted frames go to the switch, frames the switch delivers
// fill the guest's receive buffers.
//
// The transmit path runs on the VM-exit path (Notify): it allocates
// nothing and handles at most a queue's worth of frames per kick. The
// switch delivers on the sender's goroutine (another VM's vCPU, inside
// its own device's Notify): the frame is only copied into a bounded
// backlog and the receiving VM is woken; its own vCPU moves the backlog
// into the guest's receive buffers (Service, from the platform's per-exit
// poll, and Notify of the receive queue), so no device lock is ever held
// across two VMs. A full backlog drops the frame (counted), as a NIC with
// no free receive descriptors does.
package net

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"juice/vmm/netswitch"
	"juice/vmm/virtio"
)

// Feature bits offered.
const (
	FeatureMTU    = 1 << 3
	FeatureMAC    = 1 << 5
	FeatureStatus = 1 << 16
)

// Limits.
const (
	QueueSize = 256
	// HeaderSize is struct virtio_net_hdr_v1 (VERSION_1: always with
	// num_buffers).
	HeaderSize = 12
	// MTU is the interface MTU the device reports; a frame is at most
	// MTU + 14 (Ethernet header) + 4 (a VLAN tag).
	MTU      = 1500
	MaxFrame = MTU + 18
	// configSize: mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
	configSize = 12
	rxq, txq   = 0, 1
	statusUp   = 1
	// Backlog is how many received frames wait for the guest's buffers.
	Backlog = 64
)

// Stats counts the device's traffic.
type Stats struct {
	TxFrames, RxFrames, TxDropped, RxDropped uint64
}

// Device is one virtio-net interface.
type Device struct {
	mac  netswitch.MAC
	port *netswitch.Port

	mu      sync.Mutex // guards env and the backlog
	env     virtio.Env
	wake    func()
	backlog [Backlog][MaxFrame]byte
	blen    [Backlog]uint16
	head, n int
	waiting atomic.Bool    // the backlog is not empty
	txbuf   [MaxFrame]byte // the frame being sent (Notify is serialized)

	txFrames, rxFrames, txDropped, rxDropped atomic.Uint64
}

var _ virtio.Device = (*Device)(nil)

// New returns an interface with address mac attached to sw (a locked
// port: it may only send from mac); wake (may be nil) is called when a
// frame arrives, to get the VM's vCPU to call Service. It fails when the
// switch refuses the port (the address is taken, or the switch is full).
func New(sw *netswitch.Switch, mac netswitch.MAC, wake func()) (*Device, error) {
	d := &Device{mac: mac, wake: wake}
	d.port = sw.Attach(mac, true, d.deliver)
	if d.port == nil {
		return nil, fmt.Errorf("virtio-net: network %q refused MAC %x (taken, or the network is full)", sw.Name, mac)
	}
	return d, nil
}

// Close detaches the interface from its switch.
func (d *Device) Close() { d.port.Detach() }

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	return Stats{TxFrames: d.txFrames.Load(), RxFrames: d.rxFrames.Load(), TxDropped: d.txDropped.Load(), RxDropped: d.rxDropped.Load()}
}

// Type is IDNet.
func (d *Device) Type() uint16 { return virtio.IDNet }

// Features offers the MAC, link status and MTU fields.
func (d *Device) Features() uint64 { return FeatureMAC | FeatureStatus | FeatureMTU }

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
	d.head, d.n = 0, 0
	d.waiting.Store(false)
	d.mu.Unlock()
}

// Waiting reports whether received frames wait in the backlog: the VM's
// vCPU should then kick the receive queue (State.Notify(0)), which calls
// Notify(0) under the device lock. One atomic load.
func (d *Device) Waiting() bool { return d.waiting.Load() }

// Notify handles a kick: the transmit queue sends its frames; the
// receive queue (new buffers, or the VM servicing its backlog) takes
// waiting frames.
func (d *Device) Notify(q int) {
	if q == rxq {
		d.receive()
		return
	}
	if q != txq {
		return
	}
	d.mu.Lock()
	env := d.env
	d.mu.Unlock()
	if env == nil {
		return
	}
	tx := env.Queue(txq)
	frame := d.txbuf[:]
	for {
		c, ok, err := tx.Next()
		if err != nil || !ok {
			break
		}
		if c.WriteLen() != 0 {
			env.Fail(fmt.Sprintf("queue %d, chain head %d: transmit buffer has %d device-writable bytes", txq, c.Head, c.WriteLen()))
			return
		}
		n := c.ReadLen()
		if n < HeaderSize+netswitch.MinFrame || n > HeaderSize+MaxFrame {
			// Not a frame this device can carry: dropped, as a
			// NIC drops a runt or a giant.
			d.txDropped.Add(1)
			tx.Done(c, 0)
			continue
		}
		var hdr [HeaderSize]byte
		c.Read(hdr[:])
		m := c.Read(frame[:n-HeaderSize])
		if d.port.Send(frame[:m]) {
			d.txFrames.Add(1)
		} else {
			d.txDropped.Add(1)
		}
		tx.Done(c, 0)
	}
	if tx.NeedInterrupt() {
		env.Interrupt(txq)
	}
}

// deliver is the switch's hand-off of a frame for this interface; it runs
// on the sender's goroutine and only queues the frame.
func (d *Device) deliver(frame []byte) bool {
	if len(frame) > MaxFrame {
		d.rxDropped.Add(1)
		return false
	}
	d.mu.Lock()
	if d.env == nil || d.n == Backlog {
		d.mu.Unlock()
		d.rxDropped.Add(1)
		return false
	}
	i := (d.head + d.n) % Backlog
	copy(d.backlog[i][:], frame)
	d.blen[i] = uint16(len(frame))
	d.n++
	d.waiting.Store(true)
	d.mu.Unlock()
	if d.wake != nil {
		d.wake()
	}
	return true
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
	var hdr [HeaderSize]byte
	binary.LittleEndian.PutUint16(hdr[10:], 1) // num_buffers
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
		i := d.head
		frame := d.backlog[i][:d.blen[i]]
		if c.ReadLen() != 0 || c.WriteLen() < uint32(HeaderSize+len(frame)) {
			// A buffer the guest made too small (or readable): the
			// frame is dropped and the buffer returned empty.
			d.head, d.n = (d.head+1)%Backlog, d.n-1
			d.mu.Unlock()
			d.rxDropped.Add(1)
			rx.Done(c, 0)
			continue
		}
		c.Write(hdr[:])
		c.Write(frame)
		d.head, d.n = (d.head+1)%Backlog, d.n-1
		d.mu.Unlock()
		rx.Done(c, uint32(HeaderSize+len(frame)))
		d.rxFrames.Add(1)
	}
	if rx.NeedInterrupt() {
		env.Interrupt(rxq)
	}
}
