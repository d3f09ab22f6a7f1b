package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"juice/mm/phys"
)

// virtio-blk feature bits (virtio 1.2 section 5.2.3), as masks.
const (
	BlkFeatureSizeMax uint64 = 1 << 1
	BlkFeatureSegMax  uint64 = 1 << 2
	BlkFeatureRO      uint64 = 1 << 5
	BlkFeatureBlkSize uint64 = 1 << 6
	BlkFeatureFlush   uint64 = 1 << 9
)

// virtio-blk request types and status values (section 5.2.6).
const (
	blkTypeIn    = 0
	blkTypeOut   = 1
	blkTypeFlush = 4
	blkTypeGetID = 8

	blkStatusOK     = 0
	blkStatusIOErr  = 1
	blkStatusUnsupp = 2
)

// virtio-blk configuration offsets (struct virtio_blk_config).
const (
	blkCfgCapacity = 0
	blkCfgSizeMax  = 8
	blkCfgBlkSize  = 20
)

// Block device constants.
const (
	// SectorSize is virtio-blk's addressing unit, whatever the disk's
	// logical block size.
	SectorSize = 512
	// DefaultMaxTransfer is how many bytes one request moves unless the
	// device's size_max is smaller: the bounce buffer's size.
	DefaultMaxTransfer = 64 << 10
	// DefaultTimeout bounds one request.
	DefaultTimeout = 30 * time.Second
	// IDLen is the length of the GET_ID serial.
	IDLen = 20
	// blkQueueSize is the request queue's size: one request is in
	// flight at a time, three descriptors long.
	blkQueueSize = 8
	// spinTime is how long a request's completion is polled, yielding
	// the processor in between, before the driver sleeps between polls
	// (QEMU completes a small request in a few hundred microseconds).
	spinTime = 200 * time.Microsecond
)

// Block errors.
var (
	ErrIO          = errors.New("virtio-blk: I/O error")
	ErrUnsupported = errors.New("virtio-blk: request not supported by the device")
	ErrReadOnly    = errors.New("virtio-blk: the disk is read-only")
	ErrAlign       = errors.New("virtio-blk: offset or length not a multiple of 512 bytes")
	ErrRange       = errors.New("virtio-blk: beyond the end of the disk")
)

// BlkOptions tune a Blk; zero values mean the defaults.
type BlkOptions struct {
	// MaxTransfer is the bounce buffer's size and so the most one request
	// moves (a multiple of SectorSize; default DefaultMaxTransfer,
	// lowered to the device's size_max).
	MaxTransfer uint32
	// Timeout bounds one request (default DefaultTimeout). A request that
	// times out leaves its buffers with the device, so the disk is then
	// marked FAILED and refuses further requests.
	Timeout time.Duration
}

// Blk is a virtio block device. ReadAt, WriteAt and Flush may be called
// from several goroutines; requests go to the device one at a time
// through a bounce buffer in DMA memory, so callers' buffers may live
// anywhere and no request allocates.
type Blk struct {
	t *Transport
	q *Queue

	capacity uint64 // sectors
	blkSize  uint32
	ro       bool
	flush    bool
	maxXfer  uint32
	timeout  time.Duration

	mu                       sync.Mutex // one request at a time; guards everything below
	hdr, status, buf         []byte     // DMA: request header, status byte, bounce buffer
	hdrPA, statusPA, bufPA   uint64
	bufs                     [3]Buf
	broken                   error // sticky: the device failed
	requests, bytes, flushes uint64
}

