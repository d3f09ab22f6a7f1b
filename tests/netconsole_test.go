package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The network console tests: juice's console commands over TCP
// (cmd/juice-kernel/netconsole.go), enabled by the manifest's "manage"
// section. QEMU gives the machine a virtio-net NIC on its user-mode
// network (launch.HostNIC); juice drives it (vnet0) and bridges network
// "lan" to it; with the manage section juice joins "lan" itself at
// 10.0.2.15 and listens on port 2323, and QEMU forwards a random port of
// the host's loopback there (hostfwd): the test's connections reach
// juice from 10.0.2.2.

// Network console settings of the tests.
const (
	ncAddr  = launch.UserNetGuestIP
	ncPort  = 2323
	ncToken = "juice-test-token-0123456789"
)

// ncBundle writes a bundle of two test guests: hello (on network lan,
// bridged to vnet0; it ends at once with status 0: the network and its
// uplink stay) and hog (computes forever until stopped), with manage as
// its manage section, and returns its path.
func ncBundle(t *testing.T, manage *bundle.ManifestManage) string {
	t.Helper()
	files := map[string][]byte{}
	for _, g := range []string{"hello", "hog"} {
		b, err := os.ReadFile(Guest(t, g))
		if err != nil {
			t.Fatal(err)
		}
		files[g+".elf"] = b
	}
	m := bundle.Manifest{
		VMs: []bundle.ManifestVM{
			{Name: "hello", Kernel: "hello.elf", Memory: vmMemory,
				Devices: &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "lan", Uplink: "vnet0"}}}},
			{Name: "hog", Kernel: "hog.elf", Memory: vmMemory},
		},
		Manage: manage,
	}
	arc, err := bundle.Build(m, files)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.cpio")
	if err := os.WriteFile(p, arc, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ncBoot boots juice with the bundle and a host NIC whose user-mode
// network forwards a free port of the host's loopback to juice's
// console address; it returns the run and that host address.
func ncBoot(t *testing.T, manage *bundle.ManifestManage) (*Run, string) {
	t.Helper()
	RequireEmulators(t, launch.BootPVH)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fwd := fmt.Sprintf("tcp:127.0.0.1:%d-%s:%d", port, ncAddr, ncPort)
	r := Boot(t, launch.Config{Mem: "160M", Initrd: ncBundle(t, manage), Timeout: 2 * time.Minute,
		HostNIC: &launch.HostNIC{HostFwd: []string{fwd}}})
	stopOnNoVMs(t, r)
	return r, fmt.Sprintf("127.0.0.1:%d", port)
}

// ncConn is a connection to the forwarded port.
type ncConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// ncDial connects to addr; the connection is closed when the test ends.
func ncDial(t *testing.T, addr string, deadline time.Duration) *ncConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(deadline))
	return &ncConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// until reads up to and including s; it fails the test if the
// connection ends or times out first.
func (c *ncConn) until(s string) string {
	c.t.Helper()
	var b strings.Builder
	for !strings.HasSuffix(b.String(), s) {
		ch, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatalf("waiting for %q from juice's network console, after %q: %v", s, b.String(), err)
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func (c *ncConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a command line and returns juice's answer (before the next
// prompt).
func (c *ncConn) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\n")
	return strings.TrimSuffix(c.until("juice> "), "juice> ")
}

// TestNetConsole: with the manage section juice listens on 10.0.2.15
// port 2323 on network lan (its "juice: netconsole: listening" line); a
// client connecting through QEMU's forwarded port is greeted and asked
// for the token; a wrong token is refused ("denied", and a line on the
// serial console); the right one opens a session whose `list` shows the
// bundle's VMs, hello exited and hog running; `stop hog` stops it, which
// the serial console reports as a stop from the network console naming
// the client (10.0.2.2, QEMU's side), the command logged beside it; and
// juice, its last VM stopped, exits with its first VM's status, hello's
// 0.
func TestNetConsole(t *testing.T) {
	start := time.Now()
	r, addr := ncBoot(t, &bundle.ManifestManage{Network: "lan", Address: fmt.Sprintf("%s/%d", ncAddr, launch.UserNetPrefixLen),
		Gateway: launch.UserNetGateway, Port: ncPort, Token: ncToken})
	r.Expect("juice: network lan: uplink vnet0 ")
	r.Expect(fmt.Sprintf("juice: netconsole: listening on %s/24 port %d (network lan, MAC 02:6a:75:", ncAddr, ncPort))
	r.Expect(GuestLine("hog", "hog start"))
	r.Expect(VMEnd("hello") + "exited with status 0")

	bad := ncDial(t, addr, 60*time.Second)
	bad.until("juice management console\ntoken: ")
	bad.send("not-the-token-0123456789\n")
	if rest, _ := io.ReadAll(bad.r); string(rest) != "denied\n" {
		t.Errorf("wrong token: juice answered %q, want %q", rest, "denied\n")
	}
	r.ExpectMatch("the refusal on the serial console", func(s string) bool {
		return strings.HasPrefix(s, "juice: netconsole: 10.0.2.2:") && strings.HasSuffix(s, ": wrong token: refused")
	})

	c := ncDial(t, addr, 60*time.Second)
	c.until("juice management console\ntoken: ")
	c.send(ncToken + "\n")
	c.until("juice> ")
	list := c.cmd("list")
	var hog string
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, "hog ") {
			hog = l
		}
	}
	if !strings.HasPrefix(list, "VM ") || !strings.Contains(list, "\nhello ") || !strings.Contains(list, "exited (status 0)") || !strings.Contains(hog, " running ") || !strings.Contains(hog, " 16 MiB ") {
		t.Fatalf("list over the network:\n%s", list)
	}
	if got := c.cmd("stop hog"); got != "vm hog: stopping\n" {
		t.Errorf("stop hog: juice answered %q", got)
	}
	r.ExpectMatch("the command on the serial console", func(s string) bool {
		return strings.HasPrefix(s, "juice: netconsole: 10.0.2.2:") && strings.HasSuffix(s, ": stop hog")
	})
	r.Expect(VMEnd("hog") + "stopped (killed): stopped from juice's console over the network (from 10.0.2.2:")
	r.ExpectExit(0)
	t.Logf("boot to exit in %v", time.Since(start).Round(time.Second))
}

// TestNetConsoleOff: the same machine and bundle without the manage
// section has no network console: juice prints no netconsole line, and a
// connection to the forwarded port (which QEMU accepts on the host side
// and tries to pass to 10.0.2.15:2323) never gets a byte from juice; hog
// still runs, and the run is then stopped.
func TestNetConsoleOff(t *testing.T) {
	r, addr := ncBoot(t, nil)
	r.Expect("juice: network lan: uplink vnet0 ")
	r.Expect(GuestLine("hog", "hog start"))
	c := ncDial(t, addr, 10*time.Second)
	b, err := c.r.ReadByte()
	var ne net.Error
	if err == nil || !(errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) ||
		strings.Contains(err.Error(), "reset")) {
		t.Errorf("the port answered without a manage section: byte %q, %v", b, err)
	}
	for _, l := range r.Texts() {
		if strings.Contains(l, "netconsole") {
			t.Errorf("juice without a manage section: %q", l)
		}
	}
	r.Kill()
}
