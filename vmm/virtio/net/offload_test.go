package net

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"

	"juice/vmm/netswitch"
	vt "juice/vmm/virtio/virtiotest"
)

var macC = netswitch.MAC{0x52, 0, 0, 0, 0, 0xc}

// noGuestOffloads is a driver that takes neither partial checksums nor
// GSO frames.
const noGuestOffloads = ^uint64(FeatureGuestCsum | FeatureGuestTSO4 | FeatureGuestTSO6)

// tcpFrame builds an Ethernet, IPv4 (or IPv6) and TCP frame from a to
// dst carrying payload, its TCP checksum left as Linux leaves it for a
// device that offloads it: the pseudo-header's sum, folded, not
// complemented.
func tcpFrame(dst netswitch.MAC, v6 bool, seq uint32, flags byte, payload []byte) []byte {
	f := append(append([]byte{}, dst[:]...), macA[:]...)
	var ip []byte
	if v6 {
		f = append(f, 0x86, 0xdd)
		ip = make([]byte, 40)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(20+len(payload)))
		ip[6], ip[7] = protoTCP, 64
		ip[8], ip[23] = 0xfd, 1
		ip[24], ip[39] = 0xfd, 2
	} else {
		f = append(f, 0x08, 0x00)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+20+len(payload)))
		binary.BigEndian.PutUint16(ip[4:], 0x1234) // identification
		ip[6] = 0x40                               // DF
		ip[8], ip[9] = 64, protoTCP
		copy(ip[12:], []byte{10, 0, 2, 1, 10, 0, 2, 2})
		binary.BigEndian.PutUint16(ip[10:], netswitch.Checksum(ip))
	}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 5000)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 77)
	tcp[12], tcp[13] = 5<<4, flags|0x10 // ACK
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	var sum uint64
	if v6 {
		sum = words(ip[8:40], 0)
	} else {
		sum = words(ip[12:20], 0)
	}
	sum += protoTCP + uint64(20+len(payload))
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], uint16(sum))
	return append(append(append(f, ip...), tcp...), payload...)
}

// checkTCP verifies a received frame's IP and TCP checksums and returns
// its IPv4 identification, sequence number, TCP flags and payload.
func checkTCP(t *testing.T, f []byte, v6 bool) (id uint16, seq uint32, flags byte, payload []byte) {
	t.Helper()
	l4 := 34
	var ip []byte
	if v6 {
		l4 = 54
		ip = f[14:54]
		if int(binary.BigEndian.Uint16(ip[4:])) != len(f)-54 {
			t.Errorf("IPv6 payload length %d, frame %d", binary.BigEndian.Uint16(ip[4:]), len(f))
		}
	} else {
		ip = f[14:34]
		if netswitch.Checksum(ip) != 0 {
			t.Errorf("bad IPv4 header checksum")
		}
		if int(binary.BigEndian.Uint16(ip[2:])) != len(f)-14 {
			t.Errorf("IPv4 total length %d, frame %d", binary.BigEndian.Uint16(ip[2:]), len(f))
		}
		id = binary.BigEndian.Uint16(ip[4:])
	}
	tcp := f[l4:]
	if tcpChecksum(ip, tcp, v6) != 0 {
		t.Errorf("bad TCP checksum (seq %d)", binary.BigEndian.Uint32(tcp[4:]))
	}
	return id, binary.BigEndian.Uint32(tcp[4:]), tcp[13], tcp[20:]
}

// sendHdr transmits frame with virtio-net header hdr.
func (n *nic) sendHdr(at uint64, hdr [HeaderSize]byte, frame []byte) {
	b, _ := n.mem.Slice(at, uint64(HeaderSize+len(frame)))
	copy(b, hdr[:])
	copy(b[HeaderSize:], frame)
	n.tx.Add(vt.Buf{Addr: at, Len: uint32(len(b))})
	n.drv.Notify(txq)
}

// csumHdr asks for the TCP checksum (after an IPv4 or IPv6 header) and,
// with mss, for segmentation.
func csumHdr(v6 bool, mss uint16) [HeaderSize]byte {
	var h [HeaderSize]byte
	l4 := uint16(34)
	if v6 {
		l4 = 54
	}
	h[0] = hdrFNeedsCsum
	binary.LittleEndian.PutUint16(h[hdrCsumStart:], l4)
	binary.LittleEndian.PutUint16(h[hdrCsumOffset:], 16)
	if mss != 0 {
		h[1] = netswitch.GSOTCPv4
		if v6 {
			h[1] = netswitch.GSOTCPv6
		}
		binary.LittleEndian.PutUint16(h[hdrHdrLen:], l4+20)
		binary.LittleEndian.PutUint16(h[hdrGSOSize:], mss)
	}
	return h
}