// NewBlk brings up the virtio block device t: features (RO, BLK_SIZE,
// FLUSH, SIZE_MAX), its request queue (polled: the device is asked not to
// interrupt), the DMA buffers, DRIVER_OK. The device configuration gives
// the capacity.
func NewBlk(t *Transport, mem *phys.Mem, dma DMA, o BlkOptions) (*Blk, error) {
	if t.Type != TypeBlock {
		return nil, fmt.Errorf("virtio %v: device type %d, not a block device", t.Addr, t.Type)
	}
	f, err := t.Init(BlkFeatureRO | BlkFeatureBlkSize | BlkFeatureFlush | BlkFeatureSizeMax)
	if err != nil {
		return nil, err
	}
	b := &Blk{t: t, ro: f&BlkFeatureRO != 0, flush: f&BlkFeatureFlush != 0, blkSize: SectorSize,
		maxXfer: o.MaxTransfer, timeout: o.Timeout}
	fail := func(err error) (*Blk, error) {
		t.Fail()
		return nil, fmt.Errorf("virtio-blk %v: %w", t.Addr, err)
	}
	if b.capacity, err = t.Config64(blkCfgCapacity); err != nil {
		return fail(err)
	}
	if f&BlkFeatureBlkSize != 0 {
		bs, err := t.Config32(blkCfgBlkSize)
		if err != nil {
			return fail(err)
		}
		if bs >= SectorSize && bs <= 1<<16 && bs&(bs-1) == 0 {
			b.blkSize = bs
		}
	}
	if b.maxXfer == 0 {
		b.maxXfer = DefaultMaxTransfer
	}
	if f&BlkFeatureSizeMax != 0 {
		if sm, err := t.Config32(blkCfgSizeMax); err == nil && sm >= SectorSize && sm < b.maxXfer {
			b.maxXfer = sm
		}
	}
	b.maxXfer &^= SectorSize - 1
	if b.maxXfer == 0 {
		return fail(errors.New("transfer size below one sector"))
	}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	size := min(t.QueueMax(0), blkQueueSize)
	if size < 3 {
		return fail(fmt.Errorf("%w: request queue of %d entries", ErrNoQueue, size))
	}
	for size&(size-1) != 0 {
		size &= size - 1
	}
	if b.q, err = NewQueue(mem, dma, size); err != nil {
		return fail(err)
	}
	if err := t.SetupQueue(0, b.q); err != nil {
		return fail(err)
	}
	// One allocation: header (16 bytes) and status (1) in the first 64
	// bytes, the bounce buffer page-aligned after them.
	const bufOff = 4096
	pa, ok := dma.Alloc(bufOff + uint64(b.maxXfer))
	if !ok {
		return fail(ErrNoMemory)
	}
	all, ok := mem.Bytes(pa, bufOff+uint64(b.maxXfer))
	if !ok {
		return fail(ErrNoMemory)
	}
	b.hdr, b.hdrPA = all[0:16], pa
	b.status, b.statusPA = all[16:17], pa+16
	b.buf, b.bufPA = all[bufOff:], pa+bufOff
	if err := t.DriverOK(); err != nil {
		return fail(err)
	}
	return b, nil
}

// Capacity is the disk's size in 512-byte sectors.
func (b *Blk) Capacity() uint64 { return b.capacity }

// Size is the disk's size in bytes.
func (b *Blk) Size() uint64 { return b.capacity * SectorSize }

// BlockSize is the disk's logical block size (512 unless the device says
// otherwise).
func (b *Blk) BlockSize() uint32 { return b.blkSize }

// ReadOnly reports whether the device refuses writes.
func (b *Blk) ReadOnly() bool { return b.ro }

// CanFlush reports whether the device has a volatile write cache that
// Flush empties (VIRTIO_BLK_F_FLUSH). Without it, writes are on stable
// storage when they complete and Flush does nothing.
func (b *Blk) CanFlush() bool { return b.flush }

// MaxTransfer is the most bytes one request moves.
func (b *Blk) MaxTransfer() uint32 { return b.maxXfer }

// Transport is the device's transport.
func (b *Blk) Transport() *Transport { return b.t }

// Stats returns the requests completed, the bytes they moved and the
// flushes among them.
func (b *Blk) Stats() (requests, bytes, flushes uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests, b.bytes, b.flushes
}

// check validates a transfer of n bytes at byte offset off.
func (b *Blk) check(off int64, n int) error {
	if off < 0 || off%SectorSize != 0 || n%SectorSize != 0 {
		return ErrAlign
	}
	if uint64(off)/SectorSize > b.capacity || uint64(n)/SectorSize > b.capacity-uint64(off)/SectorSize {
		return ErrRange
	}
	return nil
}

// ReadAt reads len(p) bytes at byte offset off; both must be multiples of
// SectorSize and the range inside the disk. It returns len(p) or an
// error (then n counts the bytes read before it).
func (b *Blk) ReadAt(p []byte, off int64) (n int, err error) {
	return b.transfer(blkTypeIn, p, off, false)
}

