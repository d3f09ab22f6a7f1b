package virtio

import (
	"encoding/binary"
	"fmt"

	"juice/mm/phys"
)

// Split virtqueue layout (virtio 1.2 section 2.7).
const (
	descSize      = 16 // addr u64, len u32, flags u16, next u16
	descFNext     = 1
	descFWrite    = 2
	availNoIntr   = 1 // avail flags: VIRTQ_AVAIL_F_NO_INTERRUPT
	ringHeader    = 4 // flags u16, idx u16
	usedElemSize  = 8 // id u32, len u32
	usedAlign     = 64
	MaxQueueSize  = 32768
	queueMemAlign = 4096
)

// Buf is one buffer of a descriptor chain: Len bytes at physical address
// PA; Write marks it device-writable (the device fills it).
type Buf struct {
	PA    uint64
	Len   uint32
	Write bool
}

// Queue is the driver side of one split virtqueue. Its three areas live
// in one DMA allocation: the descriptor table, the available ring (the
// driver's) and, 64-byte aligned after it, the used ring (the device's).
//
// The driver keeps its own copy of every link (the free list and each
// chain in flight) and of each chain's length, so a device writing junk
// into the descriptor table cannot corrupt the free list, and a used
// element is accepted only when it names the head of a chain in flight.
//
// A Queue is not safe for concurrent use; its owner serializes Add and
// Used.
type Queue struct {
	mem  *phys.Mem
	size uint16

	descPA, availPA, usedPA uint64
	desc, avail, used       []byte

	next     []uint16 // driver's links: free list and chains
	chainLen []uint16 // per head in flight: descriptors in its chain; 0 when not in flight
	freeHead uint16
	nfree    uint16
	availIdx uint16 // next available-ring slot (free-running)
	lastUsed uint16 // next used-ring slot to read (free-running)
	inFlight uint16 // chains posted and not yet used
	flags    uint16 // available-ring flags published with the index
	err      error  // sticky: the device broke the protocol
}

// QueueBytes is the DMA memory a queue of size entries needs.
func QueueBytes(size uint16) uint64 {
	n := uint64(size)
	usedOff := (descSize*n + ringHeader + 2*n + 2 + usedAlign - 1) &^ (usedAlign - 1)
	return usedOff + ringHeader + usedElemSize*n + 2
}

// NewQueue allocates and clears a queue of size entries (a power of two,
// 1 to MaxQueueSize). Completions are polled: the available ring asks the
// device not to interrupt (see SetInterrupts).
func NewQueue(mem *phys.Mem, dma DMA, size uint16) (*Queue, error) {
	if size == 0 || size&(size-1) != 0 || size > MaxQueueSize {
		return nil, fmt.Errorf("virtio: queue size %d is not a power of two up to %d", size, MaxQueueSize)
	}
	total := QueueBytes(size)
	pa, ok := dma.Alloc((total + queueMemAlign - 1) &^ (queueMemAlign - 1))
	if !ok {
		return nil, ErrNoMemory
	}
	n := uint64(size)
	q := &Queue{mem: mem, size: size, descPA: pa, availPA: pa + descSize*n, flags: availNoIntr}
	q.usedPA = pa + (descSize*n+ringHeader+2*n+2+usedAlign-1)&^(usedAlign-1)
	all, ok := mem.Bytes(pa, total)
	if !ok {
		return nil, ErrNoMemory
	}
	clear(all)
	q.desc = all[:descSize*n]
	q.avail = all[q.availPA-pa : q.availPA-pa+ringHeader+2*n+2]
	q.used = all[q.usedPA-pa : q.usedPA-pa+ringHeader+usedElemSize*n+2]
	q.next = make([]uint16, size)
	q.chainLen = make([]uint16, size)
	for i := range q.next {
		q.next[i] = uint16(i + 1)
	}
	q.nfree = size
	storeRelease32(q.avail, uint32(q.flags))
	return q, nil
}

// Size is the number of descriptors.
func (q *Queue) Size() uint16 { return q.size }

// Addrs returns the physical addresses of the descriptor table, the
// available ring and the used ring, for the transport to program.
func (q *Queue) Addrs() (desc, avail, used uint64) { return q.descPA, q.availPA, q.usedPA }

