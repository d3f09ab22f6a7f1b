package virtio

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"juice/vmm"
)

// Split virtqueue layout (virtio 1.2 §2.7):
//
//	descriptor table  16*size bytes, align 16: {le64 addr; le32 len; le16 flags; le16 next}
//	available ring    6+2*size bytes, align 2: {le16 flags; le16 idx; le16 ring[size]; le16 used_event}
//	used ring         6+8*size bytes, align 4: {le16 flags; le16 idx; {le32 id; le32 len} ring[size]; le16 avail_event}
const (
	descSize = 16

	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4

	availFNoInterrupt = 1
)

// MaxQueueSize is the largest split-queue size (virtio 1.2 §2.7).
const MaxQueueSize = 32768

// MaxNotifyDescriptors bounds the descriptors (direct and indirect) Next
// reads during one Notify, on top of the queue-size chain budget: without
// it a driver could make each of queue-size chains queue-size descriptors
// long (2^30 reads at size 32768). A legitimate ring is never cut short
// by it, only resumed later (see State.Notify).
const MaxNotifyDescriptors = 1 << 17

// MaxChainBytes bounds the total length of one chain's buffers: the spec
// forbids chains longer than 2^32 bytes, and the used ring's len is 32
// bits.
const MaxChainBytes = 1<<32 - 1

// ChainError is a malformed queue or descriptor chain: the driver broke
// the ring protocol and the device must be reset.
type ChainError struct {
	// Queue is the queue index.
	Queue int
	// Head is the chain's head descriptor, or -1 when the error is not
	// about one chain (a bad available index, a bad ring address).
	Head int
	// Desc is the offending descriptor's index, or -1; in an indirect
	// table when Indirect is set.
	Desc     int
	Indirect bool
	// Reason says what is wrong.
	Reason string
}

// Error formats the error as "queue Q, chain head H, descriptor D: reason".
func (e *ChainError) Error() string {
	s := fmt.Sprintf("queue %d", e.Queue)
	if e.Head >= 0 {
		s += fmt.Sprintf(", chain head %d", e.Head)
	}
	if e.Desc >= 0 {
		if e.Indirect {
			s += fmt.Sprintf(", indirect descriptor %d", e.Desc)
		} else {
			s += fmt.Sprintf(", descriptor %d", e.Desc)
		}
	}
	return s + ": " + e.Reason
}

// Queue is the device side of one split virtqueue. It is not safe for
// concurrent use: State serializes the device's calls, and a device that
// also uses a queue from its own goroutine must lock around it.
type Queue struct {
	index    int
	mem      *vmm.GuestMemory
	size     uint16
	desc     []byte // 16*size bytes of guest RAM
	avail    []byte // 6+2*size
	used     []byte // 6+8*size
	eventIdx bool
	ready    bool

	lastAvail uint16 // next available-ring entry to consume
	usedIdx   uint16 // the device's used idx (also stored in RAM)
	signalled uint16 // usedIdx when NeedInterrupt last ran

	// arena holds the segments of the chain Next returned last.
	arena [][]byte

	budget   int  // chains Next may return before deferring; 0 = no limit
	taken    int  // chains returned since setBudget
	visits   int  // descriptors read since setBudget
	deferred bool // Next stopped at the budget (or StopEarly) with work left

	err *ChainError // sticky: the queue is broken until reconfigured
	gen uint32      // bumped at every (re)configure and disable

	fence uint32 // target of the atomic that serves as a memory barrier
}

// Chain is one descriptor chain popped from a queue: its device-readable
// buffers followed by its device-writable buffers, as slices of guest
// RAM. It also carries a read cursor and a write cursor for the
// Read/Write helpers. A Chain's segments live in the queue and stay valid
// until the next call to Next on that queue (or a reset); pass the Chain
// back to Done once.
type Chain struct {
	// Head is the chain's head descriptor index (what Done puts in the
	// used ring).
	Head uint16

	segs [][]byte
	nr   int // segs[:nr] readable, segs[nr:] writable
	rlen uint32
	wlen uint32
	gen  uint32

	rseg, roff int // read cursor: readable segment index, offset in it
	wseg, woff int // write cursor: index into segs (>= nr), offset
	rdone      uint32
	wdone      uint32
}

