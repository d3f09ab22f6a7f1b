// Package blk is the virtio block device (virtio 1.2 §5.2, device ID 2)
// over a Backend (RAMDisk, Overlay, or a read-only wrapper). It serves
// VIRTIO_BLK_T_IN, OUT, FLUSH, GET_ID and DISCARD on one request queue,
// synchronously on the VM-exit path, validating every request: the
// 16-byte header must be device-readable, data must go in the right
// direction, lengths must be whole 512-byte sectors, sector ranges must be
// inside the disk, and the status byte (the last device-writable byte) is
// written last.
package blk

import (
	"encoding/binary"
	"fmt"
	"io"

	"juice/vmm/virtio"
)

// Request types and status values (virtio 1.2 §5.2.6).
const (
	typeIn          = 0
	typeOut         = 1
	typeFlush       = 4
	typeGetID       = 8
	typeDiscard     = 11
	typeWriteZeroes = 13

	// StatusOK is VIRTIO_BLK_S_OK.
	StatusOK = 0
	// StatusIOErr is VIRTIO_BLK_S_IOERR.
	StatusIOErr = 1
	// StatusUnsupp is VIRTIO_BLK_S_UNSUPP.
	StatusUnsupp = 2
)

// Feature bits (virtio 1.2 §5.2.3), as masks.
const (
	FeatureSizeMax uint64 = 1 << 1  // size_max is valid
	FeatureSegMax  uint64 = 1 << 2  // seg_max is valid
	FeatureRO      uint64 = 1 << 5  // the disk is read-only
	FeatureBlkSize uint64 = 1 << 6  // blk_size is valid
	FeatureFlush   uint64 = 1 << 9  // VIRTIO_BLK_T_FLUSH works
	FeatureDiscard uint64 = 1 << 13 // VIRTIO_BLK_T_DISCARD works
)

// Limits the device advertises and enforces.
const (
	// SectorSize is the protocol's sector (always 512 bytes).
	SectorSize = 512
	// QueueSize is the request queue's maximum size.
	QueueSize = 256
	// SegMax is seg_max: data segments per request (the header and the
	// status take two more, so a request fits a queue-size chain).
	SegMax = QueueSize - 2
	// SizeMax is size_max: bytes per data segment.
	SizeMax = 64 << 10
	// MaxRequestBytes bounds one request's data (seg_max * size_max);
	// longer IN/OUT requests fail with IOERR.
	MaxRequestBytes = SegMax * SizeMax
	// MaxNotifyBytes bounds the data one Notify moves; beyond it the
	// device stops early and the transport resumes it later.
	MaxNotifyBytes = 64 << 20
	// MaxDiscardSectors is max_discard_sectors (per segment).
	MaxDiscardSectors = 1 << 16
	// MaxDiscardSeg is max_discard_seg.
	MaxDiscardSeg = 16
	// DiscardAlignment is discard_sector_alignment (4 KiB, the Overlay
	// block).
	DiscardAlignment = OverlayBlock / SectorSize
	// IDBytes is the GET_ID serial length.
	IDBytes = 20

	headerSize  = 16
	discardSize = 16
	configSize  = 60 // through max_write_zeroes_seg and write_zeroes_may_unmap
)

// Configuration space offsets (struct virtio_blk_config).
const (
	cfgCapacity          = 0
	cfgSizeMax           = 8
	cfgSegMax            = 12
	cfgBlkSize           = 20
	cfgNumQueues         = 34
	cfgMaxDiscardSectors = 36
	cfgMaxDiscardSeg     = 40
	cfgDiscardAlignment  = 44
)

// Options configure a Device.
type Options struct {
	// Serial is the GET_ID string (truncated to 20 bytes, NUL padded).
	Serial string
}

// Device is a virtio-blk device.
type Device struct {
	be       Backend
	ro       bool
	capacity uint64 // sectors
	features uint64
	cfg      [configSize]byte
	id       [IDBytes]byte
	env      virtio.Env
	discard  bool // VIRTIO_BLK_F_DISCARD negotiated
}

var _ virtio.Device = (*Device)(nil)

