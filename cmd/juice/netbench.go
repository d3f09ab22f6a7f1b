package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// `juice bench --net`: two JeOS guests move a TCP stream from one to the
// other, once on juice's virtual switch (both VMs under one juice, which
// runs them on its one CPU) and as two QEMU processes whose own
// virtio-net-pci devices are joined by QEMU's socket netdev (a TCP
// connection on localhost carrying the frames): once as the host
// schedules them, once both pinned to one host CPU (taskset), the CPU
// budget juice's two guests share. Same kernel, initramfs and commands
// every way.
//
// The sender writes the stream into a tmpfs file first and then serves it
// with netcat in listen mode (a plain copy: u-root's netcat rewrites every
// block it sends in connect mode). The receiver times the stream itself:
// it prints /proc/uptime, connects (retrying until the sender listens;
// each attempt prints a fresh start time), writes what it receives to a
// tmpfs file until the sender closes, and prints /proc/uptime again; then
// it counts the bytes it got with dd and tells the sender, on a second
// connection, that it may power off. Start and end are read on the same
// guest clock, so the figure is the receiver's wall time from the
// connection's start to its end (it includes starting netcat).

// Network-bench parameters.
const (
	// netBenchMiB is the default stream size.
	netBenchMiB      = 32
	netBenchSender   = "send"
	netBenchReceiver = "recv"
	netBenchSendIP   = "10.0.2.1"
	netBenchRecvIP   = "10.0.2.2"
	netBenchPort     = "5000"
	netBenchDonePort = "5001"
	// MACs of the two interfaces (the same under juice and on QEMU).
	netBenchSendMAC = "52:54:00:be:00:01"
	netBenchRecvMAC = "52:54:00:be:00:02"
)

// netBenchCommands returns the sender's and the receiver's jeos.exec
// commands for a stream of mib MiB.
func netBenchCommands(mib int) (send, recv string) {
	send = strings.Join([]string{
		fmt.Sprintf("dd if=/dev/zero of=/tmp/data bs=1048576 count=%d", mib),
		"netcat -l " + netBenchPort + " < /tmp/data > /dev/null",
		"netcat -l " + netBenchDonePort + " < /dev/null > /dev/null",
	}, " && ")
	recv = strings.Join([]string{
		"until cat /proc/uptime && netcat " + netBenchSendIP + " " + netBenchPort + " < /dev/null > /tmp/recv; do sleep 0.2; done",
		"cat /proc/uptime",
		"dd if=/tmp/recv of=/dev/null bs=1048576",
		"until netcat " + netBenchSendIP + " " + netBenchDonePort + " < /dev/null > /dev/null; do sleep 0.2; done",
	}, " && ")
	return send, recv
}

// netBenchCmdline is a guest's command line.
func netBenchCmdline(ip, command string) string {
	return `console=ttyS0 jeos.ip=` + ip + `/24 jeos.exec="` + command + `" ` + jeos.PoweroffArg
}

// uptimeLineRE is /proc/uptime as cat prints it (the guest prefix, if
// any, already removed).
var uptimeLineRE = regexp.MustCompile(`^([0-9]+\.[0-9]+) [0-9]+\.[0-9]+\s*$`)

// ddBytesRE is the byte count of u-root dd's summary line.
var ddBytesRE = regexp.MustCompile(`^([0-9]+) bytes \(.*\) copied`)

// execStatusRE is jeosinit's line after the guest's command.
var execStatusRE = regexp.MustCompile(`JEOS-EXEC status=(-?[0-9]+)`)

