package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"juice/drivers/nic"
	"juice/vmm/netswitch"
	vnet "juice/vmm/virtio/net"
)

// The network driver's tests run it against juice's own virtio-net model
// (juice/vmm/virtio/net) on a virtual switch: a second port on the switch
// (the peer) sees what the driver sends and sends what the driver
// receives. The model's frames reach the driver's receive buffers when
// the test plays the model's vCPU (service).

var (
	modelMAC = netswitch.MAC{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
	peerMAC  = netswitch.MAC{0x52, 0x54, 0x00, 0x11, 0x22, 0x33}
)

// netRig is a rig with a virtio-net model and a peer port.
type netRig struct {
	*rig
	sw    *netswitch.Switch
	model *vnet.Device
	peer  *netswitch.Port

	mu   sync.Mutex
	got  [][]byte // frames the peer received
	keep bool     // whether the peer keeps them (false: counts only)
	seen int
}

func newNetRig(t *testing.T) *netRig {
	t.Helper()
	nr := &netRig{sw: netswitch.New("test"), keep: true}
	var err error
	if nr.model, err = vnet.New(nr.sw, modelMAC, nil); err != nil {
		t.Fatal(err)
	}
	nr.rig = newRigFor(t, nr.model)
	nr.peer = nr.sw.Attach(peerMAC, true, func(frame []byte) bool {
		nr.mu.Lock()
		defer nr.mu.Unlock()
		nr.seen++
		if nr.keep {
			nr.got = append(nr.got, bytes.Clone(frame))
		}
		return true
	})
	if nr.peer == nil {
		t.Fatal("peer port refused")
	}
	return nr
}

// open runs Open and NewNet.
func (nr *netRig) open(t *testing.T, o NetOptions) *Net {
	t.Helper()
	tr, err := Open(nr.cs, &nr.fn, nr.mapper)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNet(tr, &nr.mem, nr.dma, o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// service plays the model VM's vCPU: frames waiting in the model's
// backlog go into the driver's receive buffers.
func (nr *netRig) service() {
	if nr.model.Waiting() {
		nr.dev.State().Notify(0)
	}
}

// received returns (and forgets) the frames the peer got.
func (nr *netRig) received() [][]byte {
	nr.mu.Lock()
	defer nr.mu.Unlock()
	g := nr.got
	nr.got = nil
	return g
}

// frame builds an Ethernet frame of n bytes from src to dst whose payload
// is a pattern from seed.
func frame(dst, src netswitch.MAC, n int, seed uint32) []byte {
	f := make([]byte, n)
	copy(f[0:], dst[:])
	copy(f[6:], src[:])
	if n >= 14 {
		binary.BigEndian.PutUint16(f[12:], 0x88b5) // local experimental ethertype
		pattern(f[14:], seed)
	}
	return f
}

// usedElem returns queue q's next used element (the one Used reads
// next), as the device wrote it, for a test to tamper with.
func usedElem(q *Queue) []byte { return usedElemAt(q, 0) }

// usedElemAt is the used element k places after the next one.
func usedElemAt(q *Queue, k uint16) []byte {
	at := ringHeader + usedElemSize*uint32((q.lastUsed+k)&(q.size-1))
	return q.used[at : at+usedElemSize]
}

// TestNetAgainstModel brings the driver up on the model and moves frames
// both ways: every frame the driver sends reaches the peer unchanged and
// in order, every frame the peer sends (unicast to the driver's MAC and
// broadcast) comes out of Recv unchanged and in order, and the counters
// agree.
func TestNetAgainstModel(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{Name: "vnet0"})
	if n.Name() != "vnet0" || n.MAC() != modelMAC || n.MTU() != 1500 || !n.LinkUp() || n.QueueSize() != DefaultNetQueueSize {
		t.Fatalf("name %q MAC %x MTU %d link %v queue %d", n.Name(), n.MAC(), n.MTU(), n.LinkUp(), n.QueueSize())
	}
	if st := n.Transport().Status(); st != StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK {
		t.Fatalf("device status %#x", st)
	}
	if f := n.Transport().Features(); f != FeatureVersion1|NetFeatureMAC|NetFeatureStatus {
		t.Errorf("features %#x: want VERSION_1, MAC and STATUS only (the model offers offloads too)", f)
	}
	// Driver to peer.
	var sent [][]byte
	for i, size := range []int{14, 60, 1514, 777, 1514, 15} {
		f := frame(peerMAC, modelMAC, size, uint32(i))
		if err := n.Send(f); err != nil {
			t.Fatalf("Send(%d bytes): %v", size, err)
		}
		sent = append(sent, f)
	}
	if got := nr.received(); len(got) != len(sent) {
		t.Fatalf("peer got %d frames, want %d", len(got), len(sent))
	} else {
		for i := range got {
			if !bytes.Equal(got[i], sent[i]) {
				t.Errorf("frame %d: peer got %d bytes %x..., sent %d", i, len(got[i]), got[i][:14], len(sent[i]))
			}
		}
	}
	// Peer to driver: unicast and broadcast.
	buf := make([]byte, 2048)
	if _, ok, err := n.Recv(buf); ok || err != nil {
		t.Fatalf("Recv with nothing sent: ok %v, %v", ok, err)
	}
	var in [][]byte
	for i, size := range []int{1514, 14, 300} {
		f := frame(modelMAC, peerMAC, size, uint32(100+i))
		in = append(in, f)
		if !nr.peer.Send(f) {
			t.Fatal("the switch refused the peer's frame")
		}
	}
	bc := frame(netswitch.Broadcast, peerMAC, 42, 7)
	in = append(in, bc)
	nr.peer.Send(bc)
	nr.service()
	for i, want := range in {
		l, ok, err := n.Recv(buf)
		if err != nil || !ok {
			t.Fatalf("Recv %d: ok %v, %v", i, ok, err)
		}
		if !bytes.Equal(buf[:l], want) {
			t.Errorf("frame %d: got %d bytes, want %d", i, l, len(want))
		}
	}
	if _, ok, _ := n.Recv(buf); ok {
		t.Error("Recv returned a frame nobody sent")
	}
	st := n.Stats()
	var inBytes, outBytes uint64
	for _, f := range in {
		inBytes += uint64(len(f))
	}
	for _, f := range sent {
		outBytes += uint64(len(f))
	}
	if st != (nic.Stats{TxFrames: uint64(len(sent)), TxBytes: outBytes, RxFrames: uint64(len(in)), RxBytes: inBytes}) {
		t.Errorf("stats %+v", st)
	}
	if ms := nr.model.Stats(); ms.TxFrames != uint64(len(sent)) || ms.RxFrames != uint64(len(in)) || ms.TxDropped != 0 || ms.RxDropped != 0 {
		t.Errorf("model stats %+v", ms)
	}
	if logs := nr.deviceLogs(); len(logs) != 0 {
		t.Errorf("the device model complained: %v", logs)
	}
}

// TestNetTransmitRingFull: while the device does not process the
// transmit queue (its notifications are held back), Send fills every
// slot and then answers nic.ErrFull, counted; once the device has sent
// the frames, Send reclaims the slots and goes on, and every frame
// reached the peer once, in order.
func TestNetTransmitRingFull(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{QueueSize: 8})
	if n.QueueSize() != 8 {
		t.Fatalf("queue size %d", n.QueueSize())
	}
	var held []func()
	nr.notifyHook = func(write func()) bool {
		held = append(held, write)
		return true
	}
	var sent [][]byte
	for i := range 8 {
		f := frame(peerMAC, modelMAC, 100+i, uint32(i))
		if err := n.Send(f); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		sent = append(sent, f)
	}
	if err := n.Send(frame(peerMAC, modelMAC, 64, 99)); err != nic.ErrFull {
		t.Fatalf("Send on a full ring: %v, want nic.ErrFull", err)
	}
	if free := n.TxFree(); free != 0 {
		t.Errorf("TxFree %d on a full ring", free)
	}
	if got := nr.received(); len(got) != 0 {
		t.Fatalf("the peer got %d frames before the device was notified", len(got))
	}
	nr.notifyHook = nil
	for _, w := range held {
		w() // the device sees the kicks now and sends everything
	}
	if free := n.TxFree(); free != 8 {
		t.Errorf("TxFree %d after the device sent everything, want 8", free)
	}
	f := frame(peerMAC, modelMAC, 64, 100)
	if err := n.Send(f); err != nil {
		t.Fatalf("Send after the device caught up: %v", err)
	}
	sent = append(sent, f)
	got := nr.received()
	if len(got) != len(sent) {
		t.Fatalf("peer got %d frames, want %d", len(got), len(sent))
	}
	for i := range got {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("frame %d differs", i)
		}
	}
	if st := n.Stats(); st.TxFull != 1 || st.TxFrames != 9 {
		t.Errorf("stats %+v: want TxFull 1, TxFrames 9", st)
	}
}

