package devices

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Register offsets, as the guest sees them.
const (
	tRBR = 0
	tIER = 1
	tIIR = 2 // FCR on write
	tLCR = 3
	tMCR = 4
	tLSR = 5
	tMSR = 6
)

// uStep is one step of a UART script.
type uStep struct {
	kind byte // 'w' write, 'r' read and compare, 'f' feed, 'l' line level
	off  uint16
	v    uint32
	s    string
}

func uw(off uint16, v uint32) uStep { return uStep{kind: 'w', off: off, v: v} }
func ur(off uint16, v uint32) uStep { return uStep{kind: 'r', off: off, v: v} }
func uf(s string) uStep             { return uStep{kind: 'f', s: s} }
func ul(high bool) uStep {
	if high {
		return uStep{kind: 'l', v: 1}
	}
	return uStep{kind: 'l'}
}

// lineRec records the levels a UART passes to its IRQ function.
type lineRec struct {
	mu     sync.Mutex
	levels []bool
}

func (r *lineRec) set(l bool) {
	r.mu.Lock()
	r.levels = append(r.levels, l)
	r.mu.Unlock()
}

// level is the last level passed (low before any call).
func (r *lineRec) level() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.levels) > 0 && r.levels[len(r.levels)-1]
}

// check fails unless the calls alternate, starting with a rise.
func (r *lineRec) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range r.levels {
		if l != (i%2 == 0) {
			t.Fatalf("IRQ calls %v: call %d repeats a level", r.levels, i)
		}
	}
}

func newTestUART(w *recWriterU) (*UART, *lineRec) {
	u := NewUART(w)
	r := &lineRec{}
	u.SetIRQ(r.set)
	return u, r
}

// recWriterU records UART output.
type recWriterU struct{ bytes.Buffer }

func runScript(t *testing.T, u *UART, r *lineRec, steps []uStep) {
	t.Helper()
	for i, s := range steps {
		switch s.kind {
		case 'w':
			u.Out(s.off, 1, s.v)
		case 'r':
			if got := u.In(s.off, 1); got != s.v {
				t.Fatalf("step %d: In(+%d) = %#x, want %#x", i, s.off, got, s.v)
			}
		case 'f':
			if n := u.Feed([]byte(s.s)); n != len(s.s) {
				t.Fatalf("step %d: Feed took %d of %d", i, n, len(s.s))
			}
		case 'l':
			if got := r.level(); got != (s.v != 0) {
				t.Fatalf("step %d: IRQ line %v, want %v", i, got, s.v != 0)
			}
		}
	}
	r.check(t)
}

