package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/drivers/nic"
	"juice/vmm/bundle"
	"juice/vmm/netswitch"
)

// fakeNIC is a nic.Device with a transmit ring of room slots (taken by
// Send, given back by the test) and an inbox Recv reads.
type fakeNIC struct {
	mu    sync.Mutex
	mac   [6]byte
	room  int
	sent  [][]byte
	inbox [][]byte
	err   error // Recv's error once the inbox is empty
	stats nic.Stats
}

func (f *fakeNIC) Name() string { return "vnet0" }
func (f *fakeNIC) MAC() [6]byte { return f.mac }
func (f *fakeNIC) MTU() int     { return 1500 }
func (f *fakeNIC) LinkUp() bool { return true }
func (f *fakeNIC) Stats() nic.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeNIC) Send(frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(frame) > 1514 {
		return errors.New("too big")
	}
	if f.room == 0 {
		f.stats.TxFull++
		return nic.ErrFull
	}
	f.room--
	f.sent = append(f.sent, bytes.Clone(frame))
	f.stats.TxFrames++
	return nil
}

func (f *fakeNIC) Recv(buf []byte) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inbox) == 0 {
		return 0, false, f.err
	}
	fr := f.inbox[0]
	f.inbox = f.inbox[1:]
	return copy(buf, fr), true, nil
}

func (f *fakeNIC) TxFree() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.room
}

// take returns and forgets the frames sent, and gives their slots back.
func (f *fakeNIC) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	f.room += len(s)
	return s
}

func (f *fakeNIC) push(frames ...[]byte) {
	f.mu.Lock()
	f.inbox = append(f.inbox, frames...)
	f.mu.Unlock()
}

var (
	nicMAC   = [6]byte{0x52, 0x54, 0x00, 0x6a, 0x75, 0x01}
	vmMAC    = netswitch.MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x0a}
	otherMAC = netswitch.MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x0b}
	wireMAC  = netswitch.MAC{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02} // QEMU slirp's gateway
)

// fakeHostNICs installs vnet0 and vnet1 backed by fake NICs and forgets
// every uplink.
func fakeHostNICs(t *testing.T) (*fakeNIC, *fakeNIC) {
	t.Helper()
	a := &fakeNIC{mac: nicMAC, room: 64}
	b := &fakeNIC{mac: [6]byte{0x52, 0x54, 0x00, 0x6a, 0x75, 0x02}, room: 64}
	saved := hostNICs
	hostNICs = []*hostNIC{{name: "vnet0", driver: "fake", dev: a}, {name: "vnet1", driver: "fake", dev: b}}
	stop := func() {
		for _, f := range []*fakeNIC{a, b} {
			f.mu.Lock()
			f.err = errors.New("test over") // ends the pollers
			f.mu.Unlock()
		}
	}
	uplinksMu.Lock()
	uplinks = map[*netswitch.Switch]*uplink{}
	uplinksMu.Unlock()
	t.Cleanup(func() {
		stop()
		hostNICs = saved
	})
	return a, b
}

// vmPort is a VM's interface on a switch, as the test sees it.
type vmPort struct {
	mu   sync.Mutex
	port *netswitch.Port
	got  [][]byte
	busy bool
	woke chan struct{}
}

func attachVM(t *testing.T, sw *netswitch.Switch, mac netswitch.MAC) *vmPort {
	t.Helper()
	v := &vmPort{woke: make(chan struct{}, 16)}
	v.port = sw.AttachPort(netswitch.PortConfig{MAC: mac, Locked: true,
		Deliver: func(frame []byte, off netswitch.Offload) netswitch.Verdict {
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.busy {
				return netswitch.Busy
			}
			v.got = append(v.got, bytes.Clone(frame))
			return netswitch.Accepted
		},
		Wake: func() { v.woke <- struct{}{} },
	})
	if v.port == nil {
		t.Fatal("VM port refused")
	}
	return v
}

func (v *vmPort) frames() [][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	g := v.got
	v.got = nil
	return g
}

