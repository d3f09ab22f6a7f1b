package blk

import (
	"errors"
	"io"
	"sync"
)

// Backend is the storage behind a block device. Offsets and lengths are
// in bytes; the device only issues accesses inside [0, Size()). Data
// written (and flushed) stays for as long as the Backend object lives,
// across device resets and guest reboots. Implementations must be safe
// for concurrent use; the device calls them on the VM-exit path with
// slices of guest RAM, which they must not retain.
type Backend interface {
	// Size is the disk size in bytes (the device exposes whole 512-byte
	// sectors).
	Size() uint64
	// ReadAt reads len(p) bytes at off (io.ReaderAt semantics).
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off (io.WriterAt semantics).
	WriteAt(p []byte, off int64) (int, error)
	// Flush makes completed writes stable.
	Flush() error
	// Discard says [off, off+n) is no longer needed; its contents are
	// unspecified afterwards.
	Discard(off, n int64) error
	// ReadOnly reports whether writes and discards are refused.
	ReadOnly() bool
}

var (
	// ErrReadOnly is returned by writes to a read-only back-end.
	ErrReadOnly = errors.New("blk: back-end is read-only")
	// ErrRange is returned for accesses outside the disk.
	ErrRange = errors.New("blk: access outside the disk")
)

// span checks [off, off+n) against a disk of size bytes and clips n to
// the end; eof reports clipping.
func span(off int64, n int, size int64) (m int, eof bool, err error) {
	if off < 0 || off > size {
		return 0, false, ErrRange
	}
	if int64(n) > size-off {
		return int(size - off), true, nil
	}
	return n, false, nil
}

// checkDiscard validates a discard range.
func checkDiscard(off, n, size int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return ErrRange
	}
	return nil
}

// ramChunk is RAMDisk's allocation unit.
const ramChunk = 64 << 10

// RAMDisk is a zero-filled disk in host memory, allocated lazily in 64 KiB
// chunks on the first non-zero write to each; discarding a whole chunk
// frees it.
type RAMDisk struct {
	mu     sync.Mutex
	size   int64
	chunks [][]byte
}

var _ Backend = (*RAMDisk)(nil)

// NewRAMDisk returns a zeroed disk of size bytes.
func NewRAMDisk(size int64) *RAMDisk {
	size = max(size, 0)
	return &RAMDisk{size: size, chunks: make([][]byte, (size+ramChunk-1)/ramChunk)}
}

// Size is the disk size.
func (d *RAMDisk) Size() uint64 { return uint64(d.size) }

// ReadOnly is false.
func (d *RAMDisk) ReadOnly() bool { return false }

// Flush has nothing to do: the data lives in memory.
func (d *RAMDisk) Flush() error { return nil }

