package launch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClean(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"line\r", "line"},
		{"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r", "SeaBIOS (version 1.16.2)"},
		{"\x1b[0;30;47mWelcome to GRUB!\r", "Welcome to GRUB!"},
		{"\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading", "BdsDxe: loading"},
		{"trailing escape \x1b", "trailing escape "},
		{"unterminated csi \x1b[12", "unterminated csi "},
	}
	for _, c := range cases {
		if got := Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStripTimestamp(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"[    0.000000] juice: booted by pvh", "juice: booted by pvh", true},
		{"[   12.345678] boot: entry to main 12.345 ms", "boot: entry to main 12.345 ms", true},
		{"[123456.000001] wide", "wide", true},
		{"[    1.000000]", "", true},
		// Firmware text before the first juice line, no newline between.
		{"Booting from ROM..[    0.000000] juice: booted by pvh", "juice: booted by pvh", true},
		// The first timestamp counts; later brackets are text.
		{"[    0.1234567] x", "[    0.1234567] x", false},
		{"[    0.000001] a [    0.000002] b", "a [    0.000002] b", true},
		{"no timestamp here", "no timestamp here", false},
		{"[    0.12345] five decimals", "[    0.12345] five decimals", false},
		{"[ x.000000] not a number", "[ x.000000] not a number", false},
	}
	for _, c := range cases {
		got, ok := StripTimestamp(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("StripTimestamp(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if got := Text("\x1b[0m[    0.000100] juice: fatal: x\r"); got != "juice: fatal: x" {
		t.Errorf("Text = %q", got)
	}
}

func TestConsoleLines(t *testing.T) {
	c := NewConsole()
	if !c.Empty() {
		t.Fatal("new console not empty")
	}
	c.Write([]byte("first\r\nsec"))
	c.Write([]byte("ond\n[    0.000001] thi"))
	if got := c.Lines(); strings.Join(got, "|") != "first\r|second|[    0.000001] thi" {
		t.Fatalf("Lines = %q", got)
	}
	if got := c.Texts(); strings.Join(got, "|") != "first|second|thi" {
		t.Fatalf("Texts = %q", got)
	}
	if c.Empty() {
		t.Fatal("console empty after writes")
	}
	c.Close()
	c.Close()
	if got := c.Lines(); len(got) != 3 || got[2] != "[    0.000001] thi" {
		t.Fatalf("Lines after Close = %q", got)
	}
	if got := string(c.Raw()); got != "first\r\nsecond\n[    0.000001] thi" {
		t.Fatalf("Raw = %q", got)
	}
	if got := c.String(); got != "first\nsecond\n[    0.000001] thi\n" {
		t.Fatalf("String = %q", got)
	}
}

func TestConsoleWait(t *testing.T) {
	c := NewConsole()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type res struct {
		l   Line
		err error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := c.Wait(ctx, 0, HasPrefix("selftest: done"))
		ch <- res{l, err}
	}()
	c.Write([]byte("[    0.000001] selftest: gc ok\n"))
	// A half-written line must not match yet.
	c.Write([]byte("[    0.000002] selftest: done in 1"))
	select {
	case r := <-ch:
		t.Fatalf("Wait returned early: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	c.Write([]byte(" ms, 1 passed, 0 failed\n"))
	r := <-ch
	if r.err != nil || r.l.Index != 1 || r.l.Text != "selftest: done in 1 ms, 1 passed, 0 failed" {
		t.Fatalf("Wait = %+v, %v", r.l, r.err)
	}

	// Searching from a later index skips earlier lines.
	c.Write([]byte("[    0.000003] selftest: gc ok\n"))
	l, err := c.Wait(ctx, 2, HasPrefix("selftest: gc"))
	if err != nil || l.Index != 2 {
		t.Fatalf("Wait from 2 = %+v, %v", l, err)
	}

	// A deadline ends the wait.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := c.Wait(short, 0, HasPrefix("never")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past deadline: err = %v", err)
	}

	// An unterminated last line is matched once the console closes, and
	// a missing line then gives ErrConsoleClosed.
	c.Write([]byte("[    0.000004] juice: fatal: unknown boot loader"))
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}()
	l, err = c.Wait(ctx, 0, HasPrefix("juice: fatal: "))
	if err != nil || l.Text != "juice: fatal: unknown boot loader" {
		t.Fatalf("Wait for unterminated line = %+v, %v", l, err)
	}
	if _, err := c.Wait(ctx, 0, HasPrefix("never")); !errors.Is(err, ErrConsoleClosed) {
		t.Fatalf("Wait on closed console: err = %v", err)
	}
}