// New returns a block device over be. Its capacity is be.Size() rounded
// down to whole sectors; a read-only back-end gets VIRTIO_BLK_F_RO and no
// DISCARD.
func New(be Backend, o Options) *Device {
	d := &Device{be: be, ro: be.ReadOnly()}
	d.capacity = min(be.Size(), 1<<62) / SectorSize
	d.features = FeatureSizeMax | FeatureSegMax | FeatureBlkSize | FeatureFlush
	if d.ro {
		d.features |= FeatureRO
	} else {
		d.features |= FeatureDiscard
	}
	copy(d.id[:], o.Serial)
	le := binary.LittleEndian
	le.PutUint64(d.cfg[cfgCapacity:], d.capacity)
	le.PutUint32(d.cfg[cfgSizeMax:], SizeMax)
	le.PutUint32(d.cfg[cfgSegMax:], SegMax)
	le.PutUint32(d.cfg[cfgBlkSize:], SectorSize)
	le.PutUint16(d.cfg[cfgNumQueues:], 1)
	le.PutUint32(d.cfg[cfgMaxDiscardSectors:], MaxDiscardSectors)
	le.PutUint32(d.cfg[cfgMaxDiscardSeg:], MaxDiscardSeg)
	le.PutUint32(d.cfg[cfgDiscardAlignment:], DiscardAlignment)
	return d
}

// Type is virtio.IDBlock.
func (d *Device) Type() uint16 { return virtio.IDBlock }

// Features are SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH and DISCARD, or RO
// instead of DISCARD for a read-only back-end.
func (d *Device) Features() uint64 { return d.features }

// Capacity is the disk size in 512-byte sectors.
func (d *Device) Capacity() uint64 { return d.capacity }

// ConfigSize is the size of struct virtio_blk_config up to the write
// zeroes fields.
func (d *Device) ConfigSize() int { return configSize }

// ReadConfig reads the configuration space.
func (d *Device) ReadConfig(off int, p []byte) {
	if off < 0 || off > len(d.cfg) {
		clear(p)
		return
	}
	n := copy(p, d.cfg[off:])
	clear(p[n:])
}

// WriteConfig ignores writes (writeback is not offered).
func (d *Device) WriteConfig(off int, p []byte) {}

// NumQueues is 1.
func (d *Device) NumQueues() int { return 1 }

// MaxQueueSize is QueueSize.
func (d *Device) MaxQueueSize(q int) uint16 { return QueueSize }

// Activate starts the device.
func (d *Device) Activate(env virtio.Env) error {
	d.env = env
	d.discard = env.Features()&FeatureDiscard != 0
	return nil
}

// Reset stops the device; the back-end keeps its data.
func (d *Device) Reset() {
	d.env = nil
	d.discard = false
}

// Notify serves the request queue: every available request, up to the
// queue size (Queue.Next's budget) and MaxNotifyBytes of data. A chain
// without a 16-byte device-readable header or a device-writable status
// byte cannot be answered and puts the device into NEEDS_RESET.
func (d *Device) Notify(qi int) {
	if qi != 0 || d.env == nil {
		return
	}
	q := d.env.Queue(0)
	var cost uint64
	for {
		if cost >= MaxNotifyBytes {
			q.StopEarly()
			break
		}
		c, ok, err := q.Next()
		if err != nil || !ok {
			break
		}
		used, n, good := d.handle(&c)
		if !good {
			return
		}
		q.Done(c, used)
		cost += n
	}
	if q.NeedInterrupt() {
		d.env.Interrupt(0)
	}
}

// handle serves one request; it returns the used length, the bytes of
// work done and false when the chain was unanswerable (device failed).
func (d *Device) handle(c *virtio.Chain) (used uint32, cost uint64, ok bool) {
	if c.WriteLen() < 1 {
		d.env.Fail(fmt.Sprintf("queue 0, chain head %d: request has no device-writable status byte", c.Head))
		return 0, 0, false
	}
	if c.ReadLen() < headerSize {
		d.env.Fail(fmt.Sprintf("queue 0, chain head %d: request header needs %d device-readable bytes, chain has %d", c.Head, headerSize, c.ReadLen()))
		return 0, 0, false
	}
	var hdr [headerSize]byte
	c.Read(hdr[:]) // one copy: the guest may change it meanwhile
	typ := binary.LittleEndian.Uint32(hdr[0:])
	sector := binary.LittleEndian.Uint64(hdr[8:])
	out := c.ReadLen() - headerSize // device-readable data
	in := c.WriteLen() - 1          // device-writable data before the status

	var st byte
	var written uint32 // data bytes written from the start of the writable area
	switch typ {
	case typeIn:
		st, cost = d.read(c, sector, out, in)
		if st == StatusOK {
			written = in
		}
	case typeOut:
		st, cost = d.write(c, sector, out, in)
	case typeFlush:
		st = StatusOK
		if d.be.Flush() != nil {
			st = StatusIOErr
		}
	case typeGetID:
		written = uint32(c.Write(d.id[:min(IDBytes, in)]))
		st = StatusOK
	case typeDiscard:
		st, cost = d.discardReq(c, out)
	default: // WRITE_ZEROES (not offered), legacy SCSI, zoned, lifetime...
		st = StatusUnsupp
	}
	status := [1]byte{st}
	c.WriteAt(status[:], c.WriteLen()-1)
	// The used length counts bytes written from the start of the writable
	// area: the status is included only when everything before it was
	// written (an underestimate is allowed, an overestimate is not).
	used = written
	if written == in {
		used++
	}
	return used, cost, true
}

