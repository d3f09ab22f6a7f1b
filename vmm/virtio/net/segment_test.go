package net

import (
	"bytes"
	"testing"

	"juice/vmm/netswitch"
)

// TestExportedSegments cuts a 10,000-byte TCP packet (IPv4 and IPv6)
// with Segments and Segment as juice's uplink does: 7 segments of at most
// 1448 (IPv6: 1440) payload bytes, each with valid IP and TCP checksums and the right
// sequence number, FIN and PSH on the last only, together carrying the
// payload; and refuses what is not a GSO frame it can cut.
func TestExportedSegments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		payload := pattern(10000)
		f := tcpFrame(macB, v6, 1000, tcpFIN|tcpPSH, payload)
		l4, mss := uint16(34), uint16(1448)
		gso := uint8(netswitch.GSOTCPv4)
		if v6 {
			l4, mss, gso = 54, 1440, netswitch.GSOTCPv6
		}
		off := netswitch.Offload{NeedsCsum: true, CsumStart: l4, CsumOffset: 16, GSO: gso, GSOSize: mss, HdrLen: l4 + 20}
		n := Segments(f, off)
		if n != 7 {
			t.Fatalf("v6 %v: %d segments, want 7", v6, n)
		}
		var got []byte
		out := make([]byte, 1514)
		for i := range n {
			l := Segment(out, f, off, i)
			if l == 0 || l > 1514 {
				t.Fatalf("segment %d: length %d", i, l)
			}
			_, seq, flags, pay := checkTCP(t, out[:l], v6)
			if seq != 1000+uint32(len(got)) {
				t.Errorf("segment %d: seq %d, want %d", i, seq, 1000+len(got))
			}
			if last := i == n-1; (flags&(tcpFIN|tcpPSH) != 0) != last {
				t.Errorf("segment %d of %d: flags %#x", i, n, flags)
			}
			got = append(got, pay...)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("v6 %v: the segments carry %d bytes, not the payload", v6, len(got))
		}
		if Segment(out, f, off, n) != 0 || Segment(out, f, off, -1) != 0 || Segment(out[:100], f, off, 0) != 0 {
			t.Error("Segment out of range or into a short buffer wrote something")
		}
	}
	plain := tcpFrame(macB, false, 1, 0, pattern(100))
	for _, off := range []netswitch.Offload{
		{},
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16},
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: netswitch.GSOTCPv6, GSOSize: 1448},
		{NeedsCsum: true, CsumStart: 30, CsumOffset: 16, GSO: netswitch.GSOTCPv4, GSOSize: 1448},
	} {
		if n := Segments(plain, off); n != 0 {
			t.Errorf("Segments(%+v) = %d, want 0", off, n)
		}
	}
}
