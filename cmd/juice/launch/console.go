package launch

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
)

// timestampRE matches juice's log-line prefix "[    S.UUUUUU] ": monotonic
// seconds since entry, six decimals. It is searched anywhere in a line
// because firmware or GRUB output may precede juice's first line without a
// newline in between.
var timestampRE = regexp.MustCompile(`\[ *[0-9]+\.[0-9]{6}\] ?`)

// ErrConsoleClosed is returned by Console.Wait when the console ended (the
// emulator exited) before a matching line appeared.
var ErrConsoleClosed = errors.New("console closed before the expected line appeared")

// Clean removes carriage returns and ANSI/VT100 escape sequences (which
// SeaBIOS, OVMF and GRUB emit on the serial line) from one console line.
func Clean(line string) string {
	if !strings.ContainsAny(line, "\r\x1b") {
		return line
	}
	var b strings.Builder
	b.Grow(len(line))
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch c {
		case '\r':
			continue
		case 0x1b:
			i = skipEscape(line, i)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// skipEscape returns the index of the last byte of the escape sequence that
// starts at line[i] (an ESC byte).
func skipEscape(line string, i int) int {
	if i+1 >= len(line) {
		return i
	}
	if line[i+1] != '[' {
		// Two-byte sequence such as ESC c (reset).
		return i + 1
	}
	// CSI: ESC [ parameter/intermediate bytes (0x20-0x3f) then a final
	// byte in 0x40-0x7e.
	j := i + 2
	for j < len(line) && line[j] >= 0x20 && line[j] <= 0x3f {
		j++
	}
	if j < len(line) && line[j] >= 0x40 && line[j] <= 0x7e {
		return j
	}
	return j - 1
}

// StripTimestamp returns the text of a juice log line after its
// "[    S.UUUUUU] " prefix, and true. A line without a timestamp (firmware,
// GRUB or an early juice message) is returned unchanged, with false.
// Callers normally pass a line through Clean first.
func StripTimestamp(line string) (string, bool) {
	loc := timestampRE.FindStringIndex(line)
	if loc == nil {
		return line, false
	}
	return line[loc[1]:], true
}

// Text cleans a raw console line and strips its timestamp: the form that
// tests and the bench parser match against.
func Text(raw string) string {
	t, _ := StripTimestamp(Clean(raw))
	return t
}

// Line is one console line located by Console.Wait.
type Line struct {
	// Index is the line's position in Console.Lines.
	Index int
	// Text is the cleaned line with its timestamp removed (see Text).
	Text string
}

// Console collects the serial output of one emulator run. It is an
// io.Writer that is safe for concurrent use: one goroutine writes what the
// emulator prints while others read lines or wait for a marker.
type Console struct {
	mu      sync.Mutex
	raw     []byte
	lines   []string // complete lines, without the '\n'
	partial []byte   // bytes after the last '\n'
	closed  bool
	changed chan struct{} // closed and replaced whenever lines or closed change
}

// NewConsole returns an empty, open console.
func NewConsole() *Console {
	return &Console{changed: make(chan struct{})}
}

// Write appends emulator output. It never fails.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = append(c.raw, p...)
	added := false
	for _, b := range p {
		if b == '\n' {
			c.lines = append(c.lines, string(c.partial))
			c.partial = c.partial[:0]
			added = true
			continue
		}
		c.partial = append(c.partial, b)
	}
	if added {
		c.notifyLocked()
	}
	return len(p), nil
}

// Close marks the end of the output: a pending unterminated line becomes a
// complete line and waiters that found nothing return ErrConsoleClosed.
// Closing twice is harmless.
func (c *Console) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.partial) > 0 {
		c.lines = append(c.lines, string(c.partial))
		c.partial = nil
	}
	c.closed = true
	c.notifyLocked()
}

// notifyLocked wakes every waiter. c.mu must be held.
func (c *Console) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Raw returns a copy of every byte written so far.
func (c *Console) Raw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.raw...)
}

// String returns the output so far with carriage returns and escape
// sequences removed, one line per line: readable in a test log.
func (c *Console) String() string {
	var b strings.Builder
	for _, l := range c.Lines() {
		b.WriteString(Clean(l))
		b.WriteByte('\n')
	}
	return b.String()
}

// Lines returns the raw lines so far (without '\n'), including a final
// unterminated line if there is one.
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.lines...)
	if len(c.partial) > 0 {
		out = append(out, string(c.partial))
	}
	return out
}

// Texts returns Text of every line so far (see Lines).
func (c *Console) Texts() []string {
	lines := c.Lines()
	for i, l := range lines {
		lines[i] = Text(l)
	}
	return lines
}

// Empty reports whether nothing at all has been written.
func (c *Console) Empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.raw) == 0
}

// Wait waits until a complete line at index from or later has a Text for
// which match returns true, and returns it. An unterminated last line is
// considered only once the console is closed, so a line is never matched
// half-written. It returns ErrConsoleClosed if the console closes first, or
// ctx.Err() when ctx ends first.
func (c *Console) Wait(ctx context.Context, from int, match func(text string) bool) (Line, error) {
	if from < 0 {
		from = 0
	}
	for {
		c.mu.Lock()
		lines := c.lines[min(from, len(c.lines)):]
		closed := c.closed
		changed := c.changed
		c.mu.Unlock()
		for i, l := range lines {
			if t := Text(l); match(t) {
				return Line{Index: from + i, Text: t}, nil
			}
		}
		from += len(lines)
		if closed {
			return Line{}, ErrConsoleClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Line{}, ctx.Err()
		}
	}
}

// HasPrefix returns a matcher for Console.Wait: the text starts with prefix.
func HasPrefix(prefix string) func(string) bool {
	return func(t string) bool { return strings.HasPrefix(t, prefix) }
}