// ReadAt reads from the disk; unwritten chunks read as zeros.
func (d *RAMDisk) ReadAt(p []byte, off int64) (int, error) {
	n, eof, err := span(off, len(p), d.size)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	for done := 0; done < n; {
		pos := off + int64(done)
		ci, co := pos/ramChunk, int(pos%ramChunk)
		k := min(ramChunk-co, n-done)
		if c := d.chunks[ci]; c != nil {
			copy(p[done:done+k], c[co:])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	d.mu.Unlock()
	if eof {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes to the disk, allocating chunks on the first non-zero
// write to them.
func (d *RAMDisk) WriteAt(p []byte, off int64) (int, error) {
	n, eof, err := span(off, len(p), d.size)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	for done := 0; done < n; {
		pos := off + int64(done)
		ci, co := pos/ramChunk, int(pos%ramChunk)
		k := min(ramChunk-co, n-done)
		src := p[done : done+k]
		c := d.chunks[ci]
		if c == nil && !allZero(src) {
			c = make([]byte, ramChunk)
			d.chunks[ci] = c
		}
		if c != nil {
			copy(c[co:], src)
		}
		done += k
	}
	d.mu.Unlock()
	if eof {
		return n, io.ErrShortWrite
	}
	return n, nil
}

// Discard frees the chunks wholly inside [off, off+n) and zeroes the
// partial ones, so discarded sectors read as zeros.
func (d *RAMDisk) Discard(off, n int64) error {
	if err := checkDiscard(off, n, d.size); err != nil {
		return err
	}
	d.mu.Lock()
	for end := off + n; off < end; {
		ci, co := off/ramChunk, off%ramChunk
		k := min(ramChunk-co, end-off)
		if k == ramChunk {
			d.chunks[ci] = nil
		} else if c := d.chunks[ci]; c != nil {
			clear(c[co : co+k])
		}
		off += k
	}
	d.mu.Unlock()
	return nil
}

// Allocated is the host memory the disk holds, in bytes.
func (d *RAMDisk) Allocated() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, c := range d.chunks {
		if c != nil {
			n += ramChunk
		}
	}
	return n
}

// allZero reports whether b is all zero bytes.
func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// OverlayBlock is Overlay's copy-on-write unit.
const OverlayBlock = 4096

// Overlay is a copy-on-write disk over a read-only base image: the base
// is never modified; a 4 KiB block is copied into host memory on its first
// write, and reads merge private blocks over the base. Past the end of the
// base (when the disk is larger) the disk reads as zeros. Discarding a
// whole block drops its private copy, so it reads as the base again
// (discarded contents are unspecified, and this frees the memory).
type Overlay struct {
	mu     sync.Mutex
	base   []byte
	size   int64
	blocks []*[OverlayBlock]byte
}

var _ Backend = (*Overlay)(nil)

// NewOverlay returns a copy-on-write disk of size bytes over base (size
// <= 0 means len(base); base beyond size is not visible).
func NewOverlay(base []byte, size int64) *Overlay {
	if size <= 0 {
		size = int64(len(base))
	}
	return &Overlay{base: base, size: size, blocks: make([]*[OverlayBlock]byte, (size+OverlayBlock-1)/OverlayBlock)}
}

// Size is the disk size.
func (o *Overlay) Size() uint64 { return uint64(o.size) }

// ReadOnly is false: writes go to the overlay.
func (o *Overlay) ReadOnly() bool { return false }

// Flush has nothing to do: the overlay lives in memory.
func (o *Overlay) Flush() error { return nil }

// baseAt copies base bytes at pos into p, zero beyond the base.
func (o *Overlay) baseAt(p []byte, pos int64) {
	n := 0
	if pos < int64(len(o.base)) {
		n = copy(p, o.base[pos:])
	}
	clear(p[n:])
}

// ReadAt reads the merged view.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) {
	n, eof, err := span(off, len(p), o.size)
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	for done := 0; done < n; {
		pos := off + int64(done)
		bi, bo := pos/OverlayBlock, int(pos%OverlayBlock)
		k := min(OverlayBlock-bo, n-done)
		if b := o.blocks[bi]; b != nil {
			copy(p[done:done+k], b[bo:])
		} else {
			o.baseAt(p[done:done+k], pos)
		}
		done += k
	}
	o.mu.Unlock()
	if eof {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes into private blocks, copying each from the base first.
func (o *Overlay) WriteAt(p []byte, off int64) (int, error) {
	n, eof, err := span(off, len(p), o.size)
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	for done := 0; done < n; {
		pos := off + int64(done)
		bi, bo := pos/OverlayBlock, int(pos%OverlayBlock)
		k := min(OverlayBlock-bo, n-done)
		b := o.blocks[bi]
		if b == nil {
			b = new([OverlayBlock]byte)
			o.baseAt(b[:], bi*OverlayBlock)
			o.blocks[bi] = b
		}
		copy(b[bo:], p[done:done+k])
		done += k
	}
	o.mu.Unlock()
	if eof {
		return n, io.ErrShortWrite
	}
	return n, nil
}

// Discard drops the private copies of blocks wholly inside [off, off+n).
func (o *Overlay) Discard(off, n int64) error {
	if err := checkDiscard(off, n, o.size); err != nil {
		return err
	}
	o.mu.Lock()
	first := (off + OverlayBlock - 1) / OverlayBlock
	for bi := first; (bi+1)*OverlayBlock <= off+n; bi++ {
		o.blocks[bi] = nil
	}
	o.mu.Unlock()
	return nil
}

// Dirty is the number of private (written) blocks.
func (o *Overlay) Dirty() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, b := range o.blocks {
		if b != nil {
			n++
		}
	}
	return n
}

// readOnly hides a Backend's write side.
type readOnly struct{ b Backend }

// NewReadOnly wraps b so that the device offers VIRTIO_BLK_F_RO and
// refuses writes and discards.
func NewReadOnly(b Backend) Backend { return readOnly{b} }

// Size is the wrapped size.
func (r readOnly) Size() uint64 { return r.b.Size() }

// ReadAt reads the wrapped back-end.
func (r readOnly) ReadAt(p []byte, off int64) (int, error) { return r.b.ReadAt(p, off) }

// WriteAt refuses.
func (r readOnly) WriteAt(p []byte, off int64) (int, error) { return 0, ErrReadOnly }

// Flush has nothing to flush.
func (r readOnly) Flush() error { return nil }

// Discard refuses.
func (r readOnly) Discard(off, n int64) error { return ErrReadOnly }

// ReadOnly is true.
func (r readOnly) ReadOnly() bool { return true }
