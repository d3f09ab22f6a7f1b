// Package virtiotest is a small virtio *driver* for tests of juice's
// virtio devices: it lays out split virtqueues in guest RAM, posts
// descriptor chains (direct and indirect, well-formed or not), reads the
// used ring, and drives a virtio-mmio register window through the
// sequence Linux's virtio_mmio driver uses (reset, ACKNOWLEDGE, DRIVER,
// feature negotiation, FEATURES_OK, queue setup, DRIVER_OK, notify,
// interrupt acknowledge). It is test support only; it does not import
// juice/vmm/virtio, so that package's own tests can use it.
package virtiotest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"juice/vmm"
)

// Descriptor and ring flags (virtio 1.2 §2.7).
const (
	FNext     = 1
	FWrite    = 2
	FIndirect = 4

	AvailNoInterrupt = 1
)

// Buf is one buffer of a chain.
type Buf struct {
	Addr  uint64
	Len   uint32
	Write bool // device-writable
}

// Ring is the driver side of one split virtqueue in guest RAM.
type Ring struct {
	Mem               *vmm.GuestMemory
	Size              uint16
	Desc, Avail, Used uint64

	next     uint16 // next descriptor to hand out (round robin)
	availIdx uint16
	lastUsed uint16
}

// RingBytes is how much RAM NewRing uses for a queue of size entries.
func RingBytes(size uint16) uint64 {
	n := uint64(size)
	return align(16*n+6+2*n, 4096) + align(6+8*n, 4096)
}

