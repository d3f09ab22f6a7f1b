package virtio

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"juice/drivers/nic"
	"juice/mm/phys"
)

// The virtio network driver (virtio 1.2 section 5.1): one receive and one
// transmit queue, no offloads, polled. It implements juice/drivers/nic's
// Device, the frame device a virtual switch's uplink port is bridged to.
//
// Buffers. Every buffer the device sees is the driver's own DMA memory,
// carved into fixed 2 KiB slots, one per descriptor: the receive queue is
// kept full of device-writable slots (each the 12-byte virtio_net_hdr
// followed by room for a whole frame), and Send copies a frame behind a
// zeroed header into a free transmit slot. Frames are copied both ways,
// so no buffer the device may still write is ever handed to other code.
//
// Polling. juice has no host-interrupt plumbing for drivers yet: the
// queues ask the device not to interrupt, Send reclaims finished transmit
// slots before it takes one, and Recv is polled (by the uplink's
// goroutine). Notifications honour the device's VIRTQ_USED_F_NO_NOTIFY,
// so a device that is busy with a queue (QEMU while it has receive
// buffers) is not kicked for every buffer.
//
// Trust. The used rings are checked by Queue (an id that names no chain
// in flight, an index running ahead, are protocol errors); on top of that
// a receive length larger than the buffer is a protocol error, and a
// frame shorter than an Ethernet header or carrying a GSO type the driver
// did not negotiate is dropped and counted. A protocol error marks the
// device FAILED and every later call returns it.
//
// Concurrency. Send (any goroutine, typically a vCPU's exit path through
// the switch) and Recv (the uplink's poller) have locks of their own and
// may run at the same time; neither blocks on the device nor allocates.

// virtio-net feature bits (virtio 1.2 section 5.1.3), as masks.
const (
	NetFeatureCsum   uint64 = 1 << 0
	NetFeatureMTU    uint64 = 1 << 3
	NetFeatureMAC    uint64 = 1 << 5
	NetFeatureStatus uint64 = 1 << 16
)

// Network device constants.
const (
	// NetHeaderSize is struct virtio_net_hdr_v1: with VIRTIO_F_VERSION_1
	// the header always carries num_buffers.
	NetHeaderSize = 12
	// NetMTU is the interface MTU: MTU isn't negotiated, so the device
	// takes and gives frames of up to 1514 bytes (virtio 1.2 5.1.6.3).
	NetMTU = 1500
	// NetMaxFrame is the longest frame Send takes: the MTU plus the
	// Ethernet header (no FCS).
	NetMaxFrame = NetMTU + 14
	// NetMinFrame is an Ethernet header: shorter frames are refused
	// (Send) or dropped (Recv).
	NetMinFrame = 14
	// DefaultNetQueueSize is each queue's size unless the device's
	// maximum is smaller.
	DefaultNetQueueSize = 256
	// netSlot is one buffer: a header and a frame of up to 2036 bytes
	// (1526 would do for 1514-byte frames; a VLAN tag adds 4).
	netSlot = 2048

	netCfgMAC       = 0 // mac[6]
	netCfgStatus    = 6 // status u16
	netStatusLinkUp = 1
	netRxQ, netTxQ  = 0, 1
	netHdrGSOType   = 1 // byte offset of gso_type in the header
)

// ErrFrameSize: Send was given a frame shorter than an Ethernet header or
// longer than the MTU allows.
var ErrFrameSize = errors.New("virtio-net: frame size outside 14..1514 bytes")

// NetOptions tune a Net; zero values mean the defaults.
type NetOptions struct {
	// Name is the interface's name in messages ("vnet0"); default
	// "vnet".
	Name string
	// QueueSize is each queue's size, a power of two (default
	// DefaultNetQueueSize, lowered to the device's maximum).
	QueueSize uint16
}

// Net is a virtio network device driven as a nic.Device.
type Net struct {
	t      *Transport
	name   string
	mac    [6]byte
	status bool // VIRTIO_NET_F_STATUS: the link state is in the configuration

	cfgMu sync.Mutex // configuration reads and Fail (Transport is not concurrent)

	rxMu   sync.Mutex // guards rx and rxSlot
	rx     *Queue
	rxMem  []byte   // DMA: the receive slots
	rxPA   uint64   // physical address of rxMem
	rxSlot []uint16 // per descriptor head in flight: its slot
	rxBufs [1]Buf

	txMu   sync.Mutex // guards tx, txSlot and txFree
	tx     *Queue
	txMem  []byte
	txPA   uint64
	txSlot []uint16 // per descriptor head in flight: its slot + 1 (0: none)
	txFree []uint16 // free slots (a stack)
	txBufs [1]Buf

	broken atomic.Pointer[error] // sticky: the device broke the protocol

	txFrames, txBytes, txFull atomic.Uint64
	rxFrames, rxBytes, rxDrop atomic.Uint64
}

var _ nic.Device = (*Net)(nil)