func TestUART16550Script(t *testing.T) {
	const out2 = 0x08
	cases := []struct {
		name  string
		steps []uStep
		out   string
	}{
		{"thre on ier enable, cleared by iir read", []uStep{
			uw(tIER, 0x02), ur(tIIR, 0x02), ur(tIIR, 0x01), ur(tLSR, 0x60),
		}, ""},
		{"thre re-raised on ier rising edge only", []uStep{
			uw(tIER, 0x02), ur(tIIR, 0x02), ur(tIIR, 0x01),
			uw(tIER, 0x02), ur(tIIR, 0x01), // no edge
			uw(tIER, 0x03), ur(tIIR, 0x01), // still no edge
			uw(tIER, 0x00), ur(tIIR, 0x01), uw(tIER, 0x02), ur(tIIR, 0x02), ur(tIIR, 0x01),
		}, ""},
		{"thr write clears and re-raises thre", []uStep{
			uw(tIER, 0x02), ur(tIIR, 0x02), ur(tIIR, 0x01), uw(tRBR, 'a'), ur(tIIR, 0x02), ur(tIIR, 0x01),
			uw(tIER, 0), uw(tRBR, '\n'), ur(tIIR, 0x01),
		}, "a\n"},
		{"out2 gates the line", []uStep{
			uw(tIER, 0x02), ul(false), uw(tMCR, out2), ul(true), ur(tIIR, 0x02), ul(false),
			uw(tRBR, 'x'), ul(true), uw(tMCR, 0), ul(false), uw(tMCR, out2|0x03), ul(true),
			uw(tMCR, out2|0x10), ul(false), // loopback: OUT2 pin inactive
			uw(tMCR, out2), ul(true), uw(tIER, 0), ul(false),
		}, "x"},
		{"receive without fifo", []uStep{
			uw(tMCR, out2), uf("ab"), ur(tLSR, 0x61), ul(false), uw(tIER, 0x01), ul(true),
			ur(tIIR, 0x04), ur(tRBR, 'a'), ur(tIIR, 0x04), ur(tLSR, 0x61), ur(tRBR, 'b'),
			ul(false), ur(tLSR, 0x60), ur(tIIR, 0x01), ur(tRBR, 'b'), // empty: last byte again
		}, ""},
		{"trigger 1", []uStep{uw(tIIR, 0x01), uw(tIER, 1), uf("a"), ur(tIIR, 0xc4)}, ""},
		{"trigger 4", []uStep{
			uw(tIIR, 0x41), uw(tIER, 1), ur(tIIR, 0xc1), uf("abc"), ur(tIIR, 0xcc), uf("d"), ur(tIIR, 0xc4),
			ur(tRBR, 'a'), ur(tIIR, 0xcc), uf("e"), ur(tIIR, 0xc4),
		}, ""},
		{"trigger 8", []uStep{uw(tIIR, 0x81), uw(tIER, 1), uf("1234567"), ur(tIIR, 0xcc), uf("8"), ur(tIIR, 0xc4)}, ""},
		{"trigger 14", []uStep{
			uw(tIIR, 0xc1), uw(tIER, 1), uf("0123456789abc"), ur(tIIR, 0xcc), uf("d"), ur(tIIR, 0xc4),
			uf("efghij"), ur(tIIR, 0xc4), // 16 in the FIFO, 4 queued
			ur(tRBR, '0'), ur(tRBR, '1'), ur(tRBR, '2'), ur(tIIR, 0xc4), // refilled from the queue
		}, ""},
		{"fcr bits need fcr0", []uStep{uw(tIIR, 0xc6), ur(tIIR, 0x01), uw(tIIR, 0xc7), ur(tIIR, 0xc1)}, ""},
		{"fcr clears rx", []uStep{
			uw(tIIR, 0x01), uf("abc"), ur(tLSR, 0x61), uw(tIIR, 0x03), ur(tLSR, 0x60),
			uf("de"), uw(tIIR, 0x05), ur(tLSR, 0x61), // transmit clear keeps rx
			uw(tIIR, 0x00), ur(tLSR, 0x60), ur(tIIR, 0x01), // mode change clears
			uf("f"), uw(tIIR, 0x01), ur(tLSR, 0x60),
		}, ""},
		{"fcr clear refills from the queue", []uStep{
			// 'a' in the holding register, "bc" queued; the mode change
			// discards 'b' (then in the holding register) only.
			uf("abc"), uw(tIIR, 0x00), ur(tRBR, 'a'), uw(tIIR, 0x01), ur(tLSR, 0x61), ur(tRBR, 'c'), ur(tLSR, 0x60),
		}, ""},
		{"priorities", []uStep{
			uw(tMCR, out2), uw(tIER, 0x0f), // THRE pending
			uw(tMCR, out2|0x10),          // loopback: CTS and DSR fall, modem deltas pending
			uw(tRBR, 'x'), uw(tRBR, 'y'), // no FIFO: 'y' overruns 'x'
			ur(tIIR, 0x06), ur(tLSR, 0x63), ur(tIIR, 0x04), ur(tRBR, 'y'), ur(tIIR, 0x02),
			ur(tIIR, 0x00), ur(tMSR, 0x83), ur(tIIR, 0x01),
		}, ""},
		{"loopback", []uStep{
			uw(tIIR, 0x01), uw(tMCR, 0x10), uw(tRBR, 'h'), uw(tRBR, 'i'), uw(tRBR, '\n'),
			ur(tLSR, 0x61), ur(tRBR, 'h'), ur(tRBR, 'i'), ur(tRBR, '\n'), ur(tLSR, 0x60),
			uw(tMCR, 0), uw(tRBR, '!'), uw(tRBR, '\n'),
		}, "!\n"},
		{"loopback fifo overrun keeps the fifo", []uStep{
			uw(tIIR, 0x01), uw(tMCR, 0x10),
			uw(tRBR, '0'), uw(tRBR, '1'), uw(tRBR, '2'), uw(tRBR, '3'), uw(tRBR, '4'), uw(tRBR, '5'), uw(tRBR, '6'), uw(tRBR, '7'),
			uw(tRBR, '8'), uw(tRBR, '9'), uw(tRBR, 'a'), uw(tRBR, 'b'), uw(tRBR, 'c'), uw(tRBR, 'd'), uw(tRBR, 'e'), uw(tRBR, 'f'),
			ur(tLSR, 0x61), uw(tRBR, 'X'), ur(tLSR, 0x63), ur(tLSR, 0x61), ur(tRBR, '0'),
		}, ""},
		{"host input waits out loopback", []uStep{
			uw(tMCR, 0x10), uf("q"), ur(tLSR, 0x60), uw(tRBR, 'l'), ur(tRBR, 'l'), ur(tLSR, 0x60),
			uw(tMCR, 0), ur(tLSR, 0x61), ur(tRBR, 'q'),
		}, ""},
		{"line status interrupt", []uStep{
			uw(tMCR, out2), uw(tIER, 0x04), uw(tMCR, out2|0x10), ul(false), uw(tRBR, 1), uw(tRBR, 2),
			uw(tMCR, out2), ul(true), ur(tIIR, 0x06), ur(tLSR, 0x63), ul(false), ur(tIIR, 0x01),
		}, ""},
		{"modem status interrupt", []uStep{
			uw(tMCR, out2), uw(tIER, 0x08), ur(tIIR, 0x01), uw(tMCR, out2|0x10|0x02), uw(tMCR, out2), ul(true),
			ur(tIIR, 0x00), ur(tMSR, 0xb2), ul(false), ur(tIIR, 0x01), ur(tMSR, 0xb0),
		}, ""},
		{"msr deltas", []uStep{
			uw(tMCR, 0x1a), ur(tMSR, 0x92), uw(tMCR, 0x1f), ur(tMSR, 0xf2), uw(tMCR, 0x10), ur(tMSR, 0x0f), ur(tMSR, 0x00),
		}, ""},
		{"dlab hides rbr and ier", []uStep{
			uf("z"), uw(tLCR, 0x83), uw(tRBR, 0x0c), uw(tIER, 0x00), ur(tRBR, 0x0c), ur(tLSR, 0x61),
			uw(tLCR, 0x03), ur(tRBR, 'z'), ur(tIER, 0),
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &recWriterU{}
			u, r := newTestUART(w)
			runScript(t, u, r, c.steps)
			u.Flush()
			if w.String() != c.out {
				t.Errorf("output %q, want %q", w.String(), c.out)
			}
		})
	}
}

