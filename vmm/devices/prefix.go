package devices

import (
	"io"
	"sync"
	"time"
)

// MaxPrefixLine is the longest line a console stream holds while waiting
// for its newline; a longer one is written out broken, with a newline
// added.
const MaxPrefixLine = 4096

// Console is one terminal shared by several streams of output: each VM's
// console (its COM1 and hvc0 bytes) and juice's own messages. A stream's
// lines reach the terminal whole, prefixed with the stream's tag
// ("[web] "), with one Write per line, so streams never interleave
// mid-line. A partial line (a shell's prompt, the echo of what the user
// is typing) is held until its newline, or until the stream has been
// quiet for a moment (FlushIdle): it is then shown unterminated, and the
// stream's next bytes continue it, unless another stream writes first,
// which ends the open line with a newline; the rest of the partial line
// then starts a new, prefixed line.
//
// Writes take the console's lock only; a stream's steady-state Write does
// not allocate, so device models may write from the VM-exit path.
type Console struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	open    *Stream // the stream whose partial line is on the terminal, unterminated
	streams []*Stream
}

// NewConsole returns a console writing to the terminal w.
func NewConsole(w io.Writer) *Console { return &Console{w: w, now: time.Now} }

// Stream is one tagged output stream of a Console (an io.Writer).
type Stream struct {
	c      *Console
	prefix int       // len of the prefix at the start of line
	line   []byte    // prefix + the part of the current line not yet shown
	shown  bool      // part of the current line is on the terminal already
	last   time.Time // when the stream last wrote
}

// Stream returns the console's stream tagged prefix, creating it on first
// use (a VM rebuilt after a reboot keeps its stream).
func (c *Console) Stream(prefix string) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		if string(s.line[:s.prefix]) == prefix {
			return s
		}
	}
	s := &Stream{c: c, prefix: len(prefix)}
	s.line = append(make([]byte, 0, len(prefix)+MaxPrefixLine+1), prefix...)
	c.streams = append(c.streams, s)
	return s
}

// PrefixWriter returns a writer that writes each line it is given to w as
// prefix+line (a stream of a console of its own; see Console). It has a
// Flush() error method that writes a held partial line followed by a
// newline.
func PrefixWriter(prefix string, w io.Writer) io.Writer {
	return NewConsole(w).Stream(prefix)
}

// Write implements io.Writer. It always consumes all of b; the first error
// from the terminal is returned.
func (s *Stream) Write(b []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.last = c.now()
	var err error
	n := len(b)
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i == len(b) { // no newline: hold (up to the limit)
			room := MaxPrefixLine - (len(s.line) - s.prefix)
			if len(b) < room {
				s.line = append(s.line, b...)
				break
			}
			s.line = append(s.line, b[:room]...)
			b = b[room:]
			err = first(err, s.emit(true))
			continue
		}
		s.line = append(s.line, b[:i+1]...)
		b = b[i+1:]
		err = first(err, s.emit(false))
	}
	return n, err
}

// emit writes the held line, adding a newline if addNL, and resets it.
// Lock held.
func (s *Stream) emit(addNL bool) error {
	if addNL {
		s.line = append(s.line, '\n')
	}
	err := s.show(s.line)
	s.line = s.line[:s.prefix]
	s.shown = false
	if s.c.open == s {
		s.c.open = nil
	}
	return err
}

// show writes line (prefix + text) to the terminal: without the prefix
// when it continues this stream's open line, after ending another
// stream's open line. Lock held.
func (s *Stream) show(line []byte) error {
	c := s.c
	if c.open != nil && c.open != s {
		c.endOpen()
	}
	if s.shown && c.open == s {
		line = line[s.prefix:]
	}
	_, err := c.w.Write(line)
	return err
}

// endOpen ends the open partial line with a newline (lock held); the
// stream's next bytes start a new, prefixed line.
func (c *Console) endOpen() {
	c.w.Write(newline[:])
	c.open.shown = false
	c.open = nil
}

var newline = [1]byte{'\n'}

// showPartial puts the held partial line on the terminal, unterminated.
// Lock held.
func (s *Stream) showPartial() error {
	if len(s.line) == s.prefix {
		return nil
	}
	err := s.show(s.line)
	s.line = s.line[:s.prefix]
	s.shown = true
	s.c.open = s
	return err
}

// Flush writes out a held partial line, ending it with a newline.
func (s *Stream) Flush() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(s.line) == s.prefix {
		if s.shown && c.open == s {
			c.endOpen()
		}
		return nil
	}
	return s.emit(true)
}

// FlushIdle shows the partial lines of the streams that have written
// nothing for at least quiet (a prompt, typed characters being echoed).
func (c *Console) FlushIdle(quiet time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, s := range c.streams {
		if len(s.line) > s.prefix && now.Sub(s.last) >= quiet {
			s.showPartial()
		}
	}
}

// Raw returns a writer for untagged whole lines (juice's own messages): it
// ends any open partial line first, so a message never lands in the
// middle of a guest's line.
func (c *Console) Raw() io.Writer { return rawWriter{c, c.w} }

// Through is Raw writing to w, another writer onto the same terminal
// (juice's log, which adds timestamps).
func (c *Console) Through(w io.Writer) io.Writer { return rawWriter{c, w} }

type rawWriter struct {
	c *Console
	w io.Writer
}

func (r rawWriter) Write(b []byte) (int, error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.c.open != nil {
		r.c.endOpen()
	}
	return r.w.Write(b)
}

// first returns a if it is not nil, else b.
func first(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