// NewNet brings up the virtio network device t: features (MAC and link
// status; no offloads, no mergeable receive buffers), its receive and
// transmit queues (polled: the device is asked not to interrupt), the
// buffers, DRIVER_OK, and the receive queue filled. Without
// VIRTIO_NET_F_MAC the interface gets a locally administered address
// derived from its PCI address.
func NewNet(t *Transport, mem *phys.Mem, dma DMA, o NetOptions) (*Net, error) {
	if t.Type != TypeNet {
		return nil, fmt.Errorf("virtio %v: device type %d, not a network device", t.Addr, t.Type)
	}
	f, err := t.Init(NetFeatureMAC | NetFeatureStatus)
	if err != nil {
		return nil, err
	}
	n := &Net{t: t, name: o.Name, status: f&NetFeatureStatus != 0}
	if n.name == "" {
		n.name = "vnet"
	}
	fail := func(err error) (*Net, error) {
		t.Fail()
		return nil, fmt.Errorf("virtio-net %v: %w", t.Addr, err)
	}
	if f&NetFeatureMAC != 0 {
		for i := range n.mac {
			if n.mac[i], err = t.Config8(netCfgMAC + uint32(i)); err != nil {
				return fail(err)
			}
		}
		if n.mac[0]&1 != 0 || n.mac == [6]byte{} {
			return fail(fmt.Errorf("%w: the device's MAC %x is a group or zero address", ErrDevice, n.mac))
		}
	} else {
		n.mac = [6]byte{0x02, 'j', 'u', t.Addr.Bus, t.Addr.Dev, t.Addr.Fn}
	}
	want := o.QueueSize
	if want == 0 {
		want = DefaultNetQueueSize
	}
	if want&(want-1) != 0 || want > MaxQueueSize {
		return fail(fmt.Errorf("queue size %d is not a power of two up to %d", want, MaxQueueSize))
	}
	size := min(want, t.QueueMax(netRxQ), t.QueueMax(netTxQ))
	if size < 2 {
		return fail(fmt.Errorf("%w: queues of %d and %d entries", ErrNoQueue, t.QueueMax(netRxQ), t.QueueMax(netTxQ)))
	}
	for size&(size-1) != 0 {
		size &= size - 1
	}
	if n.rx, err = NewQueue(mem, dma, size); err != nil {
		return fail(err)
	}
	if n.tx, err = NewQueue(mem, dma, size); err != nil {
		return fail(err)
	}
	slots := func() ([]byte, uint64, error) {
		bytes := uint64(size) * netSlot
		pa, ok := dma.Alloc(bytes)
		if !ok {
			return nil, 0, ErrNoMemory
		}
		b, ok := mem.Bytes(pa, bytes)
		if !ok {
			return nil, 0, ErrNoMemory
		}
		return b, pa, nil
	}
	if n.rxMem, n.rxPA, err = slots(); err != nil {
		return fail(err)
	}
	if n.txMem, n.txPA, err = slots(); err != nil {
		return fail(err)
	}
	n.rxSlot = make([]uint16, size)
	n.txSlot = make([]uint16, size)
	n.txFree = make([]uint16, size)
	for i := range n.txFree {
		n.txFree[i] = uint16(len(n.txFree) - 1 - i) // slot 0 on top
	}
	if err := t.SetupQueue(netRxQ, n.rx); err != nil {
		return fail(err)
	}
	if err := t.SetupQueue(netTxQ, n.tx); err != nil {
		return fail(err)
	}
	if err := t.DriverOK(); err != nil {
		return fail(err)
	}
	for s := range size {
		if err := n.post(s); err != nil {
			return fail(err)
		}
	}
	t.Notify(netRxQ)
	return n, nil
}

// post makes receive slot s available to the device. Caller holds rxMu
// (or owns n alone).
func (n *Net) post(s uint16) error {
	n.rxBufs[0] = Buf{PA: n.rxPA + uint64(s)*netSlot, Len: netSlot, Write: true}
	head, err := n.rx.Add(n.rxBufs[:])
	if err != nil {
		return err
	}
	n.rxSlot[head] = s
	return nil
}

// Name is the interface's name.
func (n *Net) Name() string { return n.name }

// MAC is the device's address (or the derived one).
func (n *Net) MAC() [6]byte { return n.mac }

// MTU is NetMTU.
func (n *Net) MTU() int { return NetMTU }

// QueueSize is each queue's size.
func (n *Net) QueueSize() int { return int(n.rx.Size()) }

// Transport is the device's transport.
func (n *Net) Transport() *Transport { return n.t }

