package main

// The network console: juice's command line (console.go's list, stop,
// start, restart, focus, dump, help) over TCP, only when the bundle's
// manifest has a "manage" section (bundle.ManifestManage). juice joins
// the section's network with a port of its own on the network's switch
// (its own MAC, 02:6a:75:... by default) and runs gVisor's netstack there
// (netconsole_link.go); reach it from outside through the network's
// uplink to a host NIC.
//
// The protocol is lines of text. juice greets with "juice management
// console" and asks for the token ("token: "); the client's first line
// must be the manifest's token (compared in constant time), else juice
// answers "denied" (after netDenyDelay) and closes. Then each line is one
// command; juice answers with the command's lines and the prompt
// "juice> ". "quit" ends the session. Every connection, refusal and
// command is logged on juice's serial console, and a VM stopped from the
// network says so ("stopped from juice's console over the network (from
// 10.0.2.2:40000)").
//
// A client cannot hurt juice: at most netMaxConns sessions at once (more
// are told "busy" and closed), lines of at most netMaxLine bytes (a
// longer one ends the session), control characters refused, the token
// due within netAuthTimeout, an idle session closed after netIdleTimeout,
// every write bounded by the same deadlines, TCP buffers of 64 KiB.
//
// There is no encryption: the token and the commands cross the network
// in clear text. Enable the console only on a management network that
// only administrators reach.

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"juice/vmm/bundle"
	"juice/vmm/netswitch"
)

// Network console limits.
const (
	netMaxConns    = 4
	netMaxLine     = 256
	netAuthTimeout = 10 * time.Second
	netIdleTimeout = 10 * time.Minute
	netDenyDelay   = time.Second
	// netBusyLogEvery bounds how often refusals of extra connections
	// are logged (a flood must not flood the serial console).
	netBusyLogEvery = 10 * time.Second
)

// Network console texts.
const (
	netGreeting = "juice management console\ntoken: "
	netPrompt   = "juice> "
	netDenied   = "denied\n"
	netBusy     = "busy: too many sessions\n"
)

// netConsole serves console commands to network clients.
type netConsole struct {
	input    *consoleInput
	tokenSum [sha256.Size]byte
	slots    chan struct{} // one per session

	authTimeout, idleTimeout, denyDelay time.Duration

	busy     atomic.Uint64 // connections refused for want of a slot
	lastBusy time.Time     // when a refusal was last logged (serve's goroutine)
}

// newNetConsole returns a console for input that accepts token.
func newNetConsole(input *consoleInput, token string) *netConsole {
	return &netConsole{input: input, tokenSum: sha256.Sum256([]byte(token)),
		slots:       make(chan struct{}, netMaxConns),
		authTimeout: netAuthTimeout, idleTimeout: netIdleTimeout, denyDelay: netDenyDelay}
}

// startNetConsole starts the network console m describes on its
// network's switch; nothing when m is nil (no manage section: no network
// console). Called by runBundle once every VM's devices exist.
func startNetConsole(m *bundle.ManageSpec, switches map[string]*netswitch.Switch, input *consoleInput) {
	if m == nil {
		return
	}
	sw := switches[m.Network]
	if sw == nil {
		log.Printf("juice: netconsole: network %s has no VM that could be built: no network console", m.Network)
		return
	}
	link, err := newSwitchLink(sw, netswitch.MAC(m.MAC), m.Address, m.Gateway)
	if err != nil {
		log.Printf("juice: netconsole: network %s: %v: no network console", m.Network, err)
		return
	}
	addr := tcpip.FullAddress{NIC: switchNIC, Addr: tcpip.AddrFrom4(m.Address.Addr().As4()), Port: m.Port}
	ln, err := gonet.ListenTCP(link.st, addr, ipv4.ProtocolNumber)
	if err != nil {
		log.Printf("juice: netconsole: network %s: %v: no network console", m.Network, err)
		return
	}
	gw := ""
	if m.Gateway.IsValid() {
		gw = ", gateway " + m.Gateway.String()
	}
	log.Printf("juice: netconsole: listening on %s port %d (network %s, MAC %s%s)",
		m.Address, m.Port, m.Network, formatMAC(m.MAC), gw)
	go newNetConsole(input, m.Token).serve(ln)
}

