package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"juice/vmm/netswitch"
)

const testToken = "0123456789abcdef-test"

// client is one network-console client in a test.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialConsole(t *testing.T, dial func() (net.Conn, error)) *client {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// until reads up to and including s and returns what it read.
func (c *client) until(s string) string {
	c.t.Helper()
	var b strings.Builder
	for !strings.HasSuffix(b.String(), s) {
		ch, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatalf("waiting for %q after %q: %v", s, b.String(), err)
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends one command line and returns the reply before the prompt.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\n")
	return strings.TrimSuffix(c.until(netPrompt), netPrompt)
}

// login reads the greeting, sends the token and waits for the prompt.
func (c *client) login(tok string) {
	c.t.Helper()
	c.until(netGreeting)
	c.send(tok + "\r\n")
	c.until(netPrompt)
}

// closed reports whether the server closed the connection (after what
// is left to read).
func (c *client) closed() (rest string, ok bool) {
	b, err := io.ReadAll(c.r)
	return string(b), err == nil
}

// testConsole serves a console for VMs web and db on a loopback TCP
// listener of the host and returns its address.
func testConsole(t *testing.T, tune func(*netConsole)) (*netConsole, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	in := newConsoleInput([]string{"web", "db"})
	in.describe("web", 256<<20, 2)
	in.describe("db", 64<<20, 1)
	in.ended("db", "exited (status 0)")
	n := newNetConsole(in, testToken)
	n.denyDelay = 10 * time.Millisecond
	if tune != nil {
		tune(n)
	}
	go n.serve(ln)
	return n, ln.Addr().String()
}

// TestNetConsoleSession: a client that sends the token gets the prompt
// and the serial console's commands (list shows both VMs; stop of a VM
// that is not running says so; unknown commands too), help adds quit,
// control characters are refused, an empty line just prompts again, and
// quit ends the session.
func TestNetConsoleSession(t *testing.T) {
	_, addr := testConsole(t, nil)
	c := dialConsole(t, func() (net.Conn, error) { return net.Dial("tcp", addr) })
	c.login(testToken)
	list := c.cmd("list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "VM ") || !strings.HasPrefix(lines[1], "web ") ||
		!strings.Contains(lines[1], "256 MiB") || !strings.HasPrefix(lines[2], "db ") || !strings.Contains(lines[2], "exited (status 0)") {
		t.Errorf("list:\n%s", list)
	}
	for cmd, want := range map[string]string{
		"stop db":         "stop: vm db is not running\n",
		"  stop nosuch  ": "stop: no VM \"nosuch\" (list shows them)\n",
		"frob":            "unknown command \"frob\" (help lists them)\n",
		"stop \x1b[2Jdb":  "refused: the line has control characters\n",
		"":                "",
		"dump":            "dump: printed on juice's serial console\n",
	} {
		if got := c.cmd(cmd); got != want {
			t.Errorf("%q: %q, want %q", cmd, got, want)
		}
	}
	if got := c.cmd("help"); !strings.Contains(got, "commands: list;") || !strings.HasSuffix(got, "quit ends this session\n") {
		t.Errorf("help: %q", got)
	}
	c.send("quit\n")
	if rest, ok := c.closed(); !ok || rest != "bye\n" {
		t.Errorf("after quit: %q, closed %v", rest, ok)
	}
}

// TestNetConsoleRefusals: a wrong token, a missing one (auth timeout), a
// line over the limit and a last line without its newline end the
// session without running anything; a fifth session is told busy while
// four are open, and a slot frees when one closes.
func TestNetConsoleRefusals(t *testing.T) {
	n, addr := testConsole(t, func(n *netConsole) { n.authTimeout = 300 * time.Millisecond })
	dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }

	c := dialConsole(t, dial)
	c.until(netGreeting)
	c.send(testToken + "x\n")
	if rest, ok := c.closed(); !ok || rest != netDenied {
		t.Errorf("wrong token: %q, closed %v", rest, ok)
	}
	c = dialConsole(t, dial)
	c.until(netGreeting)
	c.send(strings.TrimSuffix(testToken, "t")) // no newline: never complete
	if rest, ok := c.closed(); !ok || rest != "" {
		t.Errorf("silent client: %q, closed %v", rest, ok)
	}
	c = dialConsole(t, dial)
	c.until(netGreeting)
	c.send(testToken) // the token without its newline, then EOF
	c.conn.(*net.TCPConn).CloseWrite()
	if rest, ok := c.closed(); !ok || rest != "" {
		t.Errorf("token without newline: %q, closed %v", rest, ok)
	}
	c = dialConsole(t, dial)
	c.login(testToken)
	c.send("list " + strings.Repeat("x", netMaxLine) + "\n")
	// The rest of the long line is left unread: the close may reset the
	// connection after the message.
	if rest, _ := c.closed(); !strings.Contains(rest, "line longer than 256 bytes: closing") || strings.Contains(rest, "VM ") {
		t.Errorf("long line: %q", rest)
	}
	c = dialConsole(t, dial)
	c.login(testToken)
	if got := c.cmd("list " + strings.Repeat("x", netMaxLine-len("list "))); !strings.HasPrefix(got, "VM ") {
		t.Errorf("a line of exactly %d bytes: %q", netMaxLine, got)
	}

	// The sessions above end as their clients see them closed; the
	// last one is open.
	waitFor(t, "the closed sessions' slots", func() bool { return len(n.slots) == 1 })
	var open []*client
	for range netMaxConns - 1 {
		s := dialConsole(t, dial)
		s.login(testToken)
		open = append(open, s)
	}
	extra := dialConsole(t, dial)
	if rest, ok := extra.closed(); !ok || rest != netBusy {
		t.Errorf("session %d: %q, closed %v; want %q", netMaxConns+1, rest, ok, netBusy)
	}
	open[0].send("quit\n")
	open[0].closed()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s := dialConsole(t, dial)
		b, err := s.r.Peek(len(netGreeting))
		if err == nil && string(b) == netGreeting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a session quit: %q, %v", b, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNetConsoleToken: the token must match exactly.
func TestNetConsoleToken(t *testing.T) {
	n := newNetConsole(nil, testToken)
	for tok, want := range map[string]bool{
		testToken: true, testToken + " ": false, "": false, strings.ToUpper(testToken): false, testToken[1:]: false,
	} {
		if got := n.tokenOK(tok); got != want {
			t.Errorf("tokenOK(%q) = %v", tok, got)
		}
	}
}

// TestNetConsoleOverSwitch runs the console on juice's own TCP/IP stack
// on a virtual switch, as juice does, and a client on a second netstack
// port of the same switch: ARP, the TCP handshake, the token and a
// command cross the switch both ways.
func TestNetConsoleOverSwitch(t *testing.T) {
	sw := netswitch.New("lan")
	juiceMAC := netswitch.MAC{0x02, 0x6a, 0x75, 1, 2, 3}
	link, err := newSwitchLink(sw, juiceMAC, netip.MustParsePrefix("10.0.2.15/24"), netip.MustParseAddr("10.0.2.2"))
	if err != nil {
		t.Fatal(err)
	}
	if l2, err := newSwitchLink(sw, juiceMAC, netip.MustParsePrefix("10.0.2.16/24"), netip.Addr{}); err == nil || l2 != nil {
		t.Fatalf("a second port with the same MAC: %v", err)
	}
	ln, err := gonet.ListenTCP(link.st, tcpip.FullAddress{NIC: switchNIC, Addr: tcpip.AddrFrom4([4]byte{10, 0, 2, 15}), Port: 2323}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	in := newConsoleInput([]string{"web"})
	go newNetConsole(in, testToken).serve(ln)

	peer, err := newSwitchLink(sw, netswitch.MAC{0x52, 0x54, 0, 0, 0, 9}, netip.MustParsePrefix("10.0.2.9/24"), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialConsole(t, func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return gonet.DialContextTCP(ctx, peer.st, tcpip.FullAddress{NIC: switchNIC, Addr: tcpip.AddrFrom4([4]byte{10, 0, 2, 15}), Port: 2323}, ipv4.ProtocolNumber)
	})
	c.login(testToken)
	if got := c.cmd("list"); !strings.Contains(got, "web ") || !strings.Contains(got, "not started") {
		t.Errorf("list over the switch: %q", got)
	}
	c.send("quit\n")
	if rest, ok := c.closed(); !ok || rest != "bye\n" {
		t.Errorf("after quit: %q, closed %v", rest, ok)
	}
	if link.rxFrames.Load() == 0 || link.txFrames.Load() == 0 || link.rxDropped.Load() != 0 || link.txDropped.Load() != 0 {
		t.Errorf("juice's link: %s", link.stats())
	}
}

// TestSwitchLinkDeliver (frames from uplink_test.go's tcp4, checked with
// its tcpValid): the port's Deliver (a guest's exit path) copies
// frames for juice's MAC and broadcasts without allocating, ignores other
// addresses, completes a partial checksum, cuts a segmentation-offload
// packet into valid segments, and drops what does not fit once its
// slots are full.
func TestSwitchLinkDeliver(t *testing.T) {
	mac := netswitch.MAC{0x02, 0x6a, 0x75, 9, 9, 9}
	l := &switchLink{mac: mac, rx: make(chan struct{}, 1)}
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = byte(i)
	}
	f := tcp4(mac, 1, payload)
	csum := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	if v := l.deliver(f, csum); v != netswitch.Accepted || l.count != 1 || !tcpValid(l.slots[0][:l.lens[0]]) {
		t.Fatalf("partial checksum: %v, %d stored, valid %v", v, l.count, l.count == 1 && tcpValid(l.slots[0][:l.lens[0]]))
	}
	if tcpValid(f) {
		t.Fatal("the test frame's checksum was complete already")
	}
	other := tcp4(netswitch.MAC{0x52, 0x54, 0, 0, 0, 1}, 1, payload)
	if v := l.deliver(other, netswitch.Offload{}); v != netswitch.Accepted || l.count != 1 {
		t.Errorf("a frame for another MAC: %v, %d stored", v, l.count)
	}

	big := make([]byte, 3000)
	g := tcp4(mac, 1, big)
	gso := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: netswitch.GSOTCPv4, GSOSize: 1448, HdrLen: 54}
	if v := l.deliver(g, gso); v != netswitch.Accepted || l.count != 4 {
		t.Fatalf("GSO packet of 3000 bytes: %v, %d stored (want 1 + 3 segments)", v, l.count)
	}
	sum := 0
	for i := 1; i < 4; i++ {
		s := l.slots[i][:l.lens[i]]
		if !tcpValid(s) || len(s) > 1514 {
			t.Errorf("segment %d: %d bytes, valid %v", i, len(s), tcpValid(s))
		}
		sum += len(header.TCP(header.IPv4(s[14:]).Payload()).Payload())
	}
	if sum != len(big) {
		t.Errorf("the segments carry %d bytes, want %d", sum, len(big))
	}

	bcast := make([]byte, 60)
	copy(bcast, netswitch.Broadcast[:])
	allocs := testing.AllocsPerRun(100, func() {
		l.count = 0
		l.deliver(bcast, netswitch.Offload{})
		l.deliver(f, csum)
	})
	if allocs != 0 {
		t.Errorf("deliver allocates %.1f times per call pair", allocs)
	}
	l.count = switchRxSlots - 2
	if v := l.deliver(g, gso); v != netswitch.Dropped || l.count != switchRxSlots-2 {
		t.Errorf("GSO packet into 2 free slots: %v, %d stored", v, l.count)
	}
	l.count = switchRxSlots
	if v := l.deliver(bcast, netswitch.Offload{}); v != netswitch.Dropped || l.rxDropped.Load() != 2 {
		t.Errorf("full: %v, %d dropped", v, l.rxDropped.Load())
	}
	l.count = 0
	if v := l.deliver(make([]byte, switchFrameMax+1), netswitch.Offload{}); v != netswitch.Accepted {
		t.Errorf("a long frame for another address: %v", v) // zero MAC: not ours
	}
	long := make([]byte, switchFrameMax+1)
	copy(long, mac[:])
	if v := l.deliver(long, netswitch.Offload{}); v != netswitch.Dropped {
		t.Errorf("a frame of %d bytes: %v", len(long), v)
	}
}

// TestSwitchLinkPing: juice's stack answers an ICMP echo request that a
// guest sent with its checksum left to the receiver (deliver completes
// it), after resolving the sender's address with ARP over the switch.
func TestSwitchLinkPing(t *testing.T) {
	sw := netswitch.New("lan")
	juiceMAC := netswitch.MAC{0x02, 0x6a, 0x75, 1, 2, 3}
	if _, err := newSwitchLink(sw, juiceMAC, netip.MustParsePrefix("10.0.2.15/24"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	guestMAC := netswitch.MAC{0x52, 0x54, 0, 0, 0, 9}
	guestIP, juiceIP := []byte{10, 0, 2, 9}, []byte{10, 0, 2, 15}
	got := make(chan []byte, 16)
	guest := sw.Attach(guestMAC, true, func(f []byte) bool {
		select {
		case got <- append([]byte(nil), f...):
		default:
		}
		return true
	})

	f := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.ICMPv4MinimumSize+8)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(guestMAC[:]), DstAddr: tcpip.LinkAddress(juiceMAC[:]), Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
		SrcAddr: tcpip.AddrFromSlice(guestIP), DstAddr: tcpip.AddrFromSlice(juiceIP)})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(ip.Payload())
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(7)
	icmp.SetSequence(1)
	copy(icmp.Payload(), "juicejui")
	off := netswitch.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 2} // checksum field 0: the sum is the receiver's
	if v := guest.Transmit(f, off); v != netswitch.Accepted {
		t.Fatalf("sending the echo request: %v", v)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-got:
			eth := header.Ethernet(r)
			switch eth.Type() {
			case header.ARPProtocolNumber:
				a := header.ARP(r[header.EthernetMinimumSize:])
				if a.Op() != header.ARPRequest || string(a.ProtocolAddressTarget()) != string(guestIP) {
					continue
				}
				reply := make([]byte, header.EthernetMinimumSize+header.ARPSize)
				header.Ethernet(reply).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(guestMAC[:]), DstAddr: tcpip.LinkAddress(juiceMAC[:]), Type: header.ARPProtocolNumber})
				ra := header.ARP(reply[header.EthernetMinimumSize:])
				ra.SetIPv4OverEthernet()
				ra.SetOp(header.ARPReply)
				copy(ra.HardwareAddressSender(), guestMAC[:])
				copy(ra.ProtocolAddressSender(), guestIP)
				copy(ra.HardwareAddressTarget(), juiceMAC[:])
				copy(ra.ProtocolAddressTarget(), juiceIP)
				guest.Send(reply)
			case header.IPv4ProtocolNumber:
				rip := header.IPv4(r[header.EthernetMinimumSize:])
				ric := header.ICMPv4(rip.Payload())
				if rip.Protocol() != uint8(header.ICMPv4ProtocolNumber) || ric.Type() != header.ICMPv4EchoReply {
					t.Fatalf("juice sent %x", r)
				}
				if ric.Ident() != 7 || ric.Sequence() != 1 || string(ric.Payload()) != "juicejui" || !rip.IsChecksumValid() {
					t.Errorf("echo reply %x", r)
				}
				return
			}
		case <-timeout:
			t.Fatal("no echo reply")
		}
	}
}