// Free is the number of free descriptors.
func (q *Queue) Free() int { return int(q.nfree) }

// InFlight is the number of chains the device has not returned.
func (q *Queue) InFlight() int { return int(q.inFlight) }

// Err returns the protocol violation that broke the queue, if any.
func (q *Queue) Err() error { return q.err }

// SetInterrupts asks the device to interrupt on used buffers (on) or not
// (off, the default: the driver polls). It is only a hint to the device.
func (q *Queue) SetInterrupts(on bool) {
	q.flags = availNoIntr
	if on {
		q.flags = 0
	}
	storeRelease32(q.avail, uint32(q.flags)|uint32(q.availIdx)<<16)
}

// Add writes bufs as one descriptor chain and makes it available; the
// caller then notifies the device. It returns the chain's head, which
// Used reports when the device is done with it. It allocates nothing.
func (q *Queue) Add(bufs []Buf) (head uint16, err error) {
	if q.err != nil {
		return 0, q.err
	}
	if len(bufs) == 0 || len(bufs) > int(q.size) {
		return 0, fmt.Errorf("virtio: chain of %d buffers on a queue of %d", len(bufs), q.size)
	}
	if len(bufs) > int(q.nfree) {
		return 0, ErrQueueFull
	}
	le := binary.LittleEndian
	head = q.freeHead
	d := head
	for i, b := range bufs {
		e := q.desc[uint32(d)*descSize : uint32(d)*descSize+descSize]
		var flags uint16
		if b.Write {
			flags |= descFWrite
		}
		next := q.next[d]
		if i+1 < len(bufs) {
			flags |= descFNext
		} else {
			q.freeHead = next // the rest of the free list
			next = 0
		}
		le.PutUint64(e[0:], b.PA)
		le.PutUint32(e[8:], b.Len)
		le.PutUint16(e[12:], flags)
		le.PutUint16(e[14:], next)
		d = q.next[d]
	}
	q.nfree -= uint16(len(bufs))
	q.chainLen[head] = uint16(len(bufs))
	slot := 2 * uint32(q.availIdx&(q.size-1))
	le.PutUint16(q.avail[ringHeader+slot:], head)
	q.availIdx++
	q.inFlight++
	// Publish: the ring entry and descriptors are written before the
	// index (x86 keeps stores in order; the atomic store keeps the
	// compiler from moving it).
	storeRelease32(q.avail, uint32(q.flags)|uint32(q.availIdx)<<16)
	return head, nil
}

// Used takes the next element off the used ring: the head of a chain the
// device is done with and the number of bytes it wrote into the chain's
// device-writable buffers. ok is false when there is none. The chain's
// descriptors go back to the free list. A used element that names no
// chain in flight, or a used index more than the chains in flight ahead,
// breaks the queue (ErrDevice, sticky).
func (q *Queue) Used() (head uint16, written uint32, ok bool, err error) {
	if q.err != nil {
		return 0, 0, false, q.err
	}
	idx := uint16(loadAcquire32(q.used) >> 16)
	if idx == q.lastUsed {
		return 0, 0, false, nil
	}
	if uint16(idx-q.lastUsed) > q.inFlight {
		q.err = fmt.Errorf("%w: used index %d is %d ahead, %d chains in flight", ErrDevice, idx, uint16(idx-q.lastUsed), q.inFlight)
		return 0, 0, false, q.err
	}
	le := binary.LittleEndian
	e := q.used[ringHeader+usedElemSize*uint32(q.lastUsed&(q.size-1)):]
	id, n := le.Uint32(e), le.Uint32(e[4:])
	if id >= uint32(q.size) || q.chainLen[id] == 0 {
		q.err = fmt.Errorf("%w: used element names descriptor %d, not a chain in flight", ErrDevice, id)
		return 0, 0, false, q.err
	}
	head = uint16(id)
	// Return the chain to the free list by the driver's own links.
	last := head
	for i := uint16(1); i < q.chainLen[head]; i++ {
		last = q.next[last]
	}
	q.next[last] = q.freeHead
	q.freeHead = head
	q.nfree += q.chainLen[head]
	q.chainLen[head] = 0
	q.lastUsed++
	q.inFlight--
	return head, n, true, nil
}
