package tests

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The uplink test bridges a bundle network to a host NIC: QEMU gives the
// machine a virtio-net-pci NIC on its user-mode network (launch.HostNIC),
// juice drives it (vnet0) and bridges network "wan" to it, and a JeOS
// guest on "wan" fetches a file over HTTP from a server the test runs on
// the host's loopback, which QEMU's user-mode network offers the guest
// as its gateway, 10.0.2.2.
//
// The JeOS image has no wget (u-root's needs modules juice's go.mod does
// not carry: pack.ag/tftp, github.com/cenkalti/backoff), so the guest
// speaks HTTP/1.0 with netcat; the server pads its response header to
// 512 bytes so that the guest's dd can cut it off.

// uplinkHeaderLen is the length of the server's response header.
const uplinkHeaderLen = 512

// uplinkKiB is the size of the file the guest fetches, in KiB: def
// unless JUICE_UPLINK_KIB says otherwise.
func uplinkKiB(t testing.TB, def int) int {
	if s := os.Getenv("JUICE_UPLINK_KIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1<<20 {
			t.Fatalf("JUICE_UPLINK_KIB=%q: want a number of KiB", s)
		}
		return n
	}
	return def
}

// randomBody returns kib KiB of random bytes and their MD5.
func randomBody(kib int) ([]byte, string) {
	body := make([]byte, kib<<10)
	rand.Read(body)
	sum := md5.Sum(body)
	return body, hex.EncodeToString(sum[:])
}

// blobServer serves body at GET /blob over HTTP/1.0 on 127.0.0.1 (a
// random port) until the test ends; it counts the requests it answered.
type blobServer struct {
	ln       net.Listener
	body     []byte
	requests atomic.Int32
	bad      atomic.Value // string: the first request it refused
}

func startBlobServer(t testing.TB, body []byte) *blobServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &blobServer{ln: ln, body: body}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

// header is the response header, padded to uplinkHeaderLen bytes.
func (s *blobServer) header() []byte {
	h := fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nX-Pad: ", len(s.body))
	pad := uplinkHeaderLen - len(h) - len("\r\n\r\n")
	return []byte(h + strings.Repeat("x", pad) + "\r\n\r\n")
}

func (s *blobServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	for { // the rest of the request header
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimRight(l, "\r\n") == "" {
			break
		}
	}
	if f := strings.Fields(line); len(f) != 3 || f[0] != "GET" || f[1] != "/blob" {
		s.bad.CompareAndSwap(nil, line)
		c.Write([]byte("HTTP/1.0 404 Not Found\r\n\r\n"))
		return
	}
	s.requests.Add(1)
	c.Write(s.header())
	c.Write(s.body)
}

// port is the server's port on 127.0.0.1.
func (s *blobServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

var (
	// uplinkSumRE is the guest's MD5 of the body it fetched (juice's
	// console tags the line with the VM's name, QEMU's does not).
	uplinkSumRE = regexp.MustCompile(`^(?:\[jeos\] )?UPLINK-MD5 ([0-9a-f]{32}) /tmp/blob\s*$`)
	// uplinkTimeRE is the guest's uptime before (T0) and after (T1) the
	// fetch.
	uplinkTimeRE = regexp.MustCompile(`^(?:\[jeos\] )?UPLINK-(T[01]) ([0-9]+\.[0-9]+) `)
)

// uplinkCmdline is the guest's command line: QEMU's user-mode network's
// usual address and route, then the fetch from the server on port (the
// guest's uptime before and after it, the MD5 of the body), then power
// off.
func uplinkCmdline(port int) string {
	fetch := strings.Join([]string{
		"ip route add default via " + launch.UserNetGateway,
		"echo GET /blob HTTP/1.0 > /tmp/req",
		"echo >> /tmp/req",
		"echo UPLINK-T0 $(cat /proc/uptime)",
		fmt.Sprintf("netcat -C %s %d < /tmp/req > /tmp/resp", launch.UserNetGateway, port),
		"echo UPLINK-T1 $(cat /proc/uptime)",
		fmt.Sprintf("dd if=/tmp/resp of=/tmp/blob bs=%d skip=1", uplinkHeaderLen),
		"echo UPLINK-MD5 $(md5sum /tmp/blob)",
	}, " && ")
	return fmt.Sprintf(`console=ttyS0 jeos.ip=%s/%d jeos.exec="%s" %s`,
		launch.UserNetGuestIP, launch.UserNetPrefixLen, fetch, jeos.PoweroffArg)
}

// uplinkResult reads the guest's MD5 and its timing of the fetch from
// its console; secs is 0 when the times are missing.
func uplinkResult(texts []string) (sum string, secs float64) {
	var t0, t1 float64
	for _, l := range texts {
		if m := uplinkSumRE.FindStringSubmatch(l); m != nil {
			sum = m[1]
		}
		if m := uplinkTimeRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			if m[1] == "T0" {
				t0 = v
			} else {
				t1 = v
			}
		}
	}
	if t0 > 0 && t1 > t0 {
		secs = t1 - t0
	}
	return sum, secs
}

