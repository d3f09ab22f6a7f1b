package tests

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The e1000 uplink test is the uplink test (uplink_test.go) on an Intel
// NIC: QEMU gives the machine an e1000-class NIC on its user-mode network
// (launch.HostNIC's Model), juice drives it with juice/drivers/e1000 as
// eth0 and bridges network "wan" to it, and a JeOS guest on "wan" fetches
// a file over HTTP from a server on the host's loopback (10.0.2.2 to the
// guest), then sends it back to a second server on the host, so frames
// cross the NIC's receive and transmit rings by the thousand.

// e1000Sink accepts one connection on 127.0.0.1 and reports the MD5 and
// length of what it received.
type e1000Sink struct {
	ln  net.Listener
	got chan string // "MD5 LENGTH", or an error
}

func startE1000Sink(t *testing.T) *e1000Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &e1000Sink{ln: ln, got: make(chan string, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		h := md5.New()
		n, err := io.Copy(h, c)
		if err != nil {
			s.got <- err.Error()
			return
		}
		s.got <- fmt.Sprintf("%s %d", hex.EncodeToString(h.Sum(nil)), n)
	}()
	return s
}

// port is the sink's port on 127.0.0.1.
func (s *e1000Sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// e1000Cmdline is the guest's command line: uplinkCmdline's address,
// route and fetch (UPLINK-T0/T1 and UPLINK-MD5 markers), then the file
// sent back to the sink, then power off.
func e1000Cmdline(port, sinkPort int) string {
	cmd := strings.Join([]string{
		"ip route add default via " + launch.UserNetGateway,
		"echo GET /blob HTTP/1.0 > /tmp/req",
		"echo >> /tmp/req",
		"echo UPLINK-T0 $(cat /proc/uptime)",
		fmt.Sprintf("netcat -C %s %d < /tmp/req > /tmp/resp", launch.UserNetGateway, port),
		"echo UPLINK-T1 $(cat /proc/uptime)",
		fmt.Sprintf("dd if=/tmp/resp of=/tmp/blob bs=%d skip=1", uplinkHeaderLen),
		"echo UPLINK-MD5 $(md5sum /tmp/blob)",
		fmt.Sprintf("netcat %s %d < /tmp/blob", launch.UserNetGateway, sinkPort),
	}, " && ")
	return fmt.Sprintf(`console=ttyS0 jeos.ip=%s/%d jeos.exec="%s" %s`,
		launch.UserNetGuestIP, launch.UserNetPrefixLen, cmd, jeos.PoweroffArg)
}

// TestE1000Uplink: for QEMU's e1000 (82540EM) and e1000e (82574L), juice
// brings the NIC up as eth0 with the e1000 driver (its hostnic: line:
// model, the MAC QEMU gave it, read from receive address 0, link up),
// bridges network "wan" to it, and a JeOS guest on "wan" fetches 512 KiB
// of random bytes over HTTP from a server on the host (the MD5 it prints
// equals the server's, which answered one request) and sends them back
// to a sink on the host (the sink's MD5 and length equal the file's);
// the guest powers off and juice exits 0.
func TestE1000Uplink(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	for _, c := range []struct{ model, chip string }{
		{launch.NICE1000, "82540EM"},
		{launch.NICE1000E, "82574L"},
	} {
		t.Run(c.model, func(t *testing.T) {
			body, want := randomBody(uplinkKiB(t, 512))
			srv := startBlobServer(t, body)
			sink := startE1000Sink(t)
			vm := jeosVM(img, img.Vmlinux, e1000Cmdline(srv.port(), sink.port()))
			vm.Memory = uplinkVMMemory
			vm.Devices = &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "wan", Uplink: "eth0"}}}
			start := time.Now()
			r := BootVMs(t, launch.Config{Mem: "384M", Timeout: 3 * time.Minute, HostNIC: &launch.HostNIC{Model: c.model}}, vm)
			nicLine := r.Expect("hostnic: eth0 ")
			if wantNIC := " e1000, MAC " + launch.DefaultHostNICMAC + ", link up, MTU 1500, registers by MMIO, " +
				c.chip + ", MAC from RAL0, "; !strings.Contains(nicLine, wantNIC) {
				t.Errorf("hostnic line %q, want %q in it", nicLine, wantNIC)
			}
			r.Expect("juice: network wan: uplink eth0 (e1000, MAC " + launch.DefaultHostNICMAC + ", link up)")
			r.Expect("[jeos] " + jeos.ReadyMarker)
			r.ExpectMatch("the guest's MD5 of the file", contains("[jeos] UPLINK-MD5 "))
			r.ExpectNext("[jeos] JEOS-EXEC status=0")
			r.Expect(VMEnd("jeos") + "exited with status 0")
			r.ExpectExit(0)
			t.Logf("boot to power-off in %v", time.Since(start).Round(time.Second))

			got, secs := uplinkResult(r.Texts())
			if got != want {
				t.Errorf("the guest's MD5 %q, the server's %s", got, want)
			}
			if n := srv.requests.Load(); n != 1 {
				t.Errorf("the server answered %d requests, want 1", n)
			}
			select {
			case s := <-sink.got:
				if wantSink := fmt.Sprintf("%s %d", want, len(body)); s != wantSink {
					t.Errorf("the sink received %q, want %q (MD5, length)", s, wantSink)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("the sink received nothing")
			}
			if secs > 0 {
				t.Logf("guest-timed download: %d KiB in %.2f s (%.2f MiB/s)", len(body)>>10, secs, float64(len(body))/(1<<20)/secs)
			}
			for _, l := range r.Texts() {
				if strings.Contains(l, "uplink eth0: to the wire") {
					t.Log(l)
				}
			}
		})
	}
}