// WriteAt writes p at byte offset off (see ReadAt). The data is on stable
// storage only after a Flush (if CanFlush).
func (b *Blk) WriteAt(p []byte, off int64) (n int, err error) {
	if b.ro {
		return 0, ErrReadOnly
	}
	return b.transfer(blkTypeOut, p, off, true)
}

// transfer moves p at byte offset off in requests of typ of at most
// maxXfer bytes each; out says the device reads the buffer.
func (b *Blk) transfer(typ uint32, p []byte, off int64, out bool) (n int, err error) {
	if err := b.check(off, len(p)); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for n < len(p) {
		c := min(len(p)-n, int(b.maxXfer))
		if err := b.do(typ, uint64(off+int64(n))/SectorSize, p[n:n+c], out); err != nil {
			return n, err
		}
		n += c
	}
	return n, nil
}

// Flush asks the device to put every completed write on stable storage
// (VIRTIO_BLK_T_FLUSH) and waits for it. Without VIRTIO_BLK_F_FLUSH it
// does nothing: such a device's writes are stable when they complete.
func (b *Blk) Flush() error {
	if !b.flush {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.do(blkTypeFlush, 0, nil, false)
}

// ID returns the device's serial (VIRTIO_BLK_T_GET_ID), up to IDLen
// bytes, without trailing NULs.
func (b *Blk) ID() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var id [IDLen]byte
	if err := b.do(blkTypeGetID, 0, id[:], false); err != nil {
		return "", err
	}
	n := 0
	for n < IDLen && id[n] != 0 {
		n++
	}
	return string(id[:n]), nil
}

// do runs one request: header, optional data (copied through the bounce
// buffer: to it before a write, from it after a read), status. b.mu is
// held.
func (b *Blk) do(typ uint32, sector uint64, data []byte, write bool) error {
	if b.broken != nil {
		return b.broken
	}
	le := binary.LittleEndian
	le.PutUint32(b.hdr[0:], typ)
	le.PutUint32(b.hdr[4:], 0)
	le.PutUint64(b.hdr[8:], sector)
	b.status[0] = 0xFF
	b.bufs[0] = Buf{PA: b.hdrPA, Len: 16}
	n := 1
	if len(data) > 0 {
		if write {
			copy(b.buf, data)
		}
		b.bufs[n] = Buf{PA: b.bufPA, Len: uint32(len(data)), Write: !write}
		n++
	}
	b.bufs[n] = Buf{PA: b.statusPA, Len: 1, Write: true}
	n++
	head, err := b.q.Add(b.bufs[:n])
	if err != nil {
		return b.fail(err)
	}
	b.t.Notify(0)
	if err := b.wait(head); err != nil {
		return err
	}
	b.requests++
	switch b.status[0] {
	case blkStatusOK:
	case blkStatusIOErr:
		return ErrIO
	case blkStatusUnsupp:
		return ErrUnsupported
	default:
		return b.fail(fmt.Errorf("%w: status byte %#x", ErrDevice, b.status[0]))
	}
	if typ == blkTypeFlush {
		b.flushes++
	}
	b.bytes += uint64(len(data))
	if len(data) > 0 && !write {
		copy(data, b.buf[:len(data)])
	}
	return nil
}

// wait polls the used ring until the device returns head: for spinTime
// yielding the processor between polls, then sleeping with a growing
// interval (up to a millisecond), until the timeout.
func (b *Blk) wait(head uint16) error {
	start := time.Now()
	sleep := 10 * time.Microsecond
	for {
		id, _, ok, err := b.q.Used()
		if err != nil {
			return b.fail(err)
		}
		if ok {
			if id != head {
				return b.fail(fmt.Errorf("%w: returned chain %d, %d was in flight", ErrDevice, id, head))
			}
			return nil
		}
		switch waited := time.Since(start); {
		case waited < spinTime:
			runtime.Gosched()
		case waited > b.timeout:
			return b.fail(fmt.Errorf("%w after %v (device status %#x)", ErrTimeout, b.timeout, b.t.Status()))
		default:
			time.Sleep(sleep)
			sleep = min(2*sleep, time.Millisecond)
		}
	}
}

// fail marks the device failed: the driver gives up on it, and every
// later request returns err.
func (b *Blk) fail(err error) error {
	b.broken = fmt.Errorf("virtio-blk %v: %w", b.t.Addr, err)
	b.t.Fail()
	return b.broken
}