// Err returns the protocol violation that broke the device, if any.
func (n *Net) Err() error {
	if p := n.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// LinkUp reports the link state from the device's status field; a device
// without VIRTIO_NET_F_STATUS is always up (virtio 1.2 5.1.4.2), a failed
// one never.
func (n *Net) LinkUp() bool {
	if n.Err() != nil {
		return false
	}
	if !n.status {
		return true
	}
	n.cfgMu.Lock()
	s, err := n.t.Config16(netCfgStatus)
	n.cfgMu.Unlock()
	return err == nil && s&netStatusLinkUp != 0
}

// Stats returns the driver's counters.
func (n *Net) Stats() nic.Stats {
	return nic.Stats{
		TxFrames: n.txFrames.Load(), TxBytes: n.txBytes.Load(), TxFull: n.txFull.Load(),
		RxFrames: n.rxFrames.Load(), RxBytes: n.rxBytes.Load(), RxDrop: n.rxDrop.Load(),
	}
}

// fail marks the device failed: every later call returns err.
func (n *Net) fail(err error) error {
	e := fmt.Errorf("virtio-net %s (%v): %w", n.name, n.t.Addr, err)
	if n.broken.CompareAndSwap(nil, &e) {
		n.cfgMu.Lock()
		n.t.Fail()
		n.cfgMu.Unlock()
	}
	return *n.broken.Load()
}

// Send copies frame (destination MAC first, no FCS; 14 to NetMaxFrame
// bytes) into a free transmit slot behind a zeroed header (no offload
// requested) and makes it available to the device. It returns
// nic.ErrFull, counting it, when every slot is still with the device.
// Allocation-free.
func (n *Net) Send(frame []byte) error {
	if len(frame) < NetMinFrame || len(frame) > NetMaxFrame {
		return ErrFrameSize
	}
	n.txMu.Lock()
	defer n.txMu.Unlock()
	if err := n.Err(); err != nil {
		return err
	}
	if err := n.reclaim(); err != nil {
		return err
	}
	if len(n.txFree) == 0 {
		n.txFull.Add(1)
		return nic.ErrFull
	}
	s := n.txFree[len(n.txFree)-1]
	slot := n.txMem[uint64(s)*netSlot : uint64(s+1)*netSlot]
	clear(slot[:NetHeaderSize])
	copy(slot[NetHeaderSize:], frame)
	n.txBufs[0] = Buf{PA: n.txPA + uint64(s)*netSlot, Len: uint32(NetHeaderSize + len(frame))}
	head, err := n.tx.Add(n.txBufs[:])
	if err != nil {
		// A free slot always has a free descriptor: the queue is
		// broken (its sticky error) or the driver is.
		return n.fail(err)
	}
	n.txFree = n.txFree[:len(n.txFree)-1]
	n.txSlot[head] = s + 1
	if n.tx.NeedsNotify() {
		n.t.Notify(netTxQ)
	}
	n.txFrames.Add(1)
	n.txBytes.Add(uint64(len(frame)))
	return nil
}

// TxFree reclaims the transmit slots the device is done with and returns
// how many are free: a sender with several frames to go out together
// (the segments of one TCP packet) checks that they fit first.
func (n *Net) TxFree() int {
	n.txMu.Lock()
	defer n.txMu.Unlock()
	if n.Err() != nil || n.reclaim() != nil {
		return 0
	}
	return len(n.txFree)
}

// reclaim takes the finished chains off the transmit queue and frees
// their slots. The used length of a transmit buffer (bytes the device
// wrote into it: none) is not used, so it is not checked. Caller holds
// txMu.
func (n *Net) reclaim() error {
	for range n.tx.Size() {
		head, _, ok, err := n.tx.Used()
		if err != nil {
			return n.fail(err)
		}
		if !ok {
			return nil
		}
		s := n.txSlot[head]
		if s == 0 {
			return n.fail(fmt.Errorf("%w: transmit chain %d has no slot", ErrDevice, head))
		}
		n.txSlot[head] = 0
		n.txFree = append(n.txFree, s-1)
	}
	return nil
}

// Recv copies the next received frame into buf and returns its length;
// ok is false when none has arrived. Frames longer than buf, shorter than
// an Ethernet header or marked as GSO packets (not negotiated) are
// dropped and counted (Stats' RxDrop), and the next one is returned; a
// call looks at no more frames than the queue holds. Each buffer goes
// back to the device as soon as its frame is copied. Allocation-free.
func (n *Net) Recv(buf []byte) (int, bool, error) {
	n.rxMu.Lock()
	defer n.rxMu.Unlock()
	if err := n.Err(); err != nil {
		return 0, false, err
	}
	got, ok := 0, false
	posted := false
	for range n.rx.Size() {
		head, written, used, err := n.rx.Used()
		if err != nil {
			return 0, false, n.fail(err)
		}
		if !used {
			break
		}
		s := n.rxSlot[head]
		if written > netSlot {
			return 0, false, n.fail(fmt.Errorf("%w: receive chain %d used for %d bytes, its buffer has %d", ErrDevice, head, written, netSlot))
		}
		slot := n.rxMem[uint64(s)*netSlot : uint64(s+1)*netSlot]
		l := int(written) - NetHeaderSize
		switch {
		case l < NetMinFrame || l > len(buf) || slot[netHdrGSOType] != 0:
			n.rxDrop.Add(1)
		default:
			copy(buf, slot[NetHeaderSize:NetHeaderSize+l])
			got, ok = l, true
			n.rxFrames.Add(1)
			n.rxBytes.Add(uint64(l))
		}
		if err := n.post(s); err != nil {
			return 0, false, n.fail(err)
		}
		posted = true
		if ok {
			break
		}
	}
	if posted && n.rx.NeedsNotify() {
		n.t.Notify(netRxQ)
	}
	return got, ok, nil
}
