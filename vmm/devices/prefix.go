package devices

import (
	"io"
	"sync"
)

// MaxPrefixLine is the longest line PrefixWriter holds while waiting for
// its newline; a longer one is written out broken, with a newline added.
const MaxPrefixLine = 4096

// prefixWriter is PrefixWriter's writer.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix int    // len of the prefix at the start of line
	line   []byte // prefix + the pending part of the current line
}

// PrefixWriter returns a writer that writes each line it is given to w as
// prefix+line, with one w.Write per line, so that lines from writers
// sharing w (one per VM) never interleave mid-line. A partial line is held
// until its newline arrives, at most MaxPrefixLine bytes. The writer also
// has a Flush() error method that writes a held partial line followed by a
// newline.
func PrefixWriter(prefix string, w io.Writer) io.Writer {
	p := &prefixWriter{w: w, prefix: len(prefix)}
	p.line = append(make([]byte, 0, len(prefix)+128), prefix...)
	return p
}

// Write implements io.Writer. It always consumes all of b; the first error
// from w is returned.
func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	n := len(b)
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i == len(b) { // no newline: hold (up to the limit)
			room := MaxPrefixLine - (len(p.line) - p.prefix)
			if len(b) < room {
				p.line = append(p.line, b...)
				break
			}
			p.line = append(p.line, b[:room]...)
			b = b[room:]
			err = first(err, p.emit(true))
			continue
		}
		p.line = append(p.line, b[:i+1]...)
		b = b[i+1:]
		err = first(err, p.emit(false))
	}
	return n, err
}

// emit writes the held line (adding a newline if addNL) and resets it.
func (p *prefixWriter) emit(addNL bool) error {
	if addNL {
		p.line = append(p.line, '\n')
	}
	_, err := p.w.Write(p.line)
	p.line = p.line[:p.prefix]
	return err
}

// Flush writes out a held partial line, ending it with a newline.
func (p *prefixWriter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.line) == p.prefix {
		return nil
	}
	return p.emit(true)
}

// first returns a if it is not nil, else b.
func first(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