// TestNetReceiveRingFull: the peer sends more frames than the receive
// queue has buffers; the model keeps the rest in its backlog and hands
// them over as Recv gives the buffers back, so all arrive, in order.
func TestNetReceiveRingFull(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{QueueSize: 4})
	const frames = 40
	for i := range frames {
		nr.peer.Send(frame(modelMAC, peerMAC, 60+i, uint32(i)))
	}
	nr.service()
	buf := make([]byte, 1514)
	for i := range frames {
		l, ok, err := n.Recv(buf)
		if !ok || err != nil {
			t.Fatalf("frame %d: ok %v, %v", i, ok, err)
		}
		if want := frame(modelMAC, peerMAC, 60+i, uint32(i)); !bytes.Equal(buf[:l], want) {
			t.Fatalf("frame %d: %d bytes, want %d", i, l, len(want))
		}
	}
	if _, ok, _ := n.Recv(buf); ok {
		t.Error("an extra frame")
	}
	if st := n.Stats(); st.RxFrames != frames || st.RxDrop != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestNetFrameSizes: Send refuses frames shorter than an Ethernet header
// or longer than the MTU allows, without involving the device; Recv
// drops (and counts) a frame that does not fit the caller's buffer and
// returns the next.
func TestNetFrameSizes(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{})
	for _, size := range []int{0, 13, 1515, 9000} {
		if err := n.Send(make([]byte, size)); err != ErrFrameSize {
			t.Errorf("Send(%d bytes): %v, want ErrFrameSize", size, err)
		}
	}
	if kicks, _ := nr.dev.State().Notifications(netTxQ); kicks != 0 {
		t.Errorf("the device was kicked %d times for refused frames", kicks)
	}
	if st := n.Stats(); st.TxFrames != 0 {
		t.Errorf("stats %+v", st)
	}
	big := frame(modelMAC, peerMAC, 1000, 1)
	small := frame(modelMAC, peerMAC, 100, 2)
	nr.peer.Send(big)
	nr.peer.Send(small)
	nr.service()
	buf := make([]byte, 500)
	l, ok, err := n.Recv(buf)
	if !ok || err != nil || !bytes.Equal(buf[:l], small) {
		t.Fatalf("Recv into 500 bytes: %d, %v, %v; want the 100-byte frame after dropping the 1000-byte one", l, ok, err)
	}
	if st := n.Stats(); st.RxDrop != 1 || st.RxFrames != 1 {
		t.Errorf("stats %+v: want RxDrop 1, RxFrames 1", st)
	}
}