func TestUARTFeedQueueAndDrops(t *testing.T) {
	u, _ := newTestUART(&recWriterU{})
	in := make([]byte, UARTHostQueue+100)
	for i := range in {
		in[i] = byte(i * 7)
	}
	// Without FIFOs the holding register takes one byte beyond the queue.
	if n := u.Feed(in); n != UARTHostQueue+1 {
		t.Fatalf("Feed took %d, want %d", n, UARTHostQueue+1)
	}
	if u.Dropped() != 99 || u.Pending() != UARTHostQueue+1 {
		t.Fatalf("Dropped %d Pending %d", u.Dropped(), u.Pending())
	}
	if lsr := u.In(tLSR, 1); lsr != 0x63 {
		t.Fatalf("LSR after drops %#x, want DR|OE", lsr)
	}
	for i := 0; i < UARTHostQueue+1; i++ {
		if lsr := u.In(tLSR, 1); lsr&1 == 0 {
			t.Fatalf("byte %d: LSR %#x without DR", i, lsr)
		}
		if b := u.In(tRBR, 1); b != uint32(in[i]) {
			t.Fatalf("byte %d = %#x, want %#x", i, b, in[i])
		}
	}
	if lsr := u.In(tLSR, 1); lsr != 0x60 || u.Pending() != 0 {
		t.Fatalf("drained: LSR %#x Pending %d", lsr, u.Pending())
	}
	// With FIFOs: 16 more fit.
	u.Out(tIIR, 1, 0x01)
	if n := u.Feed(in); n != UARTHostQueue+16 {
		t.Fatalf("FIFO Feed took %d", n)
	}
	if u.Feed(nil) != 0 || u.Feed([]byte{1}) != 0 {
		t.Fatal("full queue took more")
	}
}