// uplinkVM is the JeOS guest on network "wan", bridged to vnet0.
func uplinkVM(img jeos.Image, port int) launch.VMSpec {
	vm := jeosVM(img, img.Vmlinux, uplinkCmdline(port))
	vm.Memory = uplinkVMMemory
	vm.Devices = &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "wan", Uplink: "vnet0"}}}
	return vm
}

// uplinkVMMemory is the guest's RAM, under juice and directly on QEMU.
const uplinkVMMemory = "192M"

// TestUplinkDownload: juice brings QEMU's virtio-net NIC up as vnet0
// (its hostnic: line), bridges network "wan" to it, and a JeOS guest on
// "wan" (10.0.2.15/24, default route via 10.0.2.2) fetches 256 KiB of
// random bytes over HTTP from a server on the host's 127.0.0.1; the MD5
// the guest prints equals the server's, the server answered exactly one
// request, the guest powers off and juice exits 0. A second VM whose
// network names a host NIC the machine lacks (vnet1) is refused by name.
func TestUplinkDownload(t *testing.T) {
	img := JeOS(t)
	if img.Vmlinux == "" {
		t.Skip("no vmlinux")
	}
	body, want := randomBody(uplinkKiB(t, 256))
	srv := startBlobServer(t, body)
	vm := uplinkVM(img, srv.port())
	ghost := launch.VMSpec{Name: "ghost", Kernel: img.Vmlinux, Memory: "16M",
		Devices: &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "lan", Uplink: "vnet1"}}}}

	cfg := launch.Config{Mem: "384M", Timeout: 3 * time.Minute, HostNIC: &launch.HostNIC{}}
	if p := os.Getenv("JUICE_UPLINK_PCAP"); p != "" {
		// The NIC's traffic as QEMU sees it, for a packet analyser.
		cfg.ExtraArgs = []string{"-object", "filter-dump,id=dump,netdev=hostnic,file=" + p}
	}
	start := time.Now()
	r := BootVMs(t, cfg, vm, ghost)
	nicLine := r.Expect("hostnic: vnet0 ")
	if !strings.Contains(nicLine, " virtio-net, MAC "+launch.DefaultHostNICMAC+", link up, MTU 1500, ") {
		t.Errorf("hostnic line %q", nicLine)
	}
	r.Expect("juice: network wan: uplink vnet0 (virtio-net, MAC " + launch.DefaultHostNICMAC + ", link up)")
	r.Expect(VMEnd("ghost") + "network interface 0: uplink of network lan: no host NIC vnet1 (host NICs: vnet0)")
	r.Expect("[jeos] " + jeos.ReadyMarker)
	line := r.ExpectMatch("the guest's MD5 of the file", contains("[jeos] UPLINK-MD5 "))
	r.ExpectNext("[jeos] JEOS-EXEC status=0")
	r.Expect(VMEnd("jeos") + "exited with status 0")
	r.ExpectExit(0)
	t.Logf("boot to power-off in %v", time.Since(start).Round(time.Second))

	if m := uplinkSumRE.FindStringSubmatch(line); m == nil {
		t.Errorf("%q: want UPLINK-MD5 <md5> /tmp/blob", line)
	}
	got, secs := uplinkResult(r.Texts())
	if got != want {
		t.Errorf("the guest's MD5 %s, the server's %s", got, want)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("the server answered %d requests, want 1", n)
	}
	if b := srv.bad.Load(); b != nil {
		t.Errorf("the server refused request %q", b)
	}
	for _, l := range r.Texts() {
		if strings.Contains(l, "uplink vnet0: to the wire") || strings.HasPrefix(l, VMEnd("jeos")) && strings.Contains(l, "notifications per device") {
			t.Log(l)
		}
	}
	if secs > 0 {
		t.Logf("guest-timed download: %d KiB in %.2f s (%.2f MiB/s; see BenchmarkUplinkDownload for the comparison with QEMU)", len(body)>>10, secs, float64(len(body))/(1<<20)/secs)
	}
	for _, l := range r.Find(VMEnd("ghost")) {
		if strings.Contains(l, "starting") {
			t.Errorf("refused VM ghost started: %q", l)
		}
	}
}