// waitFor polls cond for up to two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ether(dst, src netswitch.MAC, n int, fill byte) []byte {
	f := bytes.Repeat([]byte{fill}, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xb5
	return f
}

// tcp4 builds an IPv4 TCP frame from vmMAC to dst with payload, its TCP
// checksum left partial (the pseudo-header's sum) as a guest that
// offloads it sends it.
func tcp4(dst netswitch.MAC, seq uint32, payload []byte) []byte {
	f := make([]byte, 54+len(payload))
	copy(f, dst[:])
	copy(f[6:], vmMAC[:])
	f[12], f[13] = 0x08, 0x00
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+len(payload)))
	ip[6], ip[8], ip[9] = 0x40, 64, 6
	copy(ip[12:], []byte{10, 0, 2, 15, 10, 0, 2, 2})
	binary.BigEndian.PutUint16(ip[10:], netswitch.Checksum(ip))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 8080)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12], tcp[13] = 5<<4, 0x18
	copy(f[54:], payload)
	// Pseudo-header sum: addresses, protocol, TCP length.
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum += 6 + uint32(20+len(payload))
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], uint16(sum))
	return f
}

// tcpValid checks a frame's IPv4 header and TCP checksums.
func tcpValid(f []byte) bool {
	ip := f[14:34]
	if netswitch.Checksum(ip) != 0 {
		return false
	}
	tcp := f[34:]
	pseudo := make([]byte, 12, 12+len(tcp))
	copy(pseudo, ip[12:20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(tcp)))
	return netswitch.Checksum(append(pseudo, tcp...)) == 0
}

// TestUplinkBridges: frames cross between a VM's port and the host NIC
// both ways; the uplink learns the wire's addresses (a reply to the
// wire's gateway goes to the NIC only, not to another VM), floods
// broadcasts, takes any source address from the wire, and finishes a
// guest's partial checksum before the frame goes out.
func TestUplinkBridges(t *testing.T) {
	a, _ := fakeHostNICs(t)
	switches := map[string]*netswitch.Switch{}
	if err := attachUplinks([]bundle.NetSpec{{Network: "lan", Uplink: "vnet0"}}, switches); err != nil {
		t.Fatal(err)
	}
	sw := switches["lan"]
	vm := attachVM(t, sw, vmMAC)
	other := attachVM(t, sw, otherMAC)

	// Wire to VM: a broadcast reaches both VMs; a unicast only its owner.
	arp := ether(netswitch.Broadcast, wireMAC, 60, 1)
	hello := ether(vmMAC, wireMAC, 1514, 2)
	a.push(arp, hello)
	waitFor(t, "the frames from the wire", func() bool {
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return len(vm.got) == 2
	})
	if g := vm.frames(); !bytes.Equal(g[0], arp) || !bytes.Equal(g[1], hello) {
		t.Error("the VM got other frames than the wire sent")
	}
	if g := other.frames(); len(g) != 1 || !bytes.Equal(g[0], arp) {
		t.Errorf("the other VM got %d frames, want the broadcast only", len(g))
	}
	// VM to wire: the gateway's address was learned behind the uplink.
	reply := ether(wireMAC, vmMAC, 100, 3)
	if !vm.port.Send(reply) {
		t.Fatal("the switch refused the VM's frame")
	}
	if g := a.take(); len(g) != 1 || !bytes.Equal(g[0], reply) {
		t.Fatalf("the NIC sent %d frames, want the reply", len(g))
	}
	if g := other.frames(); len(g) != 0 {
		t.Errorf("a unicast to the wire's gateway was flooded to another VM")
	}
	// A partial checksum is completed in the uplink's copy.
	seg := tcp4(wireMAC, 1, bytes.Repeat([]byte("x"), 999))
	if v := vm.port.Transmit(seg, netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}); v != netswitch.Accepted {
		t.Fatalf("Transmit: %v", v)
	}
	if g := a.take(); len(g) != 1 || !tcpValid(g[0]) {
		t.Fatalf("the NIC sent %d frames, want one with its checksum completed", len(g))
	}
	if tcpValid(seg) {
		t.Error("the sender's frame was changed")
	}
	// Too big for the NIC: dropped, counted.
	u := uplinks[sw]
	if v := vm.port.Transmit(ether(wireMAC, vmMAC, 1518, 4), netswitch.Offload{}); v != netswitch.Accepted || len(a.take()) != 0 || u.toWireDropped.Load() != 1 {
		t.Errorf("an oversized frame: %v, dropped %d", v, u.toWireDropped.Load())
	}
}