// serve accepts sessions until ln fails.
func (n *netConsole) serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Printf("juice: netconsole: %v: no more sessions", err)
			return
		}
		select {
		case n.slots <- struct{}{}:
			go func() {
				defer func() { <-n.slots }()
				n.session(conn)
			}()
		default:
			n.refuse(conn)
		}
	}
}

// refuse tells a client over the session limit so and closes it.
func (n *netConsole) refuse(conn net.Conn) {
	c := n.busy.Add(1)
	if now := time.Now(); now.Sub(n.lastBusy) >= netBusyLogEvery {
		n.lastBusy = now
		log.Printf("juice: netconsole: %s refused: %d sessions already (%d refused so far)", conn.RemoteAddr(), netMaxConns, c)
	}
	conn.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(conn, netBusy)
	conn.Close()
}

// errLineTooLong: a line over netMaxLine bytes.
var errLineTooLong = errors.New("line too long")

// readLine reads one line (without its "\n" or "\r\n") of at most
// netMaxLine bytes from r, whose buffer holds netMaxLine+2.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			err = io.ErrUnexpectedEOF // a last line without its newline is not run
		}
		return "", err
	}
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	if len(b) > netMaxLine {
		return "", errLineTooLong
	}
	return string(b), nil
}

// printable reports whether s holds only printable ASCII and tabs.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\t' {
			return false
		}
	}
	return true
}

// tokenOK compares a client's token with the manifest's in constant time
// (of the hashes, so that the length does not show either).
func (n *netConsole) tokenOK(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], n.tokenSum[:]) == 1
}

// session serves one client: the token, then commands until it quits,
// goes quiet, errs or breaks a limit.
func (n *netConsole) session(conn net.Conn) {
	defer conn.Close()
	peer := conn.RemoteAddr().String()
	r := bufio.NewReaderSize(conn, netMaxLine+2)
	write := func(s string) error {
		_, err := io.WriteString(conn, s)
		return err
	}
	conn.SetDeadline(time.Now().Add(n.authTimeout))
	if write(netGreeting) != nil {
		return
	}
	tok, err := readLine(r)
	if err != nil {
		log.Printf("juice: netconsole: %s: no token: %v", peer, readErr(err))
		return
	}
	if !n.tokenOK(tok) {
		log.Printf("juice: netconsole: %s: wrong token: refused", peer)
		time.Sleep(n.denyDelay) // slows guessing: netMaxConns tries per delay
		write(netDenied)
		return
	}
	log.Printf("juice: netconsole: %s: session opened", peer)
	via := "juice's console over the network (from " + peer + ")"
	for {
		conn.SetDeadline(time.Now().Add(n.idleTimeout))
		if write(netPrompt) != nil {
			log.Printf("juice: netconsole: %s: session closed (write failed)", peer)
			return
		}
		line, err := readLine(r)
		if errors.Is(err, errLineTooLong) {
			write(fmt.Sprintf("\nline longer than %d bytes: closing\n", netMaxLine))
		}
		if err != nil {
			log.Printf("juice: netconsole: %s: session closed: %v", peer, readErr(err))
			return
		}
		line = strings.TrimSpace(line)
		var out []string
		switch {
		case !printable(line):
			out = []string{"refused: the line has control characters"}
		case line == "quit" || line == "exit":
			write("bye\n")
			log.Printf("juice: netconsole: %s: session closed (quit)", peer)
			return
		case line != "":
			log.Printf("juice: netconsole: %s: %s", peer, line)
			out = n.input.command(line, via)
			if f := strings.Fields(line); f[0] == "help" || f[0] == "?" {
				out = append(out, "quit ends this session")
			}
		}
		for _, l := range out {
			if write(l+"\n") != nil {
				break
			}
		}
	}
}

// readErr describes why reading a line ended.
func readErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "the client closed it"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	return err.Error()
}