// netReceiverRate finds, in the receiver's console lines (prefix
// removed), the stream's timing: the last two uptime lines are its start
// and end, and dd's count of what arrived must be want bytes. It returns
// the MiB/s and the seconds.
func netReceiverRate(lines []string, want int64) (rate, secs float64, err error) {
	var ups []float64
	got := int64(-1)
	status := ""
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if m := uptimeLineRE.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			ups = append(ups, v)
		}
		if m := ddBytesRE.FindStringSubmatch(l); m != nil {
			got, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if m := execStatusRE.FindStringSubmatch(l); m != nil {
			status = m[1]
		}
	}
	switch {
	case status != "0":
		return 0, 0, fmt.Errorf("the receiver's command ended with status %q", status)
	case len(ups) < 2:
		return 0, 0, fmt.Errorf("the receiver printed %d uptime lines, want at least 2", len(ups))
	case got != want:
		return 0, 0, fmt.Errorf("the receiver got %d bytes, want %d", got, want)
	}
	secs = ups[len(ups)-1] - ups[len(ups)-2]
	if secs <= 0 {
		return 0, 0, fmt.Errorf("the stream took %.2f s by the receiver's clock", secs)
	}
	return float64(want) / (1 << 20) / secs, secs, nil
}

// guestLines returns the lines of VM name from juice's console, without
// their prefix.
func guestLines(texts []string, name string) []string {
	p := launch.GuestLinePrefix(name)
	var out []string
	for _, t := range texts {
		if s, ok := strings.CutPrefix(t, p); ok {
			out = append(out, s)
		}
	}
	return out
}

// netExecOK reports whether the guest's lines end its command with
// status 0.
func netExecOK(lines []string) bool {
	for _, l := range lines {
		if m := execStatusRE.FindStringSubmatch(l); m != nil {
			return m[1] == "0"
		}
	}
	return false
}

// freeTCPPort returns a localhost TCP port that was free a moment ago.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port, nil
}

// tcpListening reports whether something listens on localhost's port
// (read from /proc/net/tcp, so that no probe connection is made: QEMU's
// socket netdev would take a probe for its peer).
func tcpListening(port int) bool {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local_address rem_address st ...; st 0A is LISTEN.
		if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
			return true
		}
	}
	return false
}

// netRun is one run's figures.
type netRun struct {
	rate, secs float64
	// Juice runs: both VMs' counts, and per VM juice's report lines.
	counts                  juiceCounts
	byReason, times, virtio map[string]string
}

// netBenchJuice runs both guests under one juice.
func netBenchJuice(ctx context.Context, c jeosBenchConfig, bundlePath string, want int64) (netRun, string, bool) {
	r := netRun{byReason: map[string]string{}, times: map[string]string{}, virtio: map[string]string{}}
	m, err := launch.Start(ctx, launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: bundlePath, Timeout: c.timeout})
	if err != nil {
		return r, err.Error(), false
	}
	res := m.Wait()
	if res.Outcome == launch.Killed {
		return r, "", true
	}
	texts := m.Console.Texts()
	if !res.Exited() || res.Status != 0 {
		return r, fmt.Sprintf("juice did not end with status 0: %v%s", res, tail(texts)), false
	}
	if !netExecOK(guestLines(texts, netBenchSender)) {
		return r, "the sender's command failed" + tail(texts), false
	}
	r.rate, r.secs, err = netReceiverRate(guestLines(texts, netBenchReceiver), want)
	if err != nil {
		return r, err.Error() + tail(texts), false
	}
	names := []string{netBenchSender, netBenchReceiver}
	if r.counts, err = parseJuiceCounts(texts, names, "net"); err != nil {
		return r, err.Error(), false
	}
	for _, name := range names {
		r.byReason[name] = juiceVMLine(texts, name, exitsByReasonPrefix)
		r.times[name] = juiceVMLine(texts, name, guestTimePrefix)
		r.virtio[name] = juiceVMLine(texts, name, virtioPrefix)
	}
	return r, "", false
}

// tail is the last console lines, indented, for a failure message.
func tail(texts []string) string {
	var b strings.Builder
	for _, t := range texts[max(0, len(texts)-benchTail):] {
		b.WriteString("\n    " + t)
	}
	return b.String()
}

