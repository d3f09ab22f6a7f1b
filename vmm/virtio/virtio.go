// Package virtio is juice's device side of virtio 1.2 (OASIS "Virtual I/O
// Device (VIRTIO) Version 1.2"): split virtqueues over guest RAM (Queue,
// Chain), the transport-neutral device state both transports share
// (State: device status, 64-bit feature negotiation, per-queue
// configuration, interrupt status, configuration generation), and the
// virtio-mmio version 2 register transport (NewMMIO). Device models live
// in sub-packages (blk, rng) and implement Device; the virtio-pci
// transport is built on State by the vmm/pci side.
//
// Everything the guest controls is hostile: ring indices, descriptors,
// indirect tables, buffer addresses and lengths are read once into local
// copies and validated against the VM's RAM (vmm.GuestMemory) before use.
// A malformed ring never panics and never touches memory outside RAM: it
// yields a *ChainError, and State puts the device into DEVICE_NEEDS_RESET
// (status bit 0x40), raises a configuration-change notification and
// reports the problem through its log callback.
//
// Exit-path work (register accesses, Notify, Next, Done, NeedInterrupt)
// does not allocate in steady state and is bounded: one Notify processes at
// most queue-size chains (see State.Notify).
package virtio

import "juice/vmm"

// Device status bits (virtio 1.2 §2.1).
const (
	// StatusAcknowledge: the guest found the device.
	StatusAcknowledge = 0x01
	// StatusDriver: the guest has a driver for it.
	StatusDriver = 0x02
	// StatusDriverOK: the driver is set up; the device is live.
	StatusDriverOK = 0x04
	// StatusFeaturesOK: feature negotiation is complete (set by the
	// driver, kept by the device only if it accepts the features).
	StatusFeaturesOK = 0x08
	// StatusNeedsReset: the device hit an error it cannot recover from
	// (set by the device only).
	StatusNeedsReset = 0x40
	// StatusFailed: the driver gave up on the device.
	StatusFailed = 0x80
)

// Transport feature bits the device side implements (virtio 1.2 §6), as
// masks of the 64-bit feature word.
const (
	// FeatureIndirectDesc is VIRTIO_F_INDIRECT_DESC (bit 28).
	FeatureIndirectDesc uint64 = 1 << 28
	// FeatureEventIdx is VIRTIO_F_EVENT_IDX (bit 29): used_event /
	// avail_event notification suppression.
	FeatureEventIdx uint64 = 1 << 29
	// FeatureVersion1 is VIRTIO_F_VERSION_1 (bit 32): a non-legacy
	// device. State always offers it and refuses drivers without it.
	FeatureVersion1 uint64 = 1 << 32

	// transportFeatures are offered by every device on top of
	// Device.Features.
	transportFeatures = FeatureIndirectDesc | FeatureEventIdx | FeatureVersion1
)

// Interrupt status bits: virtio-mmio InterruptStatus and the virtio-pci
// ISR status byte share them.
const (
	// ISRQueue: a used-buffer notification for some queue.
	ISRQueue = 0x1
	// ISRConfig: a configuration-change notification.
	ISRConfig = 0x2
)

// NoVector is VIRTIO_MSI_NO_VECTOR: no MSI-X vector assigned.
const NoVector = 0xffff

// MaxQueues is the most queues a device may have here.
const MaxQueues = 1024

// Device IDs (virtio 1.2 §5).
const (
	// IDNet is a network card.
	IDNet = 1
	// IDBlock is a block device.
	IDBlock = 2
	// IDConsole is a console.
	IDConsole = 3
	// IDEntropy is an entropy source.
	IDEntropy = 4
)

// IRQKind says why a device interrupts.
type IRQKind uint8

const (
	// IRQQueue is a used-buffer notification for one queue.
	IRQQueue IRQKind = iota
	// IRQConfig is a configuration-change notification (also sent when
	// the device enters NEEDS_RESET while DRIVER_OK).
	IRQConfig
)

// String names the kind.
func (k IRQKind) String() string {
	switch k {
	case IRQQueue:
		return "queue"
	case IRQConfig:
		return "config"
	}
	return "unknown"
}

// Area names one of the three parts of a split virtqueue.
type Area uint8

const (
	// AreaDesc is the descriptor table (queue_desc, QueueDesc*).
	AreaDesc Area = iota
	// AreaDriver is the available ring (queue_driver, QueueDriver*).
	AreaDriver
	// AreaDevice is the used ring (queue_device, QueueDevice*).
	AreaDevice
)

// Device is a virtio device model (blk, rng, console, net). State calls
// its methods serialized (one at a time, under the device lock), so a
// device needs its own locking only for work it starts itself outside
// those calls.
type Device interface {
	// Type is the virtio device ID (IDBlock, IDEntropy, ...).
	Type() uint16
	// Features are the device-specific feature bits; State adds
	// VERSION_1, EVENT_IDX and INDIRECT_DESC.
	Features() uint64
	// ConfigSize is the size of the device configuration space.
	ConfigSize() int
	// ReadConfig fills p from configuration space offset off; State
	// guarantees 0 <= off and off+len(p) <= ConfigSize().
	ReadConfig(off int, p []byte)
	// WriteConfig stores p at configuration offset off (same bounds).
	WriteConfig(off int, p []byte)
	// NumQueues is the number of virtqueues (at most MaxQueues).
	NumQueues() int
	// MaxQueueSize is queue q's largest size: a power of two up to
	// MaxQueueSize (other values are rounded down to one).
	MaxQueueSize(q int) uint16
	// Activate runs when the driver sets DRIVER_OK, with the queues the
	// driver enabled configured. An error puts the device in
	// NEEDS_RESET.
	Activate(env Env) error
	// Notify says the driver kicked queue q. It runs on the VM-exit
	// path: it should process the queue synchronously, must not
	// allocate in steady state, and stops when Queue.Next says ok=false
	// (which happens after queue-size chains). On a Next error it just
	// returns: State resets the device.
	Notify(q int)
	// Reset returns the device to its initial state (driver wrote 0 to
	// the status, or the VM reset). Back-end data (disk contents)
	// survives.
	Reset()
}

// Env is what a device sees of its transport once activated. State
// implements it.
type Env interface {
	// Queue returns queue i (nil when i is out of range).
	Queue(i int) *Queue
	// Interrupt sends a used-buffer notification for queue q; call it
	// after Queue.NeedInterrupt says so.
	Interrupt(q int)
	// ConfigChanged bumps the configuration generation and sends a
	// configuration-change notification.
	ConfigChanged()
	// Fail puts the device into NEEDS_RESET and logs reason.
	Fail(reason string)
	// Mem is the VM's RAM.
	Mem() *vmm.GuestMemory
	// Features are the negotiated feature bits.
	Features() uint64
}

// deviceName names a device type for log messages.
func deviceName(t uint16) string {
	switch t {
	case IDNet:
		return "virtio-net"
	case IDBlock:
		return "virtio-blk"
	case IDConsole:
		return "virtio-console"
	case IDEntropy:
		return "virtio-rng"
	}
	return "virtio"
}