// rxHdr is h as a receiving guest sees it (num_buffers 1).
func rxHdr(h [HeaderSize]byte) [HeaderSize]byte {
	h[hdrNumBuffers] = 1
	return h
}

// received returns the frames n's guest got (header, frame), posting
// big receive buffers first and servicing the device.
func (n *nic) received(t *testing.T) (hdrs [][HeaderSize]byte, frames [][]byte) {
	t.Helper()
	const size = 70000
	for {
		for i := 0; i < 8; i++ {
			n.postRX(0x200000+uint64(i)*size, size)
		}
		n.drv.Notify(rxq)
		got := 0
		for {
			id, ln, ok := n.rx.PopUsed()
			if !ok {
				break
			}
			got++
			addr := 0x200000 + uint64(id%8)*size
			// The ring hands descriptors out round robin: find the
			// buffer by its descriptor.
			desc, _ := n.mem.Slice(n.rx.Desc+16*uint64(id), 16)
			addr = binary.LittleEndian.Uint64(desc)
			b, _ := n.mem.Slice(addr, uint64(ln))
			var h [HeaderSize]byte
			copy(h[:], b)
			hdrs = append(hdrs, h)
			frames = append(frames, append([]byte(nil), b[HeaderSize:]...))
		}
		// Unused buffers stay posted; stop once nothing more came.
		if got == 0 || !n.dev.Waiting() {
			return hdrs, frames
		}
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// A partial checksum crosses the switch untouched to a guest that takes
// partial checksums (flagged in its header) and is completed by the
// receiving device for one that does not.
func TestChecksumOffload(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	c := newNICFeatures(t, sw, macC, noGuestOffloads)
	for _, v6 := range []bool{false, true} {
		fb := tcpFrame(macB, v6, 1000, 0, pattern(300))
		a.sendHdr(bufAt, csumHdr(v6, 0), fb)
		hdrs, frames := b.received(t)
		if len(frames) != 1 || !bytes.Equal(frames[0], fb) {
			t.Fatalf("v6 %v: the partial-checksum guest got %d frames (want the frame as sent)", v6, len(frames))
		}
		if h := hdrs[0]; h != rxHdr(csumHdr(v6, 0)) {
			t.Errorf("v6 %v: header % x: want NEEDS_CSUM with the sender's offsets", v6, h)
		}
		a.sendHdr(bufAt, csumHdr(v6, 0), tcpFrame(macC, v6, 1000, 0, pattern(301)))
		hdrs, frames = c.received(t)
		if len(frames) != 1 || hdrs[0][0] != 0 {
			t.Fatalf("v6 %v: the other guest got %d frames, header %v", v6, len(frames), hdrs)
		}
		if _, _, _, p := checkTCP(t, frames[0], v6); !bytes.Equal(p, pattern(301)) {
			t.Errorf("v6 %v: payload changed", v6)
		}
	}
	if st := a.dev.Stats(); st.TxDropped != 0 || st.TxFrames != 4 {
		t.Errorf("sender %+v", st)
	}
}

// A GSO frame reaches a guest that takes GSO frames whole, with its
// segmentation request in the header, and a guest that does not as
// MSS-sized segments, each a correct TCP segment: headers fixed up,
// checksums complete, FIN and PSH on the last only, the payload intact.
func TestSegmentationOffload(t *testing.T) {
	sw := netswitch.New("lan")
	a, b := newNIC(t, sw, macA), newNIC(t, sw, macB)
	c := newNICFeatures(t, sw, macC, noGuestOffloads)
	d := newNICFeatures(t, sw, netswitch.MAC{0x52, 0, 0, 0, 0, 0xd}, ^uint64(FeatureGuestTSO4|FeatureGuestTSO6))
	const mss = 1448
	for _, v6 := range []bool{false, true} {
		payload := pattern(10000)
		fb := tcpFrame(macB, v6, 5000, tcpPSH|tcpFIN|tcpCWR, payload)
		a.sendHdr(bufAt, csumHdr(v6, mss), fb)
		hdrs, frames := b.received(t)
		if len(frames) != 1 || !bytes.Equal(frames[0], fb) || hdrs[0] != rxHdr(csumHdr(v6, mss)) {
			hs := [][HeaderSize]byte{}
			if len(hdrs) > 0 {
				hs = hdrs[:1]
			}
			t.Fatalf("v6 %v: the GSO guest got %d frames, header %x: want the frame whole with %x", v6, len(frames), hs, csumHdr(v6, mss))
		}
		for _, r := range []*nic{c, d} {
			f := tcpFrame(r.dev.mac, v6, 5000, tcpPSH|tcpFIN|tcpCWR, payload)
			a.sendHdr(bufAt, csumHdr(v6, mss), f)
			hdrs, frames := r.received(t)
			if len(frames) != 7 {
				t.Fatalf("v6 %v: %d segments, want 7", v6, len(frames))
			}
			var got []byte
			for i, seg := range frames {
				if hdrs[i][0] != 0 || hdrs[i][1] != 0 {
					t.Errorf("segment %d: header % x, want no offload", i, hdrs[i])
				}
				id, seq, flags, p := checkTCP(t, seg, v6)
				if !v6 && id != 0x1234+uint16(i) {
					t.Errorf("segment %d: IPv4 ID %#x", i, id)
				}
				if seq != 5000+uint32(i*mss) {
					t.Errorf("segment %d: seq %d", i, seq)
				}
				last := i == len(frames)-1
				if (flags&(tcpFIN|tcpPSH) != 0) != last || (flags&tcpCWR != 0) != (i == 0) || flags&0x10 == 0 {
					t.Errorf("segment %d: flags %#x", i, flags)
				}
				if !last && len(p) != mss {
					t.Errorf("segment %d: %d payload bytes", i, len(p))
				}
				got = append(got, p...)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("v6 %v: the segments' payload differs from the GSO frame's", v6)
			}
		}
	}
	if st := a.dev.Stats(); st.TxDropped != 0 {
		t.Errorf("sender %+v", st)
	}
}

// Transmit headers the device cannot honour drop the frame: GSO the
// driver did not negotiate, ECN, a zero segment size, a frame over the
// MTU without GSO, checksum offsets past the end; and a GSO frame whose
// headers do not say what its offload says is dropped by a receiver that
// must cut it.
func TestTransmitHeaderChecks(t *testing.T) {
	sw := netswitch.New("lan")
	a := newNICFeatures(t, sw, macA, ^uint64(FeatureHostTSO4|FeatureHostTSO6))
	b := newNIC(t, sw, macB)
	c := newNICFeatures(t, sw, macC, noGuestOffloads)
	f := tcpFrame(macB, false, 1, 0, pattern(3000))
	a.sendHdr(bufAt, csumHdr(false, 1448), f)
	ecn := csumHdr(false, 1448)
	ecn[1] |= hdrGSOECN
	zero := csumHdr(false, 1448)
	zero[hdrGSOSize], zero[hdrGSOSize+1] = 0, 0
	past := csumHdr(false, 0)
	binary.LittleEndian.PutUint16(past[hdrCsumOffset:], 3000)
	a.sendHdr(bufAt, csumHdr(false, 0), f) // over the MTU without GSO
	a.sendHdr(bufAt, past, tcpFrame(macB, false, 1, 0, pattern(100)))
	if st := a.dev.Stats(); st.TxDropped != 3 || st.TxFrames != 0 {
		t.Errorf("without HOST_TSO: sender %+v, want 3 drops", st)
	}
	macE := netswitch.MAC{0x52, 0, 0, 0, 0, 0xe}
	a2 := newNIC(t, sw, macE)
	a2.sendHdr(bufAt, ecn, f)
	a2.sendHdr(bufAt, zero, f)
	if st := a2.dev.Stats(); st.TxDropped != 2 {
		t.Errorf("ECN, zero MSS: sender %+v, want 2 drops", st)
	}
	if _, frames := b.received(t); len(frames) != 0 {
		t.Errorf("%d bad frames arrived", len(frames))
	}
	// Headers that lie: the IPv4 total length does not match.
	bad := tcpFrame(macC, false, 1, 0, pattern(3000))
	copy(bad[6:], macE[:])
	bad[16]++
	a2.sendHdr(bufAt, csumHdr(false, 1448), bad)
	// An IPv6 packet sent as TCPv4 GSO.
	v6 := tcpFrame(macC, true, 1, 0, pattern(3000))
	copy(v6[6:], macE[:])
	a2.sendHdr(bufAt, csumHdr(false, 1448), v6)
	if _, frames := c.received(t); len(frames) != 0 || c.dev.Stats().RxDropped != 2 {
		t.Errorf("lying GSO frames: %d arrived, receiver %+v", len(frames), c.dev.Stats())
	}
}

// The backlog's byte ring never overlaps two frames and gives each frame
// back intact, in order, whatever the mix of sizes (a model check).
func TestBacklogRing(t *testing.T) {
	d, err := New(netswitch.New("lan"), macA, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	type rec struct {
		at, n int
		b     byte
	}
	var live []rec
	for step := 0; step < 20000; step++ {
		if rng.Intn(3) != 0 {
			n := 1 + rng.Intn(MaxGSOFrame)
			if rng.Intn(2) == 0 {
				n = 60 + rng.Intn(MaxFrame)
			}
			at, ok := d.reserve(n)
			if !ok {
				if len(live) == 0 {
					t.Fatalf("an empty backlog refused %d bytes", n)
				}
				continue
			}
			if at < 0 || at+n > len(d.buf) {
				t.Fatalf("reserve(%d) = %d: outside the buffer", n, at)
			}
			for _, r := range live {
				if at < r.at+r.n && r.at < at+n {
					t.Fatalf("reserve(%d) = %d overlaps a live frame at %d+%d", n, at, r.at, r.n)
				}
			}
			b := byte(step)
			for i := range n {
				d.buf[at+i] = b
			}
			d.push(at, n, netswitch.Offload{})
			live = append(live, rec{at, n, b})
		} else if len(live) > 0 {
			s := d.slots[d.head]
			r := live[0]
			if s.at != r.at || s.n != r.n {
				t.Fatalf("head slot %+v, want %+v", s, r)
			}
			for i := range r.n {
				if d.buf[r.at+i] != r.b {
					t.Fatalf("frame at %d+%d overwritten", r.at, r.n)
				}
			}
			d.head, d.n = (d.head+1)%Backlog, d.n-1
			live = live[1:]
		}
		if d.n != len(live) {
			t.Fatalf("n %d, model %d", d.n, len(live))
		}
	}
}

func TestSegmentAllocs(t *testing.T) {
	sw := netswitch.New("lan")
	a := newNIC(t, sw, macA)
	c := newNICFeatures(t, sw, macC, noGuestOffloads)
	f := tcpFrame(macC, false, 1, 0, pattern(4000))
	h := csumHdr(false, 1448)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 3; i++ {
			c.postRX(bufAt+0x10000+uint64(i)*2048, 2048)
		}
		a.sendHdr(bufAt, h, f)
		a.tx.PopUsed()
		c.service()
		for {
			if _, _, ok := c.rx.PopUsed(); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per segmented GSO frame", allocs)
	}
}

// FuzzSegment: whatever the frame and offload, cutting never panics and
// the segments carry the payload in order.
func FuzzSegment(f *testing.F) {
	f.Add(tcpFrame(macB, false, 1, tcpFIN, pattern(3000)), uint16(1448), false)
	f.Add(tcpFrame(macB, true, 1, tcpPSH, pattern(100)), uint16(7), true)
	f.Fuzz(func(t *testing.T, frame []byte, mss uint16, v6 bool) {
		off := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: netswitch.GSOTCPv4, GSOSize: mss}
		if v6 {
			off.CsumStart, off.GSO = 54, netswitch.GSOTCPv6
		}
		if !off.Valid(len(frame)) {
			return
		}
		g, ok := parseGSO(frame, off)
		if !ok {
			return
		}
		n := g.segments(len(frame), int(mss))
		if n > Backlog {
			return
		}
		var pay []byte
		for i := range n {
			out := make([]byte, g.segLen(len(frame), int(mss), i))
			g.segment(out, frame, int(mss), i, n)
			pay = append(pay, out[g.hl:]...)
		}
		if !bytes.Equal(pay, frame[g.hl:]) {
			t.Fatal("segments lost payload")
		}
	})
}
