// Package rng is the virtio entropy device (virtio 1.2 §5.4, device ID 4):
// one request queue whose device-writable buffers it fills with bytes
// from an entropy source given at construction (juice passes one backed by
// RDSEED/RDRAND; tests pass a deterministic one).
package rng

import (
	"fmt"

	"juice/vmm/virtio"
)

const (
	// QueueSize is the request queue's maximum size.
	QueueSize = 64
	// MaxRequestBytes bounds the bytes given to one request; the spec
	// lets the device fill less than the whole buffer, and the driver
	// reads the used length.
	MaxRequestBytes = 64 << 10
	// MaxNotifyBytes bounds the bytes produced by one Notify; beyond it
	// the device stops early and the transport resumes it later.
	MaxNotifyBytes = 1 << 20
)

// Device is a virtio-rng device.
type Device struct {
	src func(p []byte)
	env virtio.Env
}

var _ virtio.Device = (*Device)(nil)

// New returns an entropy device filling requests with src, which must
// fill all of p (it is called with slices of guest RAM, at most
// MaxRequestBytes long, on the VM-exit path, and must not retain them).
func New(src func(p []byte)) *Device { return &Device{src: src} }

// Type is virtio.IDEntropy.
func (d *Device) Type() uint16 { return virtio.IDEntropy }

// Features: none are defined for this device.
func (d *Device) Features() uint64 { return 0 }

// ConfigSize: the device has no configuration space.
func (d *Device) ConfigSize() int { return 0 }

// ReadConfig has nothing to read.
func (d *Device) ReadConfig(off int, p []byte) { clear(p) }

// WriteConfig ignores writes.
func (d *Device) WriteConfig(off int, p []byte) {}

// NumQueues is 1 (requestq).
func (d *Device) NumQueues() int { return 1 }

// MaxQueueSize is QueueSize.
func (d *Device) MaxQueueSize(q int) uint16 { return QueueSize }

// Activate starts the device.
func (d *Device) Activate(env virtio.Env) error {
	d.env = env
	return nil
}

// Reset stops the device.
func (d *Device) Reset() { d.env = nil }

// Notify fills the available buffers: each chain gets min(its writable
// length, MaxRequestBytes) bytes. A chain with a device-readable buffer
// breaks the spec ("the driver MUST NOT place device-readable buffers")
// and puts the device into NEEDS_RESET. At most MaxNotifyBytes per call.
func (d *Device) Notify(qi int) {
	if qi != 0 || d.env == nil {
		return
	}
	q := d.env.Queue(0)
	var total uint32
	for {
		if total >= MaxNotifyBytes {
			q.StopEarly()
			break
		}
		c, ok, err := q.Next()
		if err != nil || !ok {
			break
		}
		if c.ReadLen() != 0 {
			d.env.Fail(fmt.Sprintf("queue 0, chain head %d: entropy request has %d device-readable bytes", c.Head, c.ReadLen()))
			return
		}
		want := min(c.WriteLen(), MaxRequestBytes)
		for c.Written() < want {
			b := c.NextWrite(want - c.Written())
			if len(b) == 0 {
				break
			}
			d.src(b)
		}
		total += c.Written()
		q.Done(c, c.Written())
	}
	if q.NeedInterrupt() {
		d.env.Interrupt(0)
	}
}