// TestUARTFeedRace feeds from one goroutine while the "vCPU" drains the
// receiver, driven by the IRQ line, as Linux does: every byte arrives,
// in order.
func TestUARTFeedRace(t *testing.T) {
	u := NewUART(&recWriterU{})
	kick := make(chan struct{}, 1)
	var calls atomic.Int64
	u.SetIRQ(func(l bool) {
		calls.Add(1)
		if l {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	})
	u.Out(tIIR, 1, 0xc1) // FIFO, trigger 14
	u.Out(tMCR, 1, 0x0b)
	u.Out(tIER, 1, 0x05)

	const total = 200_000
	go func() {
		var chunk [97]byte
		for sent := 0; sent < total; {
			n := len(chunk)
			if total-sent < n {
				n = total - sent
			}
			for i := range n {
				chunk[i] = byte((sent + i) % 251)
			}
			// Only this goroutine adds data, so room seen now stays.
			for u.Pending()+n > UARTHostQueue {
				time.Sleep(10 * time.Microsecond) // host console waits for room
			}
			if k := u.Feed(chunk[:n]); k != n {
				t.Errorf("Feed took %d of %d with room", k, n)
				return
			}
			sent += n
		}
	}()
	got := 0
	deadline := time.After(20 * time.Second)
	for got < total {
		select {
		case <-kick:
		case <-time.After(50 * time.Millisecond):
			// A lost wakeup would stall here; the line must still be high
			// if data waits.
			if u.Pending() > 0 && !u.IRQLevel() {
				t.Fatalf("data pending with the line low")
			}
		case <-deadline:
			t.Fatalf("received %d of %d bytes", got, total)
		}
		for {
			iir := u.In(tIIR, 1)
			if iir&1 != 0 {
				break
			}
			if iir&0x0f != 0x04 && iir&0x0f != 0x0c && iir&0x0f != 0x06 {
				t.Fatalf("IIR %#x", iir)
			}
			for u.In(tLSR, 1)&1 != 0 {
				b := u.In(tRBR, 1)
				if b != uint32(got%251) {
					t.Fatalf("byte %d = %d, want %d", got, b, got%251)
				}
				got++
			}
		}
	}
	if u.Dropped() != 0 {
		t.Errorf("dropped %d", u.Dropped())
	}
	if u.IRQLevel() {
		t.Error("line high after draining")
	}
	t.Logf("%d IRQ calls", calls.Load())
}

// TestUARTIRQOrdering hammers the line from two goroutines and checks
// the callback sees alternating levels and ends at the current level.
func TestUARTIRQOrdering(t *testing.T) {
	u := NewUART(&recWriterU{})
	r := &lineRec{}
	var inCall atomic.Int32
	u.SetIRQ(func(l bool) {
		if inCall.Add(1) != 1 {
			t.Error("concurrent IRQ calls")
		}
		r.set(l)
		u.IRQLevel() // calling back into the UART is allowed
		inCall.Add(-1)
	})
	u.Out(tMCR, 1, 0x08)
	u.Out(tIER, 1, 0x01)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 20000 {
			u.Feed([]byte{'x'})
		}
	}()
	go func() {
		defer wg.Done()
		for range 40000 {
			u.In(tRBR, 1)
		}
	}()
	wg.Wait()
	r.check(t)
	for u.Pending() > 0 {
		u.In(tRBR, 1)
	}
	if r.level() || u.IRQLevel() {
		t.Errorf("line %v/%v after draining", r.level(), u.IRQLevel())
	}
}

// TestUARTIRQReentrant lets the IRQ function service the UART itself.
func TestUARTIRQReentrant(t *testing.T) {
	u := NewUART(&recWriterU{})
	var got []byte
	u.SetIRQ(func(l bool) {
		for l && u.In(tLSR, 1)&1 != 0 {
			got = append(got, byte(u.In(tRBR, 1)))
		}
	})
	u.Out(tMCR, 1, 0x08)
	u.Out(tIER, 1, 0x01)
	u.Feed([]byte("hello"))
	if string(got) != "hello" || u.IRQLevel() {
		t.Errorf("got %q, line %v", got, u.IRQLevel())
	}
}

func TestUARTSetIRQWhileHigh(t *testing.T) {
	u := NewUART(&recWriterU{})
	u.Out(tMCR, 1, 0x08)
	u.Out(tIER, 1, 0x02)
	r := &lineRec{}
	u.SetIRQ(r.set)
	if !r.level() {
		t.Error("SetIRQ did not report the high line")
	}
	u.SetIRQ(nil)
	u.In(tIIR, 1) // no callback: must not panic
}