// span checks a request for n bytes at sector and returns its byte
// offset.
func (d *Device) span(sector uint64, n uint32) (int64, bool) {
	if sector > d.capacity || uint64(n)/SectorSize > d.capacity-sector {
		return 0, false
	}
	return int64(sector * SectorSize), true
}

// read serves VIRTIO_BLK_T_IN.
func (d *Device) read(c *virtio.Chain, sector uint64, out, in uint32) (byte, uint64) {
	if out != 0 || in%SectorSize != 0 || in > MaxRequestBytes {
		return StatusIOErr, 0
	}
	off, ok := d.span(sector, in)
	if !ok {
		return StatusIOErr, 0
	}
	for rem := in; rem > 0; {
		b := c.NextWrite(rem)
		if len(b) == 0 {
			return StatusIOErr, uint64(in - rem)
		}
		n, err := d.be.ReadAt(b, off)
		if n != len(b) || (err != nil && err != io.EOF) {
			return StatusIOErr, uint64(in - rem)
		}
		off += int64(n)
		rem -= uint32(n)
	}
	return StatusOK, uint64(in)
}

// write serves VIRTIO_BLK_T_OUT.
func (d *Device) write(c *virtio.Chain, sector uint64, out, in uint32) (byte, uint64) {
	if d.ro || in != 0 || out%SectorSize != 0 || out > MaxRequestBytes {
		return StatusIOErr, 0
	}
	off, ok := d.span(sector, out)
	if !ok {
		return StatusIOErr, 0
	}
	for rem := out; rem > 0; {
		b := c.NextRead(rem)
		if len(b) == 0 {
			return StatusIOErr, uint64(out - rem)
		}
		n, err := d.be.WriteAt(b, off)
		if n != len(b) || err != nil {
			return StatusIOErr, uint64(out - rem)
		}
		off += int64(n)
		rem -= uint32(n)
	}
	return StatusOK, uint64(out)
}

// discardReq serves VIRTIO_BLK_T_DISCARD: out bytes of 16-byte
// {le64 sector; le32 num_sectors; le32 flags} segments.
func (d *Device) discardReq(c *virtio.Chain, out uint32) (byte, uint64) {
	if d.ro {
		return StatusIOErr, 0
	}
	if !d.discard {
		return StatusUnsupp, 0
	}
	if out == 0 || out%discardSize != 0 || out/discardSize > MaxDiscardSeg {
		return StatusIOErr, 0
	}
	var cost uint64
	for i := uint32(0); i < out/discardSize; i++ {
		var seg [discardSize]byte
		c.Read(seg[:])
		sector := binary.LittleEndian.Uint64(seg[0:])
		num := binary.LittleEndian.Uint32(seg[8:])
		flags := binary.LittleEndian.Uint32(seg[12:])
		if flags != 0 { // unmap (bit 0) is for WRITE_ZEROES only; the rest are reserved
			return StatusUnsupp, cost
		}
		if num > MaxDiscardSectors {
			return StatusIOErr, cost
		}
		off, ok := d.span(sector, num*SectorSize)
		if !ok {
			return StatusIOErr, cost
		}
		if d.be.Discard(off, int64(num)*SectorSize) != nil {
			return StatusIOErr, cost
		}
		// Discarding frees or clears memory: charge a sixteenth of the
		// range against the notify budget.
		cost += uint64(num) * SectorSize / 16
	}
	return StatusOK, cost
}