// TestNetBadReceiveLength: a used length larger than the receive buffer
// is a protocol error: Recv fails, the device is marked FAILED, and
// every later call returns the error. Lengths too short for a frame, and
// a GSO frame the driver never negotiated, are dropped instead, and the
// driver goes on.
func TestNetBadReceiveLength(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{})
	buf := make([]byte, 2048)
	send := func(seed uint32) []byte {
		f := frame(modelMAC, peerMAC, 200, seed)
		nr.peer.Send(f)
		nr.service()
		return f
	}
	// Too short: the device claims 5 bytes, less than the header; then
	// a header and a 13-byte frame.
	send(1)
	send(2)
	binary.LittleEndian.PutUint32(usedElemAt(n.rx, 0)[4:], 5)
	binary.LittleEndian.PutUint32(usedElemAt(n.rx, 1)[4:], NetHeaderSize+13)
	if _, ok, err := n.Recv(buf); ok || err != nil {
		t.Fatalf("Recv of two runts: ok %v, %v; want both dropped", ok, err)
	}
	// A GSO type in the header (not negotiated).
	send(3)
	id := binary.LittleEndian.Uint32(usedElem(n.rx))
	n.rxMem[uint64(n.rxSlot[id])*netSlot+netHdrGSOType] = 1
	want := send(4)
	l, ok, err := n.Recv(buf)
	if !ok || err != nil || !bytes.Equal(buf[:l], want) {
		t.Fatalf("Recv after a GSO frame: %d, %v, %v; want the next frame", l, ok, err)
	}
	if st := n.Stats(); st.RxDrop != 3 || st.RxFrames != 1 {
		t.Errorf("stats %+v: want 3 dropped, 1 received", st)
	}
	// Longer than the buffer.
	send(5)
	binary.LittleEndian.PutUint32(usedElem(n.rx)[4:], netSlot+1)
	if _, ok, err := n.Recv(buf); ok || !errors.Is(err, ErrDevice) {
		t.Fatalf("Recv of an overlong used length: ok %v, %v; want ErrDevice", ok, err)
	}
	checkFailed(t, n)
}

