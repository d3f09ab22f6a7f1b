// Package console is the virtio console device (virtio 1.2 section 5.3)
// with a single port (no MULTIPORT): the guest's hvc0. What the guest
// writes goes to an io.Writer (juice's console, in the VM's own stream);
// what the host feeds (Feed, from another goroutine) waits in a bounded
// input buffer until the guest has posted receive buffers and the VM's
// vCPU services the device (Waiting, then a kick of queue 0), so no lock
// is ever held across goroutines' device work.
//
// Transmit runs on the VM-exit path: no allocation, at most a queue's
// worth of chains per kick, at most MaxWrite bytes per chain.
package console

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"juice/vmm/virtio"
)

// Limits.
const (
	QueueSize = 64
	// InputBuffer is how many typed bytes wait for the guest.
	InputBuffer = 4096
	// MaxWrite bounds the bytes taken from one transmit chain.
	MaxWrite = 64 << 10
	// configSize: cols u16, rows u16, max_nr_ports u32, emerg_wr u32.
	configSize = 12
	rxq, txq   = 0, 1
)

// Device is one virtio console.
type Device struct {
	w    io.Writer
	wake func()

	mu      sync.Mutex // guards env and the input buffer
	env     virtio.Env
	in      [InputBuffer]byte
	head, n int
	waiting atomic.Bool
	dropped atomic.Uint64

	out [512]byte // transmit staging (Notify is serialized)
}

var _ virtio.Device = (*Device)(nil)

// New returns a console writing to w; wake (may be nil) is called when
// input arrives.
func New(w io.Writer, wake func()) *Device { return &Device{w: w, wake: wake} }

// Type is IDConsole.
func (d *Device) Type() uint16 { return virtio.IDConsole }

// Features: none (one port, no size, no emergency write).
func (d *Device) Features() uint64 { return 0 }

// ConfigSize is the configuration space's size.
func (d *Device) ConfigSize() int { return configSize }

// ReadConfig reads zeros (no size, one port).
func (d *Device) ReadConfig(off int, p []byte) { clear(p) }

// WriteConfig ignores writes.
func (d *Device) WriteConfig(off int, p []byte) {}

// NumQueues is 2: port 0's receive and transmit queues.
func (d *Device) NumQueues() int { return 2 }

// MaxQueueSize is QueueSize.
func (d *Device) MaxQueueSize(q int) uint16 { return QueueSize }

// Activate starts the console.
func (d *Device) Activate(env virtio.Env) error {
	d.mu.Lock()
	d.env = env
	d.mu.Unlock()
	return nil
}

// Reset stops the console; typed input waiting is kept for the next
// driver.
func (d *Device) Reset() {
	d.mu.Lock()
	d.env = nil
	d.mu.Unlock()
}

// Feed queues host input for the guest and reports how many bytes fit;
// the rest is dropped and counted.
func (d *Device) Feed(b []byte) int {
	d.mu.Lock()
	n := 0
	for _, c := range b {
		if d.n == InputBuffer {
			break
		}
		d.in[(d.head+d.n)%InputBuffer] = c
		d.n++
		n++
	}
	if d.n > 0 {
		d.waiting.Store(true)
	}
	d.mu.Unlock()
	if n < len(b) {
		d.dropped.Add(uint64(len(b) - n))
	}
	if n > 0 && d.wake != nil {
		d.wake()
	}
	return n
}

// Dropped counts input bytes Feed could not queue.
func (d *Device) Dropped() uint64 { return d.dropped.Load() }

// Waiting reports whether input waits for the guest: the VM's vCPU should
// kick queue 0 (State.Notify(0)). One atomic load.
func (d *Device) Waiting() bool { return d.waiting.Load() }

// Notify handles a kick of the transmit queue (output) or the receive
// queue (new buffers, or waiting input).
func (d *Device) Notify(q int) {
	d.mu.Lock()
	env := d.env
	d.mu.Unlock()
	if env == nil {
		return
	}
	switch q {
	case txq:
		d.transmit(env)
	case rxq:
		d.receive(env)
	}
}

// transmit writes the guest's output.
func (d *Device) transmit(env virtio.Env) {
	tx := env.Queue(txq)
	for {
		c, ok, err := tx.Next()
		if err != nil || !ok {
			break
		}
		if c.WriteLen() != 0 {
			env.Fail(fmt.Sprintf("queue %d, chain head %d: output buffer has %d device-writable bytes", txq, c.Head, c.WriteLen()))
			return
		}
		for c.Consumed() < min(c.ReadLen(), MaxWrite) {
			n := c.Read(d.out[:min(uint32(len(d.out)), MaxWrite-c.Consumed())])
			if n == 0 {
				break
			}
			d.w.Write(d.out[:n])
		}
		tx.Done(c, 0)
	}
	if tx.NeedInterrupt() {
		env.Interrupt(txq)
	}
}

// receive moves waiting input into the guest's receive buffers.
func (d *Device) receive(env virtio.Env) {
	rx := env.Queue(rxq)
	for {
		d.mu.Lock()
		if d.n == 0 {
			d.waiting.Store(false)
			d.mu.Unlock()
			break
		}
		d.mu.Unlock()
		c, ok, err := rx.Next()
		if err != nil || !ok {
			break
		}
		if c.ReadLen() != 0 {
			env.Fail(fmt.Sprintf("queue %d, chain head %d: input buffer has %d device-readable bytes", rxq, c.Head, c.ReadLen()))
			return
		}
		d.mu.Lock()
		for d.n > 0 {
			// The contiguous run at head, into the chain.
			run := min(d.n, InputBuffer-d.head)
			w := c.Write(d.in[d.head : d.head+run])
			d.head, d.n = (d.head+w)%InputBuffer, d.n-w
			if w < run {
				break // the chain is full
			}
		}
		d.mu.Unlock()
		rx.Done(c, c.Written())
	}
	if rx.NeedInterrupt() {
		env.Interrupt(rxq)
	}
}