// Index is the queue's index in its device.
func (q *Queue) Index() int { return q.index }

// Size is the configured queue size (0 before Configure).
func (q *Queue) Size() uint16 { return q.size }

// Ready reports whether the queue is configured and usable.
func (q *Queue) Ready() bool { return q.ready }

// Err is the error that broke the queue, or nil.
func (q *Queue) Err() error {
	if q.err == nil {
		return nil
	}
	return q.err
}

// Configure sets the queue up over guest RAM: size entries (a power of
// two, 1..MaxQueueSize), the three areas at desc, avail and used (aligned
// 16, 2 and 4 bytes, inside RAM, not overlapping), with or without
// VIRTIO_F_EVENT_IDX. It resets the ring indices to 0 and writes the used
// ring's flags and idx. Indirect descriptors are always accepted (State
// always offers VIRTIO_F_INDIRECT_DESC; a driver that uses them without
// negotiating gets them honored).
func (q *Queue) Configure(mem *vmm.GuestMemory, size uint16, desc, avail, used uint64, eventIdx bool) error {
	q.ready = false
	q.gen++
	bad := func(format string, args ...any) error {
		return &ChainError{Queue: q.index, Head: -1, Desc: -1, Reason: fmt.Sprintf(format, args...)}
	}
	if mem == nil {
		return bad("no guest memory")
	}
	if size == 0 || size > MaxQueueSize || size&(size-1) != 0 {
		return bad("queue size %d is not a power of two in 1..%d", size, MaxQueueSize)
	}
	if desc%16 != 0 || avail%2 != 0 || used%4 != 0 {
		return bad("misaligned rings: descriptor table %#x (needs 16), available ring %#x (needs 2), used ring %#x (needs 4)", desc, avail, used)
	}
	n := uint64(size)
	dl, al, ul := descSize*n, 6+2*n, 6+8*n
	d, ok1 := mem.Slice(desc, dl)
	a, ok2 := mem.Slice(avail, al)
	u, ok3 := mem.Slice(used, ul)
	switch {
	case !ok1:
		return bad("descriptor table [%#x, +%#x) is outside guest RAM (%#x bytes)", desc, dl, mem.Size())
	case !ok2:
		return bad("available ring [%#x, +%#x) is outside guest RAM (%#x bytes)", avail, al, mem.Size())
	case !ok3:
		return bad("used ring [%#x, +%#x) is outside guest RAM (%#x bytes)", used, ul, mem.Size())
	}
	// All three ranges are inside RAM, so the ends cannot overflow.
	overlap := func(a0, al, b0, bl uint64) bool { return a0 < b0+bl && b0 < a0+al }
	if overlap(desc, dl, avail, al) || overlap(desc, dl, used, ul) || overlap(avail, al, used, ul) {
		return bad("rings overlap: descriptor table %#x+%#x, available ring %#x+%#x, used ring %#x+%#x", desc, dl, avail, al, used, ul)
	}
	q.mem = mem
	q.size = size
	q.desc, q.avail, q.used = d, a, u
	q.eventIdx = eventIdx
	q.lastAvail, q.usedIdx, q.signalled = 0, 0, 0
	q.budget, q.taken, q.deferred = 0, 0, false
	q.err = nil
	if cap(q.arena) < int(size) {
		q.arena = make([][]byte, size)
	}
	q.arena = q.arena[:size]
	clear(q.arena)
	// The used ring belongs to the device: start it clean.
	binary.LittleEndian.PutUint16(u[0:], 0)
	binary.LittleEndian.PutUint16(u[2:], 0)
	binary.LittleEndian.PutUint16(u[4+8*n:], 0)
	q.ready = true
	return nil
}

// disable stops the queue (driver cleared QueueReady, or reset); chains
// still held by the device are dropped by Done.
func (q *Queue) disable() {
	q.ready = false
	q.gen++
	q.err = nil
	q.budget, q.taken, q.deferred = 0, 0, false
	clear(q.arena)
}

// setBudget limits the chains Next returns from now on to n (0: no
// limit) and clears the deferred flag.
func (q *Queue) setBudget(n int) {
	q.budget, q.taken, q.visits, q.deferred = n, 0, 0, false
}

