package devices

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"juice/vmm"
)

var (
	_ vmm.PortDevice = (*UART)(nil)
	_ vmm.PortDevice = (*ExitPort)(nil)
)

// recWriter records each Write call separately.
type recWriter struct {
	writes []string
	err    error
}

func (r *recWriter) Write(b []byte) (int, error) {
	r.writes = append(r.writes, string(b))
	return len(b), r.err
}

func (r *recWriter) all() string { return strings.Join(r.writes, "") }

// op is one port access in a UART script: out writes v; in expects v.
type op struct {
	out  bool
	off  uint16
	size uint8
	v    uint32
}

func out(off uint16, v uint32) op  { return op{true, off, 1, v} }
func in(off uint16, v uint32) op   { return op{false, off, 1, v} }
func in2(off uint16, v uint32) op  { return op{false, off, 2, v} }
func out2(off uint16, v uint32) op { return op{true, off, 2, v} }

func TestUARTRegisters(t *testing.T) {
	cases := []struct {
		name   string
		ops    []op
		output []string
	}{
		{"reset state", []op{in(0, 0), in(1, 0), in(2, 0x01), in(3, 0x03), in(4, 0), in(5, 0x60), in(6, 0xb0), in(7, 0)}, nil},
		{"scratch", []op{out(7, 0x5a), in(7, 0x5a), out(7, 0xa5), in(7, 0xa5)}, nil},
		{"divisor latch", []op{out(3, 0x83), out(0, 0x0c), out(1, 0x00), in(0, 0x0c), in(1, 0), out(3, 0x03), in(0, 0), in(1, 0)}, nil},
		{"ier masks to 4 bits", []op{out(1, 0xff), in(1, 0x0f), out(3, 0x80), in(1, 0), out(3, 0), in(1, 0x0f)}, nil},
		{"fifo enable shows in iir", []op{out(2, 0xc7), in(2, 0xc1), out(2, 0), in(2, 0x01)}, nil},
		{"ier thri raises once", []op{out(1, 0x02), in(2, 0x02), in(2, 0x01), in(5, 0x60)}, nil},
		{"lsr and msr read-only", []op{out(5, 0), in(5, 0x60), out(6, 0), in(6, 0xb0)}, nil},
		{"mcr masks to 5 bits", []op{out(4, 0xff), in(4, 0x1f)}, nil},
		{"loopback drives msr", []op{out(4, 0x1a), in(6, 0x92), out(4, 0x1f), in(6, 0xf2), out(4, 0x10), in(6, 0x0f), in(6, 0x00)}, nil},
		{"loopback keeps data off the line", []op{out(4, 0x10), out(0, 'x'), out(0, '\n'), out(4, 0), out(0, 'y'), out(0, '\n')}, []string{"y\n"}},
		{"thr writes lines", []op{out(0, 'h'), out(0, 'i'), out(0, '\n'), out(0, '!'), out(0, '\n')}, []string{"hi\n", "!\n"}},
		{"dlab hides thr", []op{out(3, 0x80), out(0, 'x'), out(3, 0), out(0, '\n')}, []string{"\n"}},
		{"wide access splits", []op{out2(7, 0x1234), in(7, 0x34), out2(3, 0x0b03), in2(3, 0x0b03), in2(7, 0xff34)}, nil},
		{"outside the uart", []op{in(8, 0xff), out(8, 1), in(0xffff, 0xff), out(0xffff, 0)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &recWriter{}
			u := NewUART(w)
			for i, o := range c.ops {
				if o.out {
					u.Out(o.off, o.size, o.v)
				} else if got := u.In(o.off, o.size); got != o.v {
					t.Fatalf("op %d: In(+%d, %d) = %#x, want %#x", i, o.off, o.size, got, o.v)
				}
			}
			if strings.Join(w.writes, "|") != strings.Join(c.output, "|") {
				t.Errorf("writes = %q, want %q", w.writes, c.output)
			}
		})
	}
}

func TestUARTBufferAndFlush(t *testing.T) {
	w := &recWriter{}
	u := NewUART(w)
	long := strings.Repeat("a", uartLine+10)
	for _, b := range []byte(long) {
		u.Out(0, 1, uint32(b))
	}
	if len(w.writes) != 1 || len(w.writes[0]) != uartLine {
		t.Fatalf("writes after %d bytes: %d (first %d bytes), want one full buffer", len(long), len(w.writes), len(w.all()))
	}
	if err := u.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.all() != long || len(w.writes) != 2 {
		t.Errorf("after Flush: %d writes, %d bytes", len(w.writes), len(w.all()))
	}
	if err := u.Flush(); err != nil || len(w.writes) != 2 {
		t.Errorf("empty Flush wrote: %v %d", err, len(w.writes))
	}
	// A failing writer does not disturb the guest.
	w.err = errors.New("console gone")
	u.Out(0, 1, '\n')
	if u.In(5, 1) != 0x60 {
		t.Error("LSR changed after a write error")
	}
}

func TestUARTOutNoAlloc(t *testing.T) {
	d := &discard{}
	u := NewUART(d)
	n := testing.AllocsPerRun(1000, func() {
		u.Out(0, 1, 'x') // fills and flushes every 256 bytes
		u.In(5, 1)
	})
	if d.n != 1001/uartLine*uartLine {
		t.Errorf("writer got %d bytes", d.n)
	}
	if n != 0 {
		t.Errorf("UART Out/In allocate %v times per run", n)
	}
}