func TestUARTNoAlloc(t *testing.T) {
	u := NewUART(&discard{})
	var level bool
	u.SetIRQ(func(l bool) { level = l })
	u.Out(tIIR, 1, 0x41)
	u.Out(tMCR, 1, 0x0b)
	u.Out(tIER, 1, 0x0f)
	in := []byte("ab")
	n := testing.AllocsPerRun(1000, func() {
		u.Feed(in)
		u.In(tIIR, 1)
		u.In(tLSR, 1)
		u.In(tRBR, 2)
		u.In(tMSR, 1)
		u.Out(tRBR, 1, 'x')
		u.Out(tIER, 1, 0)
		u.Out(tIER, 1, 0x0f)
		u.Out(tMCR, 1, 0x1b)
		u.Out(tRBR, 1, 'y')
		u.Out(tMCR, 1, 0x0b)
		u.Out(tIIR, 1, 0x47)
		u.In(tIIR, 1)
	})
	if n != 0 {
		t.Errorf("UART accessors allocate %v times per run", n)
	}
	_ = level
}

// validIIR reports whether v is an IIR value a 16550A can return given
// its FIFO state.
func validIIR(v uint32, fifo bool) bool {
	if v > 0xff || v&0x30 != 0 || v&0xc0 != 0 && v&0xc0 != 0xc0 || fifo != (v&0xc0 == 0xc0) {
		return false
	}
	switch v & 0x0f {
	case 0x01, 0x06, 0x04, 0x02, 0x00:
		return true
	case 0x0c:
		return fifo
	}
	return false
}

// FuzzUART runs random register accesses and feeds, checking that the
// UART never panics, IIR always reads a valid code, LSR's fixed bits
// hold, the receiver stays within bounds, and the IRQ line delivered
// matches IIR and MCR.OUT2 after every step.
func FuzzUART(f *testing.F) {
	f.Add([]byte{0x21, 0xc7, 0x14, 0x0b, 0x11, 0x0f, 0x80, 'a', 0x02, 0, 0x00, 0, 0x05, 0})
	f.Add([]byte{0x14, 0x1f, 0x10, 'x', 0x10, 'y', 0x05, 0, 0x02, 0, 0x06, 0})
	f.Add([]byte{0x13, 0x80, 0x10, 0x01, 0x13, 0x03, 0x8f, 0xff, 0x00, 0, 0x32, 0x01})
	f.Fuzz(func(t *testing.T, prog []byte) {
		u := NewUART(&discard{})
		var level bool
		var calls int
		u.SetIRQ(func(l bool) {
			if calls > 0 && l == level {
				t.Fatalf("IRQ level %v repeated", l)
			}
			level = l
			calls++
		})
		var fed [512]byte
		for i := 0; i+1 < len(prog); i += 2 {
			op, v := prog[i], prog[i+1]
			off := uint16(op & 0x07)
			switch op >> 4 & 0x0b {
			case 0: // read
				fifo := u.fifoOn
				got := u.In(off, 1)
				if off == tIIR && !validIIR(got, fifo) {
					t.Fatalf("IIR read %#x (FIFOs %v)", got, fifo)
				}
				if off == tLSR && got&0x60 != 0x60 || off == tLSR && got&0x9c != 0 {
					t.Fatalf("LSR %#x", got)
				}
			case 1: // write
				u.Out(off, 1, uint32(v))
			case 2: // wide access, possibly past the UART
				if op&0x04 != 0 {
					u.Out(uint16(op&0x0f), 1+op>>7, uint32(v)*0x01010101)
				} else {
					u.In(uint16(op&0x0f), 1+op>>7)
				}
			case 3: // feed v bytes
				n := int(v) + int(op&0x04)*64
				for k := range fed[:n] {
					fed[k] = byte(k)
				}
				u.Feed(fed[:n])
			default: // big feed
				u.Feed(make([]byte, int(v)*32))
			}
			u.mu.Lock()
			id := u.intID()
			want := u.mcr&0x08 != 0 && u.mcr&0x10 == 0 && id != iirNoInt
			bad := u.rxN > u.rxCap() || u.hostN > len(u.host) || u.hostN < 0 || u.ier > 0x0f || u.mcr > 0x1f ||
				u.line != want || (u.hostN > 0 && u.rxN < u.rxCap() && u.mcr&0x10 == 0)
			u.mu.Unlock()
			if bad {
				t.Fatalf("step %d: state rxN %d hostN %d ier %#x mcr %#x line %v want %v", i/2, u.rxN, u.hostN, u.ier, u.mcr, u.line, want)
			}
			if level != want {
				t.Fatalf("step %d: delivered level %v, want %v (IIR id %#x, MCR %#x)", i/2, level, want, id, u.mcr)
			}
		}
	})
}