func align(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// NewRing lays out a queue of size entries at base (4 KiB aligned) the
// way Linux does (descriptor table, then the available ring, then the
// used ring on the next page) and zeroes it.
func NewRing(mem *vmm.GuestMemory, size uint16, base uint64) *Ring {
	n := uint64(size)
	r := &Ring{Mem: mem, Size: size, Desc: base, Avail: base + 16*n}
	r.Used = align(r.Avail+6+2*n, 4096)
	if b, ok := mem.Slice(base, RingBytes(size)); ok {
		clear(b)
	}
	return r
}

// PutDesc writes descriptor i raw.
func (r *Ring) PutDesc(i uint16, addr uint64, ln uint32, flags, next uint16) {
	PutDescAt(r.Mem, r.Desc+16*uint64(i), addr, ln, flags, next)
}

// PutDescAt writes a descriptor at gpa (for indirect tables).
func PutDescAt(mem *vmm.GuestMemory, gpa, addr uint64, ln uint32, flags, next uint16) {
	mem.Write(gpa, 8, addr)
	mem.Write(gpa+8, 4, uint64(ln))
	mem.Write(gpa+12, 2, uint64(flags))
	mem.Write(gpa+14, 2, uint64(next))
}

// PushAvail puts head in the next available-ring slot and publishes it
// (increments the available idx).
func (r *Ring) PushAvail(head uint16) {
	r.Mem.Write(r.Avail+4+2*uint64(r.availIdx%r.Size), 2, uint64(head))
	r.availIdx++
	r.Mem.Write(r.Avail+2, 2, uint64(r.availIdx))
}

// SetAvailIdx overwrites the available idx (for malformed-ring tests).
func (r *Ring) SetAvailIdx(v uint16) {
	r.availIdx = v
	r.Mem.Write(r.Avail+2, 2, uint64(v))
}

// AvailIdx is the driver's available idx.
func (r *Ring) AvailIdx() uint16 { return r.availIdx }

// Add posts bufs as one direct chain and publishes it; it returns the
// head. Descriptors are handed out round robin, so at most Size may be
// outstanding.
func (r *Ring) Add(bufs ...Buf) uint16 {
	head := r.next
	for i, b := range bufs {
		d := r.next
		r.next = (r.next + 1) % r.Size
		var flags uint16
		if b.Write {
			flags |= FWrite
		}
		if i+1 < len(bufs) {
			flags |= FNext
		}
		r.PutDesc(d, b.Addr, b.Len, flags, r.next)
	}
	r.PushAvail(head)
	return head
}

// AddIndirect writes bufs as an indirect table at table and posts one
// descriptor pointing at it; it returns the head.
func (r *Ring) AddIndirect(table uint64, bufs ...Buf) uint16 {
	for i, b := range bufs {
		var flags uint16
		if b.Write {
			flags |= FWrite
		}
		if i+1 < len(bufs) {
			flags |= FNext
		}
		PutDescAt(r.Mem, table+16*uint64(i), b.Addr, b.Len, flags, uint16(i+1))
	}
	head := r.next
	r.next = (r.next + 1) % r.Size
	r.PutDesc(head, table, uint32(16*len(bufs)), FIndirect, 0)
	r.PushAvail(head)
	return head
}

// PopUsed pops the next used element.
func (r *Ring) PopUsed() (id, ln uint32, ok bool) {
	idx, _ := r.Mem.Read(r.Used+2, 2)
	if uint16(idx) == r.lastUsed {
		return 0, 0, false
	}
	e := r.Used + 4 + 8*uint64(r.lastUsed%r.Size)
	i, _ := r.Mem.Read(e, 4)
	l, _ := r.Mem.Read(e+4, 4)
	r.lastUsed++
	return uint32(i), uint32(l), true
}

// UsedIdx is the device's used idx in RAM.
func (r *Ring) UsedIdx() uint16 {
	v, _ := r.Mem.Read(r.Used+2, 2)
	return uint16(v)
}

// SetAvailFlags writes the available ring's flags (AvailNoInterrupt).
func (r *Ring) SetAvailFlags(v uint16) { r.Mem.Write(r.Avail, 2, uint64(v)) }

// SetUsedEvent writes used_event (EVENT_IDX).
func (r *Ring) SetUsedEvent(v uint16) { r.Mem.Write(r.Avail+4+2*uint64(r.Size), 2, uint64(v)) }

// AvailEvent reads avail_event (EVENT_IDX).
func (r *Ring) AvailEvent() uint16 {
	v, _ := r.Mem.Read(r.Used+4+8*uint64(r.Size), 2)
	return uint16(v)
}

// virtio-mmio registers used by MMIO.
const (
	regMagic       = 0x000
	regVersion     = 0x004
	regDeviceID    = 0x008
	regDevFeat     = 0x010
	regDevFeatSel  = 0x014
	regDrvFeat     = 0x020
	regDrvFeatSel  = 0x024
	regQueueSel    = 0x030
	regQueueNumMax = 0x034
	regQueueNum    = 0x038
	regQueueReady  = 0x044
	regQueueNotify = 0x050
	regIntStatus   = 0x060
	regIntACK      = 0x064
	regStatus      = 0x070
	regDescLow     = 0x080
	regDriverLow   = 0x090
	regDeviceLow   = 0x0a0
	regConfig      = 0x100

	stAck      = 1
	stDriver   = 2
	stDriverOK = 4
	stFeatOK   = 8
)

// MMIO drives a virtio-mmio register window like Linux's virtio_mmio.
type MMIO struct {
	Dev vmm.MMIODevice
}

// R reads a 32-bit register.
func (m *MMIO) R(off uint64) uint32 { return uint32(m.Dev.Read(off, 4)) }

// W writes a 32-bit register.
func (m *MMIO) W(off uint64, v uint32) { m.Dev.Write(off, 4, uint64(v)) }

// Init brings the device up: checks magic/version/device ID, resets,
// sets ACKNOWLEDGE and DRIVER, accepts want&offered (the device must
// offer VERSION_1), sets FEATURES_OK and checks it stuck, sets up rings
// (queue i = rings[i]), and sets DRIVER_OK. It returns the negotiated
// features.
func (m *MMIO) Init(want uint64, rings []*Ring) (uint64, error) {
	if m.R(regMagic) != 0x74726976 {
		return 0, errors.New("bad magic")
	}
	if v := m.R(regVersion); v != 2 {
		return 0, fmt.Errorf("version %d", v)
	}
	if m.R(regDeviceID) == 0 {
		return 0, errors.New("device ID 0")
	}
	m.W(regStatus, 0)
	if st := m.R(regStatus); st != 0 {
		return 0, fmt.Errorf("status %#x after reset", st)
	}
	m.W(regStatus, stAck)
	m.W(regStatus, stAck|stDriver)
	m.W(regDevFeatSel, 1)
	offered := uint64(m.R(regDevFeat)) << 32
	m.W(regDevFeatSel, 0)
	offered |= uint64(m.R(regDevFeat))
	if offered&(1<<32) == 0 {
		return 0, errors.New("device does not offer VERSION_1")
	}
	f := want & offered
	m.W(regDrvFeatSel, 1)
	m.W(regDrvFeat, uint32(f>>32))
	m.W(regDrvFeatSel, 0)
	m.W(regDrvFeat, uint32(f))
	m.W(regStatus, stAck|stDriver|stFeatOK)
	if m.R(regStatus)&stFeatOK == 0 {
		return 0, errors.New("device refused FEATURES_OK")
	}
	for i, r := range rings {
		m.W(regQueueSel, uint32(i))
		if m.R(regQueueReady) != 0 {
			return 0, fmt.Errorf("queue %d already ready", i)
		}
		mx := m.R(regQueueNumMax)
		if mx == 0 || uint32(r.Size) > mx {
			return 0, fmt.Errorf("queue %d: size %d, max %d", i, r.Size, mx)
		}
		m.W(regQueueNum, uint32(r.Size))
		m.W(regDescLow, uint32(r.Desc))
		m.W(regDescLow+4, uint32(r.Desc>>32))
		m.W(regDriverLow, uint32(r.Avail))
		m.W(regDriverLow+4, uint32(r.Avail>>32))
		m.W(regDeviceLow, uint32(r.Used))
		m.W(regDeviceLow+4, uint32(r.Used>>32))
		m.W(regQueueReady, 1)
	}
	m.W(regStatus, stAck|stDriver|stFeatOK|stDriverOK)
	if st := m.R(regStatus); st&stDriverOK == 0 {
		return 0, fmt.Errorf("status %#x after DRIVER_OK", st)
	}
	return f, nil
}

// Notify kicks queue q.
func (m *MMIO) Notify(q int) { m.W(regQueueNotify, uint32(q)) }

// Ack reads InterruptStatus and acknowledges it, as vm_interrupt does.
func (m *MMIO) Ack() uint32 {
	st := m.R(regIntStatus)
	m.W(regIntACK, st)
	return st
}

// Status reads the device status.
func (m *MMIO) Status() uint32 { return m.R(regStatus) }

// Config reads size bytes of configuration space at off.
func (m *MMIO) Config(off uint64, size uint8) uint64 { return m.Dev.Read(regConfig+off, size) }

// Config64 reads a 64-bit configuration field as Linux does: two 32-bit
// reads, low first.
func (m *MMIO) Config64(off uint64) uint64 {
	lo := m.Config(off, 4)
	hi := m.Config(off+4, 4)
	return lo | hi<<32
}

// LE16 and friends decode little-endian fields from test buffers.
func LE16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

// LE32 decodes a little-endian 32-bit value.
func LE32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