// BenchmarkUplinkDownload measures the guest's download over the uplink
// side by side with the same guest directly on QEMU: each iteration
// fetches the same file (8 MiB unless JUICE_UPLINK_KIB says otherwise)
// from the server on the host's loopback once under juice (the guest's
// virtio-net on juice's switch, bridged to QEMU's virtio-net-pci NIC on
// its user-mode network) and once with the guest booted directly on QEMU
// (its own virtio-net-pci on the same kind of user-mode network), same
// kernel, initramfs, command line and guest RAM. The guest times the
// fetch (its uptime before and after netcat); the metrics are the medians
// in MiB/s and their ratio. Run: go test ./tests -run '^$' -bench
// UplinkDownload -benchtime 3x.
func BenchmarkUplinkDownload(b *testing.B) {
	img := JeOS(b)
	if img.Vmlinux == "" {
		b.Skip("no vmlinux")
	}
	RequireEmulators(b, launch.BootPVH)
	body, want := randomBody(uplinkKiB(b, 8<<10))
	srv := startBlobServer(b, body)
	mib := float64(len(body)) / (1 << 20)
	var underJuice, direct []float64
	for i := 0; i < b.N; i++ {
		r := BootVMs(b, launch.Config{Mem: "384M", Timeout: 5 * time.Minute, HostNIC: &launch.HostNIC{}}, uplinkVM(img, srv.port()))
		r.Expect(VMEnd("jeos") + "exited with status 0")
		r.ExpectExit(0)
		sum, secs := uplinkResult(r.Texts())
		if sum != want || secs == 0 {
			b.Fatalf("run %d under juice: MD5 %q (want %s), %.2f s", i, sum, want, secs)
		}
		underJuice = append(underJuice, mib/secs)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		m, err := launch.Start(ctx, launch.Config{Kernel: img.Vmlinux, Initrd: img.Initrd, Append: uplinkCmdline(srv.port()),
			Mem: uplinkVMMemory, NoDebugExit: true, Timeout: 4 * time.Minute, HostNIC: &launch.HostNIC{}})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		res := m.Wait()
		cancel()
		sum, secs = uplinkResult(m.Console.Texts())
		if res.QEMUCode != 0 || sum != want || secs == 0 {
			b.Fatalf("run %d directly on QEMU: %v, MD5 %q (want %s), %.2f s\n%s", i, res, sum, want, secs, m.Console)
		}
		direct = append(direct, mib/secs)
		b.Logf("run %d: %.0f KiB: juice %.2f MiB/s, QEMU %.2f MiB/s", i, mib*1024, underJuice[i], direct[i])
	}
	j, _ := launch.Median(underJuice)
	q, _ := launch.Median(direct)
	b.ReportMetric(j, "juice-MiB/s")
	b.ReportMetric(q, "qemu-MiB/s")
	b.ReportMetric(j/q, "juice/qemu")
	b.ReportMetric(0, "ns/op")
}
