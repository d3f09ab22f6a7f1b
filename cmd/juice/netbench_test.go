package main

import (
	"strings"
	"testing"
)

// The receiver's stream is timed between the last two uptime lines (a
// failed connection attempt prints one more before the retry), and only
// when dd counted every byte and the command ended with status 0.
func TestNetReceiverRate(t *testing.T) {
	lines := []string{
		"JEOS-READY uptime=3.10 modules=19/19 devices=eth0",
		"20.00 1.00",
		"2026/11/26 19:17:07 error: connect mode: failed to establish connection: connection refused",
		"21.50 1.20",
		"2026/11/26 19:17:09 connected to 10.0.2.1:5000 [tcp4]",
		"25.50 2.00",
		"33554432 bytes (33.554 MB, 32.000 MiB) copied, 0.554 s, 60.570 MB/s",
		"JEOS-EXEC status=0",
	}
	rate, secs, err := netReceiverRate(lines, 32<<20)
	if err != nil || secs != 4 || rate != 8 {
		t.Errorf("rate %v MiB/s over %v s, err %v; want 8 MiB/s over 4 s", rate, secs, err)
	}
	if _, _, err := netReceiverRate(lines, 64<<20); err == nil || !strings.Contains(err.Error(), "33554432 bytes") {
		t.Errorf("short stream: err %v", err)
	}
	bad := append(append([]string{}, lines[:len(lines)-1]...), "JEOS-EXEC status=1")
	if _, _, err := netReceiverRate(bad, 32<<20); err == nil {
		t.Error("a failed command was timed")
	}
	if _, _, err := netReceiverRate(lines[5:], 32<<20); err == nil {
		t.Error("timed with one uptime line")
	}
}

// netBenchCommands: the sender serves the stream in listen mode and waits
// for the receiver's word; the receiver retries its connection and times
// it with uptime lines around it.
func TestNetBenchCommands(t *testing.T) {
	send, recv := netBenchCommands(32)
	for _, want := range []string{"count=32", "netcat -l 5000 < /tmp/data", "netcat -l 5001"} {
		if !strings.Contains(send, want) {
			t.Errorf("sender %q lacks %q", send, want)
		}
	}
	for _, want := range []string{"until cat /proc/uptime && netcat 10.0.2.1 5000", "cat /proc/uptime && dd if=/tmp/recv", "netcat 10.0.2.1 5001"} {
		if !strings.Contains(recv, want) {
			t.Errorf("receiver %q lacks %q", recv, want)
		}
	}
	if strings.Contains(send+recv, `"`) {
		t.Error("a command contains a double quote (it is quoted on the kernel command line)")
	}
}

// juice's report lines summed over VMs, less a baseline, per MiB.
func TestJuiceCountsPerMiB(t *testing.T) {
	texts := []string{
		"juice: vm send: exited with status 0: guest powered off (ACPI S5)",
		"juice: vm send: 1000 exits, 3 heap allocations by juice while it ran",
		"juice: vm send: exits by reason (count, time handling them; HLT's is idle time): io=600 (10 us) mmio=300 (5 us) hlt=100 (9 us)",
		"juice: vm send: notifications per device queue (driver kicks/device interrupts): net0 q0 1/20 q1 200/180 (frames sent 5, received 6; dropped sending 0, receiving 0); rng0 q0 7/7",
		"juice: vm recv: 500 exits, 3 heap allocations by juice while it ran",
		"juice: vm recv: exits by reason (count, time handling them; HLT's is idle time): io=400 (10 us) wrmsr=100 (1 us)",
		"juice: vm recv: notifications per device queue (driver kicks/device interrupts): net0 q0 10/30 q1 20/20 (frames sent 5, received 6; dropped sending 0, receiving 0)",
	}
	c, err := parseJuiceCounts(texts, []string{"send", "recv"}, "net")
	if err != nil {
		t.Fatal(err)
	}
	if c.exits != 1500 || c.kicks != 231 || c.irqs != 250 || c.byReason["io"] != 1000 || c.byReason["wrmsr"] != 100 {
		t.Errorf("counts %+v", c)
	}
	base := juiceCounts{exits: 1300, kicks: 31, irqs: 50, byReason: map[string]uint64{"io": 1000, "mmio": 100, "hlt": 110}}
	got := c.perMiB(base, 2)
	want := "100 exits (mmio 100, wrmsr 50, hlt -5), 100.0 virtio notifications from the drivers (kicks), 100.0 to them (interrupts)"
	if got != want {
		t.Errorf("perMiB:\n got %s\nwant %s", got, want)
	}
	if _, err := parseJuiceCounts(texts, []string{"other"}, "net"); err == nil {
		t.Error("a VM juice did not report was counted")
	}
}