// TestUARTLinuxStartup replays the register sequence Linux's 8250 driver
// uses at probe and startup (autoconfig, THRE re-assertion test, TX
// interrupt test) and then a transmit/receive exchange driven by IIR.
func TestUARTLinuxStartup(t *testing.T) {
	w := &recWriterU{}
	u, r := newTestUART(w)
	// autoconfig: IER existence test.
	u.Out(tIER, 1, 0)
	if u.In(tIER, 1)&0x0f != 0 {
		t.Fatal("IER not clear")
	}
	u.Out(tIER, 1, 0x0f)
	if u.In(tIER, 1)&0x0f != 0x0f {
		t.Fatal("IER not set")
	}
	u.Out(tIER, 1, 0)
	// Loopback test: status bits only.
	u.Out(tMCR, 1, 0x1a)
	if s := u.In(tMSR, 1) & 0xf0; s != 0x90 {
		t.Fatalf("loopback MSR %#x", s)
	}
	u.Out(tMCR, 1, 0)
	// FIFO detection.
	u.Out(tIIR, 1, 0x01)
	if u.In(tIIR, 1)>>6 != 3 {
		t.Fatal("no 16550A FIFO")
	}
	u.Out(tLCR, 1, 0xbf)
	if u.In(tIIR, 1) == 0 {
		t.Fatal("EFR probe would find a 16650")
	}
	u.Out(tLCR, 1, 0x03)
	// Startup: clear FIFOs, read the interrupt registers.
	u.Out(tIIR, 1, 0x01)
	u.Out(tIIR, 1, 0x07)
	u.Out(tIIR, 1, 0)
	u.In(tLSR, 1)
	u.In(tRBR, 1)
	u.In(tIIR, 1)
	u.In(tMSR, 1)
	// THRE re-assertion test.
	u.Out(tIER, 1, 0x02)
	iir1 := u.In(tIIR, 1)
	u.Out(tIER, 1, 0)
	u.Out(tIER, 1, 0x02)
	iir := u.In(tIIR, 1)
	u.Out(tIER, 1, 0)
	if iir1&1 != 0 || iir&1 != 0 {
		t.Fatalf("THRE not asserted/re-asserted: %#x %#x (Linux sets UART_BUG_THRE)", iir1, iir)
	}
	u.Out(tLCR, 1, 0x03)
	u.Out(tMCR, 1, 0x0b) // DTR RTS OUT2
	// TX interrupt test.
	u.Out(tIER, 1, 0x02)
	lsr := u.In(tLSR, 1)
	iir = u.In(tIIR, 1)
	u.Out(tIER, 1, 0)
	if lsr&0x40 != 0 && iir&1 != 0 {
		t.Fatal("no TX interrupt (Linux sets UART_BUG_TXEN)")
	}
	u.Out(tIIR, 1, 0xc1)
	u.Out(tIER, 1, 0x05) // RLSI | RDI
	if r.level() {
		t.Fatal("line high with nothing to do")
	}

	// Transmit 40 bytes through THRE interrupts, 16 per interrupt.
	msg := strings.Repeat("0123456789", 4) + "\n"
	pos := 0
	u.Out(tIER, 1, 0x07) // start_tx
	handled := 0
	for r.level() {
		iir := u.In(tIIR, 1)
		if iir&1 != 0 {
			t.Fatal("line high, IIR says no interrupt")
		}
		if u.In(tLSR, 1)&0x20 != 0 {
			for k := 0; k < 16 && pos < len(msg); k++ {
				u.Out(tRBR, 1, uint32(msg[pos]))
				pos++
			}
			if pos == len(msg) {
				u.Out(tIER, 1, 0x05) // stop_tx
			}
		}
		handled++
		if handled > 10 {
			t.Fatal("interrupt storm")
		}
	}
	if w.String() != msg {
		t.Errorf("sent %q", w.String())
	}
	// Receive.
	u.Feed([]byte("root\n"))
	var rx []byte
	for r.level() {
		if iir := u.In(tIIR, 1); iir != 0xcc {
			t.Fatalf("IIR %#x, want timeout", iir)
		}
		for u.In(tLSR, 1)&1 != 0 {
			rx = append(rx, byte(u.In(tRBR, 1)))
		}
	}
	if string(rx) != "root\n" {
		t.Errorf("received %q", rx)
	}
	r.check(t)
}