// takeDeferred reports (and clears) whether Next stopped at the budget or
// the device called StopEarly.
func (q *Queue) takeDeferred() bool {
	d := q.deferred
	q.deferred = false
	return d
}

// StopEarly tells the transport that the device stopped consuming chains
// before the queue was empty (for example because it hit its own
// per-notify byte budget), so State must come back to this queue later.
func (q *Queue) StopEarly() { q.deferred = true }

// barrier is a full memory barrier (LOCK-prefixed on x86) and a compiler
// barrier: it orders our guest-RAM stores before later guest-RAM loads
// and keeps the compiler from merging loads of the same ring field
// across it.
func (q *Queue) barrier() { atomic.AddUint32(&q.fence, 1) }

// loadBarrier keeps the compiler from moving later loads above earlier
// ones; x86 does not reorder loads with loads.
func (q *Queue) loadBarrier() { atomic.LoadUint32(&q.fence) }

// availIdx reads the driver's available idx (once).
func (q *Queue) availIdx() uint16 { return binary.LittleEndian.Uint16(q.avail[2:]) }

// setAvailEvent publishes avail_event (EVENT_IDX): "kick me when you
// write ring entry v".
func (q *Queue) setAvailEvent(v uint16) {
	binary.LittleEndian.PutUint16(q.used[4+8*int(q.size):], v)
}

// fail records a sticky chain error.
func (q *Queue) fail(head, desc int, indirect bool, format string, args ...any) *ChainError {
	q.err = &ChainError{Queue: q.index, Head: head, Desc: desc, Indirect: indirect, Reason: fmt.Sprintf(format, args...)}
	return q.err
}

// Next pops the next available chain. ok is false when the queue is
// empty, not ready, or the per-notify budget (queue-size chains,
// MaxNotifyDescriptors descriptor reads) is used up. err (a
// *ChainError) reports a malformed ring or chain: an available index more
// than the queue size ahead, a head or next index out of range, a loop or
// a chain longer than the queue size, a buffer outside guest RAM, a chain
// over MaxChainBytes, a device-readable buffer after a device-writable
// one, or indirect misuse (an indirect descriptor with NEXT set, inside an
// indirect table, or with a table length that is zero, not a multiple of
// 16 or outside RAM). Errors are sticky until the queue is reconfigured.
// Zero-length buffers are skipped (they still count toward the chain
// length limit).
//
// Each ring field and descriptor is read from guest RAM exactly once. With
// EVENT_IDX, when Next finds the ring empty it publishes avail_event and
// looks once more, so a buffer added meanwhile is not missed.
func (q *Queue) Next() (c Chain, ok bool, err error) {
	if q.err != nil {
		return Chain{}, false, q.err
	}
	if !q.ready {
		return Chain{}, false, nil
	}
	if q.budget > 0 && (q.taken >= q.budget || q.visits >= MaxNotifyDescriptors) {
		q.deferred = true
		return Chain{}, false, nil
	}
	idx := q.availIdx()
	if idx == q.lastAvail {
		if !q.eventIdx {
			return Chain{}, false, nil
		}
		q.setAvailEvent(q.lastAvail)
		q.barrier()
		idx = q.availIdx()
		if idx == q.lastAvail {
			return Chain{}, false, nil
		}
	}
	if pending := idx - q.lastAvail; pending > q.size {
		return Chain{}, false, q.fail(-1, -1, false,
			"available index %d is %d entries ahead of the device's %d (queue size %d)", idx, pending, q.lastAvail, q.size)
	}
	q.loadBarrier() // ring entry and descriptors after idx
	slot := int(q.lastAvail & (q.size - 1))
	head := binary.LittleEndian.Uint16(q.avail[4+2*slot:])
	if head >= q.size {
		return Chain{}, false, q.fail(int(head), -1, false, "head index %d is not below the queue size %d", head, q.size)
	}
	c, cerr := q.walk(head)
	if cerr != nil {
		return Chain{}, false, cerr
	}
	q.lastAvail++
	q.taken++
	return c, true, nil
}

