package main

import (
	"bytes"
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
