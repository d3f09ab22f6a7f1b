package platform

import (
	"bytes"
	"io"
	"sync"
)

// Markers of a Linux kernel panic on the console: the first line names the
// reason, the last ends the report (panic() prints it just before the
// kernel stops for good).
var (
	panicStart = []byte("Kernel panic - not syncing: ")
	panicEnd   = []byte("---[ end Kernel panic - not syncing")
)

// maxPanicLine bounds the line the watcher keeps.
const maxPanicLine = 512

// PanicWatcher passes a guest's console output through and watches it for
// a Linux kernel panic report, so that a panicking guest stops its VM even
// before it could load the pvpanic driver (a kernel that cannot mount its
// root file system panics that early). Reason returns the panic's reason
// line once seen; onEnd is called once, when the report ends. A guest can
// print the marker itself: it then stops only itself.
type PanicWatcher struct {
	w     io.Writer
	onEnd func(reason string)

	mu     sync.Mutex
	line   [maxPanicLine]byte
	n      int
	reason string
	ended  bool
}

// NewPanicWatcher returns a watcher writing to w.
func NewPanicWatcher(w io.Writer, onEnd func(reason string)) *PanicWatcher {
	return &PanicWatcher{w: w, onEnd: onEnd}
}

// Write forwards b and scans it line by line.
func (p *PanicWatcher) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	var fire bool
	var reason string
	p.mu.Lock()
	for _, c := range b {
		if c != '\n' {
			if p.n < len(p.line) {
				p.line[p.n] = c
				p.n++
			}
			continue
		}
		l := bytes.TrimRight(p.line[:p.n], "\r")
		if i := bytes.Index(l, panicStart); i >= 0 && p.reason == "" {
			p.reason = string(l[i+len(panicStart):])
		}
		if bytes.Contains(l, panicEnd) && !p.ended {
			p.ended = true
			fire, reason = true, p.reason
		}
		p.n = 0
	}
	p.mu.Unlock()
	if fire && p.onEnd != nil {
		p.onEnd(reason)
	}
	return n, err
}

// Reason returns the panic reason seen so far ("" if none).
func (p *PanicWatcher) Reason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason
}