// TestUplinkSegments: a TCP packet a guest sent with segmentation
// offload leaves the NIC as MTU-sized segments with valid checksums; when
// the NIC has no room for all of them the sender is held (Busy) and
// woken once the poller sees room, and then all go out.
func TestUplinkSegments(t *testing.T) {
	a, _ := fakeHostNICs(t)
	switches := map[string]*netswitch.Switch{}
	if err := attachUplinks([]bundle.NetSpec{{Network: "lan", Uplink: "vnet0"}}, switches); err != nil {
		t.Fatal(err)
	}
	sw := switches["lan"]
	vm := attachVM(t, sw, vmMAC)
	a.push(ether(vmMAC, wireMAC, 60, 1)) // the uplink learns wireMAC
	waitFor(t, "the wire's frame", func() bool { return len(vm.frames()) == 1 })

	payload := make([]byte, 20000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	pkt := tcp4(wireMAC, 5000, payload)
	off := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: netswitch.GSOTCPv4, GSOSize: 1448, HdrLen: 54}
	a.mu.Lock()
	a.room = 5 // 14 segments will not fit
	a.mu.Unlock()
	if v := vm.port.Transmit(pkt, off); v != netswitch.Busy {
		t.Fatalf("Transmit with 5 free slots: %v, want Busy", v)
	}
	if len(a.take()) != 0 {
		t.Fatal("part of the packet went out")
	}
	a.mu.Lock()
	a.room = 64
	a.mu.Unlock()
	select {
	case <-vm.woke:
	case <-time.After(2 * time.Second):
		t.Fatal("the held sender was not woken when the NIC had room")
	}
	if v := vm.port.Transmit(pkt, off); v != netswitch.Accepted {
		t.Fatalf("Transmit after the wake-up: %v", v)
	}
	segs := a.take()
	if len(segs) != 14 {
		t.Fatalf("%d segments, want 14", len(segs))
	}
	var got []byte
	for i, s := range segs {
		if len(s) > 1514 || !tcpValid(s) {
			t.Errorf("segment %d: %d bytes, checksums valid %v", i, len(s), tcpValid(s))
		}
		if seq := binary.BigEndian.Uint32(s[38:]); seq != 5000+uint32(len(got)) {
			t.Errorf("segment %d: seq %d", i, seq)
		}
		got = append(got, s[54:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Error("the segments do not carry the payload")
	}
}

// TestUplinkHoldsForBusyVM: a frame from the wire for a VM whose backlog
// is full waits (the poller reads nothing more) and is delivered once the
// VM has room; a VM that never makes room costs the frame after the hold
// limit, and the frames behind it go on.
func TestUplinkHoldsForBusyVM(t *testing.T) {
	a, _ := fakeHostNICs(t)
	switches := map[string]*netswitch.Switch{}
	if err := attachUplinks([]bundle.NetSpec{{Network: "lan", Uplink: "vnet0"}}, switches); err != nil {
		t.Fatal(err)
	}
	vm := attachVM(t, switches["lan"], vmMAC)
	vm.mu.Lock()
	vm.busy = true
	vm.mu.Unlock()
	a.push(ether(vmMAC, wireMAC, 60, 1), ether(vmMAC, wireMAC, 60, 2))
	time.Sleep(20 * time.Millisecond)
	a.mu.Lock()
	left := len(a.inbox)
	a.mu.Unlock()
	if left != 1 {
		t.Errorf("%d frames left in the NIC while the first is held, want 1", left)
	}
	vm.mu.Lock()
	vm.busy = false
	vm.mu.Unlock()
	vm.port.Ready()
	waitFor(t, "both frames", func() bool {
		vm.mu.Lock()
		defer vm.mu.Unlock()
		return len(vm.got) == 2
	})
	if g := vm.frames(); g[0][20] != 1 || g[1][20] != 2 {
		t.Error("frames out of order")
	}
	// Never ready: the frame is dropped after the hold limit.
	vm.mu.Lock()
	vm.busy = true
	vm.mu.Unlock()
	start := time.Now()
	a.push(ether(vmMAC, wireMAC, 60, 3))
	u := uplinks[switches["lan"]]
	waitFor(t, "the drop", func() bool { return u.fromWireDropped.Load() == 1 })
	if d := time.Since(start); d < uplinkHoldLimit {
		t.Errorf("dropped after %v, before the hold limit", d)
	}
}

// TestAttachUplinks: the checks at boot: a NIC the machine lacks, a NIC
// bridged to two networks, a network given two NICs; naming the same
// uplink again is fine.
func TestAttachUplinks(t *testing.T) {
	fakeHostNICs(t)
	switches := map[string]*netswitch.Switch{}
	ok := []bundle.NetSpec{{Network: "lan"}, {Network: "lan", Uplink: "vnet0"}, {Network: "dmz", Uplink: "vnet1"}}
	if err := attachUplinks(ok, switches); err != nil {
		t.Fatal(err)
	}
	if err := attachUplinks(ok[1:2], switches); err != nil {
		t.Errorf("the same uplink again: %v", err)
	}
	for _, c := range []struct {
		nets []bundle.NetSpec
		want string
	}{
		{[]bundle.NetSpec{{Network: "wan", Uplink: "vnet7"}}, "network interface 0: uplink of network wan: no host NIC vnet7 (host NICs: vnet0, vnet1)"},
		{[]bundle.NetSpec{{Network: "x"}, {Network: "wan", Uplink: "vnet0"}}, "network interface 1: uplink of network wan: host NIC vnet0 is the uplink of network lan already"},
		{[]bundle.NetSpec{{Network: "lan", Uplink: "vnet1"}}, "uplink of network lan: the network is bridged to vnet0 already"},
	} {
		if err := attachUplinks(c.nets, switches); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.nets, err, c.want)
		}
	}
	// The uplink's port holds the NIC's MAC: a VM interface with it is
	// refused by the switch.
	if p := switches["lan"].AttachPort(netswitch.PortConfig{MAC: nicMAC, Deliver: func([]byte, netswitch.Offload) netswitch.Verdict { return netswitch.Accepted }}); p != nil {
		t.Error("a second port with the NIC's MAC")
	}
}