// netBenchDirect runs both guests as two QEMU processes joined by
// QEMU's socket netdev (a TCP connection on localhost carrying the
// frames), each with QEMU's own virtio-net-pci.
func netBenchDirect(ctx context.Context, c jeosBenchConfig, img jeos.Image, sendCmd, recvCmd string, want int64, qemu string) (netRun, string, bool) {
	var r netRun
	port, err := freeTCPPort()
	if err != nil {
		return r, err.Error(), false
	}
	nic := func(mode, mac string) []string {
		return []string{"-netdev", fmt.Sprintf("socket,id=n0,%s=127.0.0.1:%d", mode, port),
			"-device", "virtio-net-pci,netdev=n0,mac=" + mac}
	}
	cfg := func(cmdline string, extra []string) launch.Config {
		return launch.Config{Kernel: img.Vmlinux, Boot: launch.BootPVH, Mem: c.vmMem, Initrd: img.Initrd,
			Append: cmdline, NoDebugExit: true, Timeout: c.timeout, ExtraArgs: extra, QEMU: qemu}
	}
	ms, err := launch.Start(ctx, cfg(netBenchCmdline(netBenchSendIP, sendCmd), nic("listen", netBenchSendMAC)))
	if err != nil {
		return r, err.Error(), false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !tcpListening(port) {
		if time.Now().After(deadline) {
			ms.Kill()
			return r, fmt.Sprintf("QEMU's socket netdev does not listen on port %d", port), false
		}
		time.Sleep(20 * time.Millisecond)
	}
	mr, err := launch.Start(ctx, cfg(netBenchCmdline(netBenchRecvIP, recvCmd), nic("connect", netBenchRecvMAC)))
	if err != nil {
		ms.Kill()
		return r, err.Error(), false
	}
	resR := mr.Wait()
	resS := ms.Wait()
	if resR.Outcome == launch.Killed || resS.Outcome == launch.Killed {
		return r, "", true
	}
	if resS.QEMUCode != 0 || !netExecOK(ms.Console.Texts()) {
		return r, fmt.Sprintf("the sender failed: %v%s", resS, tail(ms.Console.Texts())), false
	}
	if resR.QEMUCode != 0 {
		return r, fmt.Sprintf("the receiver failed: %v%s", resR, tail(mr.Console.Texts())), false
	}
	r.rate, r.secs, err = netReceiverRate(mr.Console.Texts(), want)
	if err != nil {
		return r, err.Error() + tail(mr.Console.Texts()), false
	}
	return r, "", false
}

// cmdBenchNet implements `juice bench --net`: the stream under juice and
// directly on QEMU, alternately, c.runs times; it prints the receiver's
// MiB/s both ways and the ratio of the medians. Then one more juice run
// with an empty stream (the same boots, set-up and connections) gives the
// share of exits and notifications that is not the stream's: what the
// median run had beyond it, over the MiB moved, is printed per MiB.
func cmdBenchNet(c jeosBenchConfig, mib int, guest string, stdout, stderr io.Writer) int {
	var img jeos.Image
	var err error
	if guest != "" {
		f := strings.Fields(guest)
		if len(f) != 2 {
			fmt.Fprintf(stderr, "juice bench: --net-guest %q: want 'VMLINUX INITRD'\n", guest)
			return 2
		}
		img.Vmlinux, img.Initrd = f[0], f[1]
	} else if img, err = jeos.Build(jeos.Options{Dir: c.jeosDir, Log: stderr}); err != nil || img.Vmlinux == "" {
		fmt.Fprintln(stderr, "juice bench: JeOS image:", err, img.Notes)
		return 1
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	full, err := writeNetBundle(filepath.Join(dir, "full"), img, c.vmMem, mib)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	empty, err := writeNetBundle(filepath.Join(dir, "empty"), img, c.vmMem, 0)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	send, recv := netBenchCommands(mib)
	want := int64(mib) << 20
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench --net: %d runs; two JeOS guests (PVH, %s each); one sends %d MiB over TCP (netcat) to the other, timed by the receiver: under juice (virtio-net-pci on juice's switch, both VMs in one juice, -m %s) and directly on QEMU (two QEMU processes, virtio-net-pci joined by -netdev socket; as the host schedules them, and both on host CPU 0); QEMU TCG -cpu max\n",
		c.runs, c.vmMem, mib, c.mem)
	var jr, qr, q1 []float64
	var runs []netRun
	pinned := filepath.Join(dir, "qemu-one-cpu")
	if err := os.WriteFile(pinned, []byte("#!/bin/sh\nexec taskset -c 0 "+launch.DefaultQEMU+" \"$@\"\n"), 0o755); err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	status := 0
	for i := 1; i <= c.runs; i++ {
		n, problem, killed := netBenchJuice(ctx, c, full, want)
		if killed {
			return launch.ExitKilled
		}
		if problem != "" {
			fmt.Fprintf(stdout, "  run %d/%d under juice: FAILED: %s\n", i, c.runs, problem)
			status = 1
			continue
		}
		d, problem, killed := netBenchDirect(ctx, c, img, send, recv, want, "")
		if killed {
			return launch.ExitKilled
		}
		if problem != "" {
			fmt.Fprintf(stdout, "  run %d/%d direct: FAILED: %s\n", i, c.runs, problem)
			status = 1
			continue
		}
		d1, problem, killed := netBenchDirect(ctx, c, img, send, recv, want, pinned)
		if killed {
			return launch.ExitKilled
		}
		if problem != "" {
			fmt.Fprintf(stdout, "  run %d/%d direct on one host CPU: FAILED: %s\n", i, c.runs, problem)
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "  run %d/%d: %.2f MiB/s under juice (%.2f s; %d exits), %.2f MiB/s direct (%.2f s), %.2f MiB/s direct on one host CPU (%.2f s)\n",
			i, c.runs, n.rate, n.secs, n.counts.exits, d.rate, d.secs, d1.rate, d1.secs)
		jr, qr, q1 = append(jr, n.rate), append(qr, d.rate), append(q1, d1.rate)
		runs = append(runs, n)
	}
	if len(jr) == 0 {
		return status
	}
	a, _ := launch.Median(jr)
	b, _ := launch.Median(qr)
	b1, _ := launch.Median(q1)
	fmt.Fprintf(stdout, "  medians: %.2f MiB/s under juice vs %.2f MiB/s on QEMU's own virtio-net: %.2fx (receiver-timed, %d MiB); with both QEMUs on one host CPU %.2f MiB/s: %.2fx\n", a, b, a/b, mib, b1, a/b1)
	// The median run by throughput, against one run with nothing sent.
	med := runs[0]
	for _, r := range runs {
		if math.Abs(r.rate-a) < math.Abs(med.rate-a) {
			med = r
		}
	}
	base, problem, killed := netBenchJuice(ctx, c, empty, 0)
	if killed {
		return launch.ExitKilled
	}
	if problem != "" {
		fmt.Fprintf(stdout, "  run with an empty stream under juice: FAILED: %s\n", problem)
		return 1
	}
	fmt.Fprintf(stdout, "  per MiB moved under juice (both guests, the run at the median less one with an empty stream): %s\n",
		med.counts.perMiB(base.counts, float64(mib)))
	for _, name := range []string{netBenchSender, netBenchReceiver} {
		fmt.Fprintf(stdout, "  %s: exits by reason: %s\n  %s: time in guest entry %s\n  %s: virtio notifications: %s\n",
			name, med.byReason[name], name, med.times[name], name, med.virtio[name])
	}
	return status
}

// writeNetBundle writes, in directory d, the bundle of the two guests for
// a stream of mib MiB.
func writeNetBundle(d string, img jeos.Image, mem string, mib int) (string, error) {
	send, recv := netBenchCommands(mib)
	vm := func(name, ip, mac, command string) launch.VMSpec {
		return launch.VMSpec{Name: name, Kernel: img.Vmlinux, Cmdline: netBenchCmdline(ip, command),
			Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}}, Memory: mem,
			Devices: &bundle.ManifestDevices{Nets: []bundle.ManifestNet{{Network: "lan", MAC: mac}}}}
	}
	b, err := launch.BuildBundle([]launch.VMSpec{
		vm(netBenchSender, netBenchSendIP, netBenchSendMAC, send),
		vm(netBenchReceiver, netBenchRecvIP, netBenchRecvMAC, recv)})
	if err != nil {
		return "", err
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		return "", err
	}
	return launch.WriteBundle(d, b)
}