// TestNetBadUsedID: a used element naming a descriptor that is not in
// flight, on either queue, breaks the device.
func TestNetBadUsedID(t *testing.T) {
	t.Run("receive", func(t *testing.T) {
		nr := newNetRig(t)
		n := nr.open(t, NetOptions{QueueSize: 16})
		nr.peer.Send(frame(modelMAC, peerMAC, 60, 1))
		nr.service()
		binary.LittleEndian.PutUint32(usedElem(n.rx), 16) // past the ring
		if _, _, err := n.Recv(make([]byte, 2048)); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "descriptor 16") {
			t.Fatalf("Recv: %v; want ErrDevice naming descriptor 16", err)
		}
		checkFailed(t, n)
	})
	t.Run("transmit", func(t *testing.T) {
		nr := newNetRig(t)
		n := nr.open(t, NetOptions{QueueSize: 16})
		if err := n.Send(frame(peerMAC, modelMAC, 60, 1)); err != nil {
			t.Fatal(err)
		}
		// The device returned the chain; say it returned another one,
		// which the driver never made available.
		e := usedElem(n.tx)
		binary.LittleEndian.PutUint32(e, binary.LittleEndian.Uint32(e)+1)
		if err := n.Send(frame(peerMAC, modelMAC, 60, 2)); !errors.Is(err, ErrDevice) {
			t.Fatalf("Send: %v; want ErrDevice", err)
		}
		checkFailed(t, n)
	})
	t.Run("transmit index ahead", func(t *testing.T) {
		nr := newNetRig(t)
		n := nr.open(t, NetOptions{QueueSize: 16})
		// Nothing was sent, yet the used index moves.
		binary.LittleEndian.PutUint16(n.tx.used[2:], 3)
		if err := n.Send(frame(peerMAC, modelMAC, 60, 2)); !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "ahead") {
			t.Fatalf("Send: %v; want ErrDevice (used index ahead)", err)
		}
		checkFailed(t, n)
	})
}

// checkFailed checks a driver that gave up on its device: FAILED set,
// link down, Send and Recv returning the error.
func checkFailed(t *testing.T, n *Net) {
	t.Helper()
	if n.Transport().Status()&StatusFailed == 0 {
		t.Error("device not marked FAILED")
	}
	if n.LinkUp() {
		t.Error("link up on a failed device")
	}
	if err := n.Send(frame(peerMAC, modelMAC, 60, 9)); !errors.Is(err, ErrDevice) {
		t.Errorf("Send after the failure: %v", err)
	}
	if _, ok, err := n.Recv(make([]byte, 2048)); ok || !errors.Is(err, ErrDevice) {
		t.Errorf("Recv after the failure: %v, %v", ok, err)
	}
	if n.TxFree() != 0 {
		t.Error("TxFree on a failed device")
	}
}

