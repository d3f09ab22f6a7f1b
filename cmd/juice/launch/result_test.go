package launch

import "testing"

func TestDebugExitCode(t *testing.T) {
	for _, c := range []struct{ v, code int }{{0, 1}, {1, 3}, {5, 11}, {127, 255}, {128, 1}} {
		if got := DebugExitCode(c.v); got != c.code {
			t.Errorf("DebugExitCode(%d) = %d, want %d", c.v, got, c.code)
		}
	}
}

func TestPowerOffStatus(t *testing.T) {
	texts := []string{"juice: power off, status 3", "x", "juice: power off, status 127", "tail"}
	if n, ok := PowerOffStatus(texts); !ok || n != 127 {
		t.Errorf("PowerOffStatus = %d, %v; want the last line's 127", n, ok)
	}
	if _, ok := PowerOffStatus([]string{"juice: power off", "juice: power off, status x"}); ok {
		t.Error("PowerOffStatus matched a line without a number")
	}
	if _, ok := PowerOffStatus([]string{"xjuice: power off, status 1"}); ok {
		t.Error("PowerOffStatus matched text not at the start")
	}
}

func TestClassify(t *testing.T) {
	banner := []string{"SeaBIOS", "juice: booted by pvh"}
	off := func(n string) []string {
		return append(append([]string(nil), banner...), "juice: power off, status "+n)
	}
	cases := []struct {
		name    string
		code    int
		texts   []string
		outcome Outcome
		status  int
		exit    int
	}{
		{"debug-exit 0", 1, off("0"), DebugExit, 0, 0},
		{"debug-exit 0 without announcement", 1, banner, DebugExit, 0, 0},
		{"debug-exit 1", 3, off("1"), DebugExit, 1, 1},
		{"panic poweroff", 255, off("127"), DebugExit, 127, 127},
		{"debug-exit beyond 7 bits", 1, off("128"), DebugExit, 128, 128},
		{"announced status disagrees with port", 5, off("7"), DebugExit, 2, 2},
		{"power off by ACPI", 0, off("4"), PowerOff, 4, 4},
		{"reset or triple fault", 0, banner, Reset, 0, ExitReset},
		{"qemu error, no output", 1, nil, QEMUFailed, 0, ExitQEMUFailed},
		{"qemu error, blank output", 1, []string{"", "  "}, QEMUFailed, 0, ExitQEMUFailed},
		{"even code", 2, banner, QEMUFailed, 0, ExitQEMUFailed},
		{"signal", -1, banner, Killed, 0, ExitKilled},
		{"monitor quit", 0, append(off("0"), "QEMU: Terminated", ""), Killed, 0, ExitKilled},
		{"monitor text earlier", 0, append([]string{"QEMU: Terminated"}, banner...), Reset, 0, ExitReset},
	}
	for _, c := range cases {
		r := Classify(c.code, c.texts, "stderr text")
		if r.Outcome != c.outcome || r.Status != c.status || r.ExitCode() != c.exit {
			t.Errorf("%s: Classify(%d) = %v status %d exit %d; want %v status %d exit %d",
				c.name, c.code, r.Outcome, r.Status, r.ExitCode(), c.outcome, c.status, c.exit)
		}
		if r.QEMUCode != c.code || r.Stderr != "stderr text" {
			t.Errorf("%s: QEMUCode/Stderr not kept: %+v", c.name, r)
		}
		if r.String() == "" || r.Outcome.String() == "" {
			t.Errorf("%s: empty description", c.name)
		}
		if got := r.Exited(); got != (c.outcome == DebugExit || c.outcome == PowerOff) {
			t.Errorf("%s: Exited = %v", c.name, got)
		}
	}
	for _, c := range []struct {
		o    Outcome
		exit int
	}{{TimedOut, ExitTimeout}, {Killed, ExitKilled}, {Reset, ExitReset}} {
		if got := (Result{Outcome: c.o, Status: 9}).ExitCode(); got != c.exit {
			t.Errorf("ExitCode(%v) = %d, want %d", c.o, got, c.exit)
		}
	}
}