func TestPrefixWriter(t *testing.T) {
	w := &recWriter{}
	p := PrefixWriter("[web] ", w)
	p.Write([]byte("hello "))
	p.Write([]byte("world\nsecond line\nthi"))
	p.Write([]byte("rd\n"))
	want := []string{"[web] hello world\n", "[web] second line\n", "[web] third\n"}
	if strings.Join(w.writes, "|") != strings.Join(want, "|") {
		t.Errorf("writes = %q, want %q", w.writes, want)
	}
	p.Write([]byte("tail"))
	if len(w.writes) != 3 {
		t.Error("partial line written before its newline")
	}
	if err := p.(interface{ Flush() error }).Flush(); err != nil {
		t.Fatal(err)
	}
	if w.writes[3] != "[web] tail\n" {
		t.Errorf("Flush wrote %q", w.writes[3])
	}

	// An endless line is broken at MaxPrefixLine.
	w = &recWriter{}
	p = PrefixWriter("> ", w)
	n, err := p.Write(bytes.Repeat([]byte{'z'}, MaxPrefixLine*2+5))
	if n != MaxPrefixLine*2+5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(w.writes) != 2 || w.writes[0] != "> "+strings.Repeat("z", MaxPrefixLine)+"\n" {
		t.Errorf("long line: %d writes", len(w.writes))
	}

	// UART through PrefixWriter: UART.Flush reaches the held line.
	w = &recWriter{}
	u := NewUART(PrefixWriter("[a] ", w))
	for _, b := range []byte("x\ny") {
		u.Out(0, 1, uint32(b))
	}
	u.Flush()
	if strings.Join(w.writes, "|") != "[a] x\n|[a] y\n" {
		t.Errorf("UART+prefix writes = %q", w.writes)
	}
}

func TestPrefixWriterNoAllocSteadyState(t *testing.T) {
	line := []byte("a console line\n")
	d := &discard{}
	p := PrefixWriter("[vm] ", d)
	p.Write(line)
	if n := testing.AllocsPerRun(100, func() { p.Write(line) }); n != 0 {
		t.Errorf("PrefixWriter allocates %v per line", n)
	}
	// One line before, one warm-up run and 100 measured runs.
	if d.n != 102*len("[vm] a console line\n") {
		t.Errorf("wrote %d bytes", d.n)
	}
}

type discard struct{ n int }

func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

func TestExitPort(t *testing.T) {
	var codes []int
	e := NewExitPort(func(c int) { codes = append(codes, c) })
	for _, c := range []struct {
		off  uint16
		size uint8
		in   uint32
	}{{0, 1, 0xff}, {0, 2, 0xffff}, {0, 4, 0xffffffff}, {3, 1, 0xff}} {
		if got := e.In(c.off, c.size); got != c.in {
			t.Errorf("In(%d, %d) = %#x, want %#x", c.off, c.size, got, c.in)
		}
	}
	e.Out(0, 1, 0x1234)
	e.Out(0, 2, 0x12345678)
	e.Out(0, 4, 0x7fffffff)
	e.Out(1, 1, 9) // not the base
	e.Out(0, 3, 9) // not a valid size
	want := []int{0x34, 0x5678, 0x7fffffff}
	if len(codes) != len(want) || codes[0] != want[0] || codes[1] != want[1] || codes[2] != want[2] {
		t.Errorf("stop codes = %#x, want %#x", codes, want)
	}
	NewExitPort(nil).Out(0, 1, 1) // no stop function: ignored
}

// TestConsolePartialLines: a quiet stream's partial line (a prompt) is
// shown unterminated and continued by its next bytes; another stream or
// juice's own message ends it first, and its rest then starts a prefixed
// line; a stream still writing is not flushed.
func TestConsolePartialLines(t *testing.T) {
	w := &recWriter{}
	c := NewConsole(w)
	clock := time.Unix(0, 0)
	c.now = func() time.Time { return clock }
	a, b := c.Stream("[a] "), c.Stream("[b] ")
	if c.Stream("[a] ") != a {
		t.Fatal("a second Stream call with the same prefix made a new stream")
	}
	a.Write([]byte("$ "))
	c.FlushIdle(50 * time.Millisecond)
	if len(w.writes) != 0 {
		t.Fatalf("flushed a stream that just wrote: %q", w.writes)
	}
	clock = clock.Add(60 * time.Millisecond)
	c.FlushIdle(50 * time.Millisecond)
	a.Write([]byte("ls"))
	clock = clock.Add(60 * time.Millisecond)
	c.FlushIdle(50 * time.Millisecond)
	a.Write([]byte("\nbin\n"))
	want := []string{"[a] $ ", "ls", "\n", "[a] bin\n"}
	if strings.Join(w.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", w.writes, want)
	}

	// Another stream interrupts an open line; the rest is re-prefixed.
	w.writes = nil
	a.Write([]byte("$ "))
	clock = clock.Add(60 * time.Millisecond)
	c.FlushIdle(50 * time.Millisecond)
	b.Write([]byte("boot\n"))
	a.Write([]byte("cat\n"))
	c.Raw().Write([]byte("juice: hello\n"))
	a.Write([]byte("x"))
	clock = clock.Add(60 * time.Millisecond)
	c.FlushIdle(50 * time.Millisecond)
	c.Raw().Write([]byte("juice: bye\n"))
	want = []string{"[a] $ ", "\n", "[b] boot\n", "[a] cat\n", "juice: hello\n", "[a] x", "\n", "juice: bye\n"}
	if strings.Join(w.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", w.writes, want)
	}

	// Flush ends an open line that has nothing more held.
	w.writes = nil
	a.Write([]byte("y"))
	clock = clock.Add(60 * time.Millisecond)
	c.FlushIdle(50 * time.Millisecond)
	a.Flush()
	if strings.Join(w.writes, "|") != "[a] y|\n" {
		t.Fatalf("writes %q", w.writes)
	}
}
