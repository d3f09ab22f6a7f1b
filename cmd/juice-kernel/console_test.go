package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestConsoleEscape: Ctrl-\ d asks for a dump and reaches no guest;
// Ctrl-\ Ctrl-\ sends one Ctrl-\; Ctrl-\ and another key send both; an
// escape split across two reads still works.
func TestConsoleEscape(t *testing.T) {
	for _, tc := range []struct {
		reads []string
		want  string
		dump  bool
		help  bool
	}{
		{[]string{"ls\r"}, "ls\r", false, false},
		{[]string{"a\x1cdb"}, "ab", true, false},
		{[]string{"\x1c\x1c"}, "\x1c", false, false},
		{[]string{"\x1cx"}, "\x1cx", false, false},
		{[]string{"a\x1c", "d", "b"}, "ab", true, false},
		{[]string{"\x1c?"}, "", false, true},
	} {
		c := newConsoleInput([]string{"a"})
		var got []byte
		var dump, help bool
		for _, r := range tc.reads {
			var out [512]byte
			m, a := c.filter([]byte(r), out[:0])
			got = append(got, m...)
			dump = dump || a.dump
			help = help || a.help
		}
		if !bytes.Equal(got, []byte(tc.want)) || dump != tc.dump || help != tc.help {
			t.Errorf("reads %q: guest got %q, dump=%v help=%v; want %q, dump=%v help=%v", tc.reads, got, dump, help, tc.want, tc.dump, tc.help)
		}
	}
}

// TestConsoleFocus: Ctrl-\ n walks the bundle's VMs in order and wraps;
// a VM that is not running offers only COM1 (no hvc0 to switch to).
func TestConsoleFocus(t *testing.T) {
	c := newConsoleInput([]string{"web", "db", "cache"})
	if got := c.focusName(); got != "vm web COM1 (ttyS0)" {
		t.Fatalf("initial focus %q", got)
	}
	var want = []string{"vm db COM1 (ttyS0)", "vm cache COM1 (ttyS0)", "vm web COM1 (ttyS0)"}
	for _, w := range want {
		var out [512]byte
		_, a := c.filter([]byte("\x1cn"), out[:0])
		if !a.moved {
			t.Fatal("Ctrl-\\ n did not move the focus")
		}
		if got := c.focusName(); got != w {
			t.Fatalf("focus %q, want %q", got, w)
		}
	}
	if got := newConsoleInput(nil).focusName(); got != "nowhere (no VM)" {
		t.Fatalf("empty bundle focus %q", got)
	}
}

// TestConsoleCommandLine: Ctrl-\ : opens juice's command line, whose keys
// never reach the guest; it echoes, erases, runs on Enter and is
// abandoned with Ctrl-C.
func TestConsoleCommandLine(t *testing.T) {
	c := newConsoleInput([]string{"web", "db"})
	var out [512]byte
	m, a := c.filter([]byte("x\x1c:lisz\x7ft\r"), out[:0])
	if string(m) != "x" {
		t.Fatalf("guest got %q", m)
	}
	if !a.run || a.line != "list" || string(a.echo) != "juice> lisz\b \bt\n" {
		t.Fatalf("run=%v line=%q echo=%q", a.run, a.line, a.echo)
	}
	m, a = c.filter([]byte("\x1c:stop web\x03y"), out[:0])
	if a.run || string(m) != "y" || !strings.HasSuffix(string(a.echo), "(cancelled)\n") {
		t.Fatalf("cancel: run=%v guest=%q echo=%q", a.run, m, a.echo)
	}
}

// TestConsoleCommands: list shows every VM of the bundle with its state;
// commands naming no VM, or a VM that is not running, say so; focus moves
// the input.
func TestConsoleCommands(t *testing.T) {
	c := newConsoleInput([]string{"web", "db"})
	c.describe("web", 256<<20, 2)
	c.describe("db", 64<<20, 1)
	c.ended("db", "exited (status 0)")
	l := c.command("list", serialConsole)
	if len(l) != 3 || !strings.HasPrefix(l[1], "web ") || !strings.Contains(l[1], "not started") ||
		!strings.Contains(l[1], "256 MiB") || !strings.Contains(l[2], "exited (status 0)") {
		t.Fatalf("list:\n%s", strings.Join(l, "\n"))
	}
	for cmd, want := range map[string]string{
		"stop nosuch":    `stop: no VM "nosuch"`,
		"restart db":     "restart: vm db is not running",
		"start db":       "start: not possible here",
		"frobnicate":     `unknown command "frobnicate"`,
		"focus db":       "console input goes to vm db COM1 (ttyS0)",
		"focus web tty9": "focus: port tty9 is not com1 or hvc",
	} {
		if got := c.command(cmd, serialConsole); len(got) != 1 || !strings.HasPrefix(got[0], want) {
			t.Errorf("%q: %q, want %q", cmd, got, want)
		}
	}
	started := ""
	c.setStart(func(name string) error { started = name; return nil })
	if got := c.command("start db", serialConsole); got[0] != "vm db: starting" || started != "db" {
		t.Errorf("start: %q, started %q", got, started)
	}
	c.active("web", true)
	if got := c.command("start web", serialConsole); got[0] != "start: vm web is running" {
		t.Errorf("start of a running VM: %q", got)
	}
}