// countingNIC is a nic.Device that takes every frame and keeps nothing.
type countingNIC struct {
	fakeNIC
	n int
}

func (c *countingNIC) Send(frame []byte) error { c.n++; return nil }
func (c *countingNIC) TxFree() int             { return 64 }

// TestUplinkDeliverAllocs: the exit-path hand-off to the wire allocates
// nothing, for a plain frame, a partial checksum and a GSO packet.
func TestUplinkDeliverAllocs(t *testing.T) {
	c := &countingNIC{fakeNIC: fakeNIC{mac: nicMAC}}
	u := newUplink(&hostNIC{name: "vnet0", dev: c}, netswitch.New("lan"))
	plain := ether(wireMAC, vmMAC, 1514, 1)
	seg := tcp4(wireMAC, 1, make([]byte, 1000))
	pkt := tcp4(wireMAC, 1, make([]byte, 30000))
	csum := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	gso := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: netswitch.GSOTCPv4, GSOSize: 1448, HdrLen: 54}
	if a := testing.AllocsPerRun(100, func() {
		u.deliver(plain, netswitch.Offload{})
		u.deliver(seg, csum)
		u.deliver(pkt, gso)
	}); a != 0 {
		t.Errorf("deliver allocates %v times", a)
	}
	if want := 101 * (1 + 1 + 21); c.n != want {
		t.Errorf("%d frames sent, want %d", c.n, want)
	}
}