// TestNetNotifySuppression: while the device sets VIRTQ_USED_F_NO_NOTIFY,
// Send and Recv make their buffers available without kicking it.
func TestNetNotifySuppression(t *testing.T) {
	nr := newNetRig(t)
	n := nr.open(t, NetOptions{})
	st := nr.dev.State()
	txKicks, _ := st.Notifications(netTxQ)
	rxKicks, _ := st.Notifications(netRxQ)
	binary.LittleEndian.PutUint16(n.tx.used[0:], usedNoNotify)
	n.Send(frame(peerMAC, modelMAC, 60, 1))
	if k, _ := st.Notifications(netTxQ); k != txKicks {
		t.Errorf("transmit kicked %d times under NO_NOTIFY", k-txKicks)
	}
	binary.LittleEndian.PutUint16(n.tx.used[0:], 0)
	n.Send(frame(peerMAC, modelMAC, 60, 2))
	if k, _ := st.Notifications(netTxQ); k != txKicks+1 {
		t.Errorf("transmit kicked %d times, want 1", k-txKicks)
	}
	if got := nr.received(); len(got) != 2 {
		t.Errorf("peer got %d frames, want 2 (the device sends both at the second kick)", len(got))
	}
	nr.peer.Send(frame(modelMAC, peerMAC, 60, 3))
	nr.service()
	binary.LittleEndian.PutUint16(n.rx.used[0:], usedNoNotify)
	if _, ok, _ := n.Recv(make([]byte, 2048)); !ok {
		t.Fatal("no frame")
	}
	if k, _ := st.Notifications(netRxQ); k != rxKicks {
		t.Errorf("receive kicked %d times under NO_NOTIFY", k-rxKicks)
	}
}

// TestNetNoAllocs: sending and receiving allocate nothing.
func TestNetNoAllocs(t *testing.T) {
	nr := newNetRig(t)
	nr.keep = false
	n := nr.open(t, NetOptions{})
	out := frame(peerMAC, modelMAC, 1514, 1)
	in := frame(modelMAC, peerMAC, 1514, 2)
	buf := make([]byte, 2048)
	if a := testing.AllocsPerRun(200, func() {
		n.Send(out)
		nr.peer.Send(in)
		nr.service()
		n.Recv(buf)
		n.Recv(buf)
	}); a != 0 {
		t.Fatalf("a frame each way allocates %v times", a)
	}
	if st := n.Stats(); st.RxFrames < 200 || st.TxFrames < 200 || st.RxDrop != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestNetConcurrent sends from two goroutines while a third receives
// (run it with -race): every frame arrives, none twice.
func TestNetConcurrent(t *testing.T) {
	nr := newNetRig(t)
	nr.keep = false
	n := nr.open(t, NetOptions{QueueSize: 32})
	const each = 500
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := frame(peerMAC, modelMAC, 200, uint32(g))
			for sent := 0; sent < each; {
				switch err := n.Send(f); err {
				case nil:
					sent++
				case nic.ErrFull:
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	got := 0
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for sent, rounds := 0, 0; got < each; rounds++ {
			if rounds > 100*each {
				t.Errorf("stuck: sent %d, received %d", sent, got)
				return
			}
			if sent < each && nr.peer.Send(frame(modelMAC, peerMAC, 100, uint32(sent))) {
				sent++
			}
			nr.service()
			for {
				_, ok, err := n.Recv(buf)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					break
				}
				got++
			}
		}
	}()
	wg.Wait()
	nr.mu.Lock()
	seen := nr.seen
	nr.mu.Unlock()
	if seen != 2*each || got != each {
		t.Errorf("peer saw %d frames (want %d), driver received %d (want %d)", seen, 2*each, got, each)
	}
}

// TestNewNetRefuses: a block device is not a network device.
func TestNewNetRefuses(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	tr, err := Open(r.cs, &r.fn, r.mapper)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewNet(tr, &r.mem, r.dma, NetOptions{}); err == nil || !strings.Contains(err.Error(), "not a network device") {
		t.Errorf("NewNet on a block device: %v", err)
	}
	nr := newNetRig(t)
	tr, err = Open(nr.cs, &nr.fn, nr.mapper)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewNet(tr, &nr.mem, nr.dma, NetOptions{QueueSize: 12}); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Errorf("queue size 12: %v", err)
	}
}