// walk follows the chain at head and fills the arena with its buffers.
func (q *Queue) walk(head uint16) (Chain, *ChainError) {
	var (
		table      = q.desc
		tableLen   = uint32(q.size)
		i          = uint32(head)
		indirect   = false
		visits     uint32 // descriptors visited in the current table
		nbuf       uint32 // buffer descriptors (incl. zero-length)
		nseg       int
		nr         int
		rlen, wlen uint64
		seenWrite  bool
		ramSize    = q.mem.Size()
		h          = int(head)
	)
	for {
		if visits >= tableLen {
			return Chain{}, q.fail(h, int(i), indirect, "chain revisits a descriptor (loop) or is longer than its table (%d entries)", tableLen)
		}
		visits++
		q.visits++
		// One read of the descriptor into locals.
		d := table[i*descSize : i*descSize+descSize]
		addr := binary.LittleEndian.Uint64(d[0:])
		ln := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])

		if flags&descFIndirect != 0 {
			switch {
			case indirect:
				return Chain{}, q.fail(h, int(i), true, "indirect descriptor inside an indirect table")
			case flags&descFNext != 0:
				return Chain{}, q.fail(h, int(i), false, "indirect descriptor has NEXT set")
			case ln == 0:
				return Chain{}, q.fail(h, int(i), false, "indirect table is empty (length 0)")
			case ln%descSize != 0:
				return Chain{}, q.fail(h, int(i), false, "indirect table length %d is not a multiple of 16", ln)
			}
			t, ok := q.mem.Slice(addr, uint64(ln))
			if !ok {
				return Chain{}, q.fail(h, int(i), false, "indirect table [%#x, +%#x) is outside guest RAM (%#x bytes)", addr, ln, ramSize)
			}
			table, tableLen, i = t, ln/descSize, 0
			indirect, visits = true, 0
			continue
		}

		if nbuf >= uint32(q.size) {
			return Chain{}, q.fail(h, int(i), indirect, "chain has more than %d buffers (the queue size)", q.size)
		}
		nbuf++
		write := flags&descFWrite != 0
		if !write && seenWrite {
			return Chain{}, q.fail(h, int(i), indirect, "device-readable buffer after a device-writable one")
		}
		if ln != 0 {
			buf, ok := q.mem.Slice(addr, uint64(ln))
			if !ok {
				return Chain{}, q.fail(h, int(i), indirect, "buffer [%#x, +%#x) is outside guest RAM (%#x bytes)", addr, ln, ramSize)
			}
			if write {
				wlen += uint64(ln)
				seenWrite = true
			} else {
				rlen += uint64(ln)
				nr++
			}
			if rlen+wlen > MaxChainBytes {
				return Chain{}, q.fail(h, int(i), indirect, "chain is longer than %d bytes", uint64(MaxChainBytes))
			}
			q.arena[nseg] = buf
			nseg++
		} else if write {
			seenWrite = true
		}
		if flags&descFNext == 0 {
			break
		}
		if uint32(next) >= tableLen {
			return Chain{}, q.fail(h, int(i), indirect, "next index %d is not below the table size %d", next, tableLen)
		}
		i = uint32(next)
	}
	return Chain{
		Head: head,
		segs: q.arena[:nseg:nseg],
		nr:   nr,
		rlen: uint32(rlen),
		wlen: uint32(wlen),
		gen:  q.gen,
		wseg: nr,
	}, nil
}

