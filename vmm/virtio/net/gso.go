package net

import (
	"encoding/binary"

	"juice/vmm/netswitch"
)

// Software TCP segmentation: what the receiving device does with a GSO
// frame (TCP segmentation offload from the sender) when its own guest did
// not accept GSO frames. The frame is one TCP packet carrying up to 64 KiB
// of payload behind one set of headers; it is cut into segments of at
// most GSOSize payload bytes, each a complete frame: the headers copied,
// the IPv4 total length, identification and header checksum or the IPv6
// payload length fixed, the TCP sequence number advanced, FIN and PSH
// kept for the last segment only and CWR for the first only, and the TCP
// checksum computed in full. Everything is read from the frame once it
// has been checked: Ethernet (an optional 802.1Q tag), IPv4 without
// fragmentation or IPv6 with TCP as its next header (no extension
// headers), TCP at the offset the sender gave as the checksum start.

// gsoLayout is where a GSO frame's headers are.
type gsoLayout struct {
	l3, l4, hl int // IP header, TCP header, payload
	v6         bool
}

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100
	protoTCP  = 6

	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// parseGSO checks that frame is the TCP packet off's GSO type says, with
// its TCP header at off.CsumStart and the checksum at offset 16 of it,
// and returns its layout.
func parseGSO(frame []byte, off netswitch.Offload) (gsoLayout, bool) {
	var g gsoLayout
	if len(frame) < 14 {
		return g, false
	}
	g.l3 = 14
	et := binary.BigEndian.Uint16(frame[12:])
	if et == etherVLAN {
		if len(frame) < 18 {
			return g, false
		}
		et = binary.BigEndian.Uint16(frame[16:])
		g.l3 = 18
	}
	switch {
	case et == etherIPv4 && off.GSO == netswitch.GSOTCPv4:
		if len(frame) < g.l3+20 {
			return g, false
		}
		ip := frame[g.l3:]
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		frag := binary.BigEndian.Uint16(ip[6:])
		if ip[0]>>4 != 4 || ihl < 20 || ip[9] != protoTCP || frag&0x3fff != 0 || total != len(frame)-g.l3 {
			return g, false
		}
		g.l4 = g.l3 + ihl
	case et == etherIPv6 && off.GSO == netswitch.GSOTCPv6:
		if len(frame) < g.l3+40 {
			return g, false
		}
		ip := frame[g.l3:]
		if ip[0]>>4 != 6 || ip[6] != protoTCP || int(binary.BigEndian.Uint16(ip[4:])) != len(frame)-g.l3-40 {
			return g, false
		}
		g.l4 = g.l3 + 40
		g.v6 = true
	default:
		return g, false
	}
	if !off.NeedsCsum || int(off.CsumStart) != g.l4 || off.CsumOffset != 16 || len(frame) < g.l4+20 {
		return g, false
	}
	thl := int(frame[g.l4+12]>>4) * 4
	g.hl = g.l4 + thl
	if thl < 20 || g.hl > len(frame) {
		return g, false
	}
	return g, true
}

// segments is how many segments an n-byte frame cuts into with mss
// payload bytes each (at least one).
func (g gsoLayout) segments(n, mss int) int {
	return max(1, (n-g.hl+mss-1)/mss)
}

// segLen is the length of segment i of an n-byte frame.
func (g gsoLayout) segLen(n, mss, i int) int {
	return g.hl + min(mss, n-g.hl-i*mss)
}

// segment writes segment i of nseg of frame into out (segLen bytes).
func (g gsoLayout) segment(out, frame []byte, mss, i, nseg int) {
	pay := len(out) - g.hl
	copy(out, frame[:g.hl])
	copy(out[g.hl:], frame[g.hl+i*mss:g.hl+i*mss+pay])
	ip := out[g.l3:g.l4]
	if g.v6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(len(out)-g.l4))
	} else {
		binary.BigEndian.PutUint16(ip[2:], uint16(len(out)-g.l3))
		binary.BigEndian.PutUint16(ip[4:], binary.BigEndian.Uint16(ip[4:])+uint16(i))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], netswitch.Checksum(ip))
	}
	tcp := out[g.l4:]
	binary.BigEndian.PutUint32(tcp[4:], binary.BigEndian.Uint32(tcp[4:])+uint32(i*mss))
	if i != nseg-1 {
		tcp[13] &^= tcpFIN | tcpPSH
	}
	if i != 0 {
		tcp[13] &^= tcpCWR
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(ip, tcp, g.v6))
}

// tcpChecksum is the TCP checksum of segment tcp (its checksum field
// zero) under IP header ip.
func tcpChecksum(ip, tcp []byte, v6 bool) uint16 {
	var sum uint64
	if v6 {
		sum = words(ip[8:40], 0)
	} else {
		sum = words(ip[12:20], 0)
	}
	sum += protoTCP + uint64(len(tcp))
	sum = words(tcp, sum)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// words adds b's big-endian 16-bit words (an odd last byte padded with
// zero) to sum, unfolded.
func words(b []byte, sum uint64) uint64 {
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint16(b)) + uint64(binary.BigEndian.Uint16(b[2:])) +
			uint64(binary.BigEndian.Uint16(b[4:])) + uint64(binary.BigEndian.Uint16(b[6:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}
