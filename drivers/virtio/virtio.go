// Package virtio drives the host's virtio devices (virtio 1.2): the
// modern virtio-pci transport (section 4.1: the common configuration,
// notification, ISR and device-specific structures the vendor-specific
// PCI capabilities point at), split virtqueues (section 2.7) and, on top,
// a virtio-blk driver (section 5.2). This is juice the *driver*, running
// on a host (typically QEMU offering juice a disk); the device models
// juice offers its own guests live in juice/vmm/virtio.
//
// Hardware is reached through seams: configuration space through
// juice/drivers/pci's ConfigSpace, device registers through pci.Regs
// (MMIO over the direct map, an I/O BAR, or the PCI configuration access
// capability when the BAR is not mapped), and memory the device reads and
// writes by DMA through juice/mm/phys plus a DMA allocator. In tests the
// same code drives juice's own device models over a byte slice.
//
// The device is trusted no more than it must be: every index, length and
// count it writes into a used ring is checked; a device that breaks the
// protocol, or does not answer in time, is marked FAILED and the driver
// returns errors from then on instead of reusing buffers the device may
// still own. Requests allocate nothing in steady state.
//
// The rings are accessed with x86-64's memory model in mind (stores are
// not reordered with other stores, loads not with other loads), which is
// why publishing an index is an ordinary (atomic) store; the package is
// for little-endian amd64 only, like juice.
package virtio

import "errors"

// Device status bits (virtio 1.2 section 2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// Reserved feature bits (virtio 1.2 section 6), as masks.
const (
	FeatureIndirectDesc   uint64 = 1 << 28
	FeatureEventIdx       uint64 = 1 << 29
	FeatureVersion1       uint64 = 1 << 32
	FeatureAccessPlatform uint64 = 1 << 33
)

// Device types (virtio 1.2 section 5).
const (
	TypeNet   = 1
	TypeBlock = 2
)

// DMA hands out memory a device reaches by physical address: physically
// contiguous, page-aligned, and never given back (drivers allocate their
// rings and buffers once, when they start). The memory need not be
// zeroed; the driver clears what it uses.
type DMA interface {
	Alloc(n uint64) (pa uint64, ok bool)
}

// Errors.
var (
	// ErrNotVirtio: the function is not a virtio-pci device.
	ErrNotVirtio = errors.New("virtio: not a virtio-pci device")
	// ErrNoModern: the device lacks the modern interface's capabilities
	// (a legacy-only device) or they do not fit its BARs.
	ErrNoModern = errors.New("virtio: no usable modern virtio-pci capabilities")
	// ErrFeatures: the device refused the features the driver accepted,
	// or does not offer VIRTIO_F_VERSION_1.
	ErrFeatures = errors.New("virtio: feature negotiation failed")
	// ErrNoQueue: the device has no such queue, or its size is unusable.
	ErrNoQueue = errors.New("virtio: queue not available")
	// ErrQueueFull: not enough free descriptors for the chain.
	ErrQueueFull = errors.New("virtio: queue full")
	// ErrDevice: the device broke the protocol (a used element naming a
	// descriptor that is not in flight, more completions than requests).
	ErrDevice = errors.New("virtio: device broke the virtqueue protocol")
	// ErrTimeout: the device did not answer in time.
	ErrTimeout = errors.New("virtio: device did not answer in time")
	// ErrNoMemory: the DMA allocator could not supply the rings or
	// buffers.
	ErrNoMemory = errors.New("virtio: no DMA memory")
)
