package tests

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The network test boots two JeOS guests on one manifest network: juice's
// virtual switch carries their Ethernet frames from one virtio-net
// interface to the other. jeosinit gives each guest its address
// (jeos.ip) and runs a shell command after its ready marker (jeos.exec).

// Addresses and port of the two guests on network "lan".
const (
	netServerIP = "10.0.2.1"
	netClientIP = "10.0.2.2"
	netPort     = "5000" // the stream, client to server
	netAckPort  = "5001" // the server's MD5 of it, back to the client
)

// netStreamKiB is the size of the stream the client sends, in KiB.
const netStreamKiB = "1024"

var (
	// pingReplyRE is a reply line of u-root's ping on the client's console.
	pingReplyRE = regexp.MustCompile(`^\[client\] [0-9]+ bytes from ` + regexp.QuoteMeta(netServerIP) + `: icmp_seq=([0-9]+) time=(\S+)`)
	// clientSumRE is md5sum's line for the client's file.
	clientSumRE = regexp.MustCompile(`^\[client\] ([0-9a-f]{32}) /tmp/data\s*$`)
	// serverSumRE is md5sum's line for the stream the server received.
	serverSumRE = regexp.MustCompile(`^\[server\] ([0-9a-f]{32}) /tmp/recv\s*$`)
	// ackSumRE is that line as the client received it from the server.
	ackSumRE = regexp.MustCompile(`^\[client\] ([0-9a-f]{32}) /tmp/recv\s*$`)
)

// TestVirtioNetTwoGuests: two guests on one switch reach each other: the
// client pings the server three times and gets every reply, then streams
// 1 MiB of random data to it over TCP; the MD5 the server computes of
// what it received equals the client's of what it sent, and comes back
// to the client intact over a second connection. Both guests' commands
// succeed and both power off, and juice exits with status 0.
func TestVirtioNetTwoGuests(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	lan := &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "lan"}}}
	guest := func(name, ip, command string) launch.VMSpec {
		vm := jeosVM(img, img.Vmlinux, `console=ttyS0 jeos.ip=`+ip+`/24 jeos.exec="`+command+`" `+jeos.PoweroffArg)
		vm.Name = name
		vm.Memory = "192M"
		vm.Devices = lan
		return vm
	}
	// The client streams its file to the server, which then sends the
	// MD5 of what it received back on a second connection: a sender
	// that powered off as soon as its data was in its socket buffer
	// could lose the end of it, so each side waits for the other. Either
	// side may come up first: connections are retried.
	server := guest("server", netServerIP, strings.Join([]string{
		"netcat -l " + netPort + " > /tmp/recv",
		"md5sum /tmp/recv > /tmp/sum",
		"cat /tmp/sum",
		"until netcat " + netClientIP + " " + netAckPort + " < /tmp/sum; do sleep 1; done",
	}, " && "))
	client := guest("client", netClientIP, strings.Join([]string{
		"sleep 1",
		"ping -c 3 -w 5000 " + netServerIP,
		"dd if=/dev/urandom of=/tmp/data bs=1024 count=" + netStreamKiB,
		"md5sum /tmp/data",
		"until netcat " + netServerIP + " " + netPort + " < /tmp/data; do sleep 1; done",
		"netcat -l " + netAckPort,
	}, " && "))
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "640M", Timeout: 4 * time.Minute}, server, client)

	r.ExpectMatch("the server's ready marker", contains("[server] "+jeos.ReadyMarker))
	r.ExpectMatch("the client's ready marker", contains("[client] "+jeos.ReadyMarker))
	clientDone := r.ExpectMatch("the client's command ending", contains("[client] JEOS-EXEC status="))
	serverDone := r.ExpectMatch("the server's command ending", contains("[server] JEOS-EXEC status="))
	r.ExpectMatch("the server powering off", contains("juice: vm server: exited with status 0"))
	r.ExpectMatch("the client powering off", contains("juice: vm client: exited with status 0"))
	r.ExpectExit(0)
	t.Logf("both guests done in %v", time.Since(start).Round(time.Second))

	var seqs []string
	var clientSum, serverSum, ackSum string
	for _, l := range r.Texts() {
		if m := pingReplyRE.FindStringSubmatch(l); m != nil {
			seqs = append(seqs, m[1])
			t.Logf("ping reply: icmp_seq=%s time=%s", m[1], m[2])
		}
		if m := clientSumRE.FindStringSubmatch(l); m != nil {
			clientSum = m[1]
		}
		if m := serverSumRE.FindStringSubmatch(l); m != nil {
			serverSum = m[1]
		}
		if m := ackSumRE.FindStringSubmatch(l); m != nil {
			ackSum = m[1]
		}
	}
	if got := strings.Join(seqs, ","); got != "1,2,3" {
		t.Errorf("ping replies for icmp_seq %q, want 1,2,3", got)
	}
	if clientSum == "" || clientSum != serverSum || serverSum != ackSum {
		t.Errorf("MD5 sent %q, received %q, reported back %q: want all equal", clientSum, serverSum, ackSum)
	} else {
		t.Logf("MD5 of the %s KiB stream: %s on both guests", netStreamKiB, clientSum)
	}
	for _, l := range []string{clientDone, serverDone} {
		if !strings.HasSuffix(strings.TrimSpace(l), "JEOS-EXEC status=0") {
			t.Errorf("%q: want status 0", l)
		}
	}
}