// Done returns chain c to the driver through the used ring, saying that
// the device wrote written bytes to it (clamped to c.WriteLen()). Chains
// from before a reset or reconfiguration are ignored.
func (q *Queue) Done(c Chain, written uint32) {
	if !q.ready || q.err != nil || c.gen != q.gen {
		return
	}
	if written > c.wlen {
		written = c.wlen
	}
	slot := int(q.usedIdx & (q.size - 1))
	e := q.used[4+8*slot : 4+8*slot+8]
	binary.LittleEndian.PutUint32(e[0:], uint32(c.Head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.barrier() // the element before the index
	q.usedIdx++
	binary.LittleEndian.PutUint16(q.used[2:], q.usedIdx)
}

// NeedInterrupt reports whether the driver wants a used-buffer
// notification for the chains Done added since the last call: with
// EVENT_IDX, when the used index crossed used_event (vring_need_event);
// without it, unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT. It is
// false when nothing was added.
func (q *Queue) NeedInterrupt() bool {
	if !q.ready || q.err != nil {
		return false
	}
	old, cur := q.signalled, q.usedIdx
	if old == cur {
		return false
	}
	q.signalled = cur
	q.barrier() // our used idx store before reading the driver's fields
	if q.eventIdx {
		ev := binary.LittleEndian.Uint16(q.avail[4+2*int(q.size):])
		return needEvent(ev, cur, old)
	}
	return binary.LittleEndian.Uint16(q.avail[0:])&availFNoInterrupt == 0
}

// needEvent is vring_need_event: whether moving an index from old to cur
// passed event (i.e. event is in [old, cur) modulo 2^16).
func needEvent(event, cur, old uint16) bool {
	return cur-event-1 < cur-old
}

// ReadLen is the total length of the device-readable buffers.
func (c *Chain) ReadLen() uint32 { return c.rlen }

// WriteLen is the total length of the device-writable buffers.
func (c *Chain) WriteLen() uint32 { return c.wlen }

// Readable returns the device-readable buffers (guest RAM).
func (c *Chain) Readable() [][]byte { return c.segs[:c.nr] }

// Writable returns the device-writable buffers (guest RAM).
func (c *Chain) Writable() [][]byte { return c.segs[c.nr:] }

// Read copies readable bytes at the read cursor into p and advances it;
// it returns the count copied (less than len(p) at the end).
func (c *Chain) Read(p []byte) int {
	n := 0
	for n < len(p) {
		b := c.NextRead(uint32(min(len(p)-n, MaxChainBytes)))
		if len(b) == 0 {
			break
		}
		n += copy(p[n:], b)
	}
	return n
}

// NextRead returns the next piece of readable data at the read cursor, at
// most max bytes of one buffer, and advances past it; it is empty at the
// end. The slice aliases guest RAM.
func (c *Chain) NextRead(max uint32) []byte {
	for c.rseg < c.nr {
		s := c.segs[c.rseg]
		if c.roff < len(s) {
			n := len(s) - c.roff
			if uint64(n) > uint64(max) {
				n = int(max)
			}
			b := s[c.roff : c.roff+n]
			c.roff += n
			c.rdone += uint32(n)
			return b
		}
		c.rseg++
		c.roff = 0
	}
	return nil
}

// Consumed is how many readable bytes Read/NextRead have passed.
func (c *Chain) Consumed() uint32 { return c.rdone }

// Write copies p into the writable buffers at the write cursor and
// advances it; it returns the count copied (less than len(p) at the end).
func (c *Chain) Write(p []byte) int {
	n := 0
	for n < len(p) {
		b := c.NextWrite(uint32(min(len(p)-n, MaxChainBytes)))
		if len(b) == 0 {
			break
		}
		n += copy(b, p[n:])
	}
	return n
}

// NextWrite returns the next piece of writable space at the write cursor,
// at most max bytes of one buffer, and advances past it (the caller fills
// it); it is empty at the end. The slice aliases guest RAM.
func (c *Chain) NextWrite(max uint32) []byte {
	for c.wseg < len(c.segs) {
		s := c.segs[c.wseg]
		if c.woff < len(s) {
			n := len(s) - c.woff
			if uint64(n) > uint64(max) {
				n = int(max)
			}
			b := s[c.woff : c.woff+n]
			c.woff += n
			c.wdone += uint32(n)
			return b
		}
		c.wseg++
		c.woff = 0
	}
	return nil
}

// Written is how many writable bytes Write/NextWrite have passed.
func (c *Chain) Written() uint32 { return c.wdone }

// WriteAt copies p into the writable buffers starting off bytes into
// them, without moving the write cursor; it returns the count copied.
func (c *Chain) WriteAt(p []byte, off uint32) int {
	n := 0
	skip := uint64(off)
	for _, s := range c.segs[c.nr:] {
		if n == len(p) {
			break
		}
		if skip >= uint64(len(s)) {
			skip -= uint64(len(s))
			continue
		}
		n += copy(s[skip:], p[n:])
		skip = 0
	}
	return n
}
