package ahci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// A port's control page (one DMA allocation): the command list (only
// slot 0 is used: one command at a time), the received-FIS area, and
// slot 0's command table with room for maxPRDs PRD entries.
const (
	clOffset  = 0x000
	fisOffset = 0x400
	ctOffset  = 0x800
	ctlBytes  = 0x1000
	maxPRDs   = (ctlBytes - ctOffset - cmdTablePRDT) / prdBytes
)

// Disk is an ATA disk on one port of an HBA. ReadAt, WriteAt and Flush
// may be called from several goroutines; commands go to the device one
// at a time (the disk's lock is held while one is in flight, never
// longer) through a bounce buffer in DMA memory, so callers' buffers
// may live anywhere and no request allocates.
type Disk struct {
	hba      *HBA
	port     int
	base     uint32 // the port's registers
	id       Identity
	maxXfer  uint32 // bytes per command: the bounce buffer, whole logical blocks
	prdBytes uint32
	timeout  time.Duration
	flushCmd uint8 // FLUSH CACHE (EXT), or 0 when the device has neither

	mu           sync.Mutex // one command at a time; guards everything below
	ctl, buf     []byte     // DMA: control page, bounce buffer
	ctlPA, bufPA uint64
	broken       error // sticky: the port failed
	requests     uint64
	bytes        uint64
	flushes      uint64
	errs         uint64
	resets       uint64
}

// String names the disk in messages: "ahci 00:1f.2 port 0".
func (d *Disk) String() string { return fmt.Sprintf("ahci %s port %d", d.hba.name, d.port) }

// Port is the disk's port number on its HBA.
func (d *Disk) Port() int { return d.port }

// Identity is what IDENTIFY DEVICE said.
func (d *Disk) Identity() Identity { return d.id }

// Size is the disk's size in bytes.
func (d *Disk) Size() uint64 { return d.id.Sectors * uint64(d.id.LogicalSize) }

// BlockSize is the disk's logical block size.
func (d *Disk) BlockSize() uint32 { return d.id.LogicalSize }

// ReadOnly is false: an ATA disk takes writes.
func (d *Disk) ReadOnly() bool { return false }

// CanFlush reports whether the device has a flush command (FLUSH CACHE
// EXT or FLUSH CACHE); without one Flush does nothing.
func (d *Disk) CanFlush() bool { return d.flushCmd != 0 }

// MaxTransfer is the most bytes one command moves.
func (d *Disk) MaxTransfer() uint32 { return d.maxXfer }

// Stats returns the commands completed, the caller's bytes they moved,
// the flushes among them, the commands that failed and the port
// recoveries.
func (d *Disk) Stats() (requests, bytes, flushes, errs, resets uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests, d.bytes, d.flushes, d.errs, d.resets
}

// check validates a transfer of n bytes at byte offset off.
func (d *Disk) check(off int64, n int) error {
	if off < 0 || off%SectorSize != 0 || n%SectorSize != 0 {
		return ErrAlign
	}
	if size := d.Size(); uint64(off) > size || uint64(n) > size-uint64(off) {
		return ErrRange
	}
	return nil
}

// ReadAt reads len(p) bytes at byte offset off; both must be multiples
// of SectorSize and the range inside the disk. It returns len(p) or an
// error (then n counts the bytes read before it).
func (d *Disk) ReadAt(p []byte, off int64) (n int, err error) {
	if err := d.check(off, len(p)); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.move(p, uint64(off), false)
}

// WriteAt writes p at byte offset off (see ReadAt). The data is on
// stable storage only after a Flush. On a disk with logical blocks
// larger than 512 bytes, a partly written block is read first.
func (d *Disk) WriteAt(p []byte, off int64) (n int, err error) {
	if err := d.check(off, len(p)); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.move(p, uint64(off), true)
}

// Flush asks the device to put its write cache on stable storage (FLUSH
// CACHE EXT) and waits for it. A device without a flush command does
// nothing.
func (d *Disk) Flush() error {
	if d.flushCmd == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.exec(d.flushCmd, 0, 0, 0, false); err != nil {
		return err
	}
	d.flushes++
	return nil
}

// move transfers p at byte offset off, one command per bounce buffer's
// worth of whole logical blocks. d.mu is held.
func (d *Disk) move(p []byte, off uint64, write bool) (n int, err error) {
	bs := uint64(d.id.LogicalSize)
	for n < len(p) {
		pos := off + uint64(n)
		lba := pos / bs
		skip := pos - lba*bs // bytes of the first block before pos
		rest := uint64(len(p) - n)
		span := min(uint64(d.maxXfer), (skip+rest+bs-1)/bs*bs)
		c := min(rest, span-skip) // the caller's bytes in this command
		blocks := uint32(span / bs)
		if write {
			if skip != 0 || c != span {
				// Read-modify-write of a partly covered block.
				if err := d.exec(ataReadDMAExt, lba, blocks, uint32(span), false); err != nil {
					return n, err
				}
			}
			copy(d.buf[skip:skip+c], p[n:n+int(c)])
			if err := d.exec(ataWriteDMAExt, lba, blocks, uint32(span), true); err != nil {
				return n, err
			}
		} else {
			if err := d.exec(ataReadDMAExt, lba, blocks, uint32(span), false); err != nil {
				return n, err
			}
			copy(p[n:n+int(c)], d.buf[skip:skip+c])
		}
		n += int(c)
		d.bytes += c
	}
	return n, nil
}

// identify runs IDENTIFY DEVICE and takes the disk's geometry from it.
// Its errors name the disk.
func (d *Disk) identify() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.exec(ataIdentify, 0, 0, IdentifyBytes, false); err != nil {
		return err
	}
	id, err := ParseIdentify(d.buf[:IdentifyBytes])
	if err != nil {
		return fmt.Errorf("%v: %w", d, err)
	}
	if uint32(len(d.buf)) < id.LogicalSize {
		return fmt.Errorf("%v: logical blocks of %d bytes exceed the %d-byte transfer buffer", d, id.LogicalSize, len(d.buf))
	}
	d.id = id
	d.maxXfer = uint32(len(d.buf)) / id.LogicalSize * id.LogicalSize
	switch {
	case id.FlushExt:
		d.flushCmd = ataFlushExt
	case id.Flush:
		d.flushCmd = ataFlush
	}
	return nil
}

// commandName names an ATA command for messages.
func commandName(c uint8) string {
	switch c {
	case ataIdentify:
		return "IDENTIFY DEVICE"
	case ataReadDMAExt:
		return "READ DMA EXT"
	case ataWriteDMAExt:
		return "WRITE DMA EXT"
	case ataFlushExt:
		return "FLUSH CACHE EXT"
	case ataFlush:
		return "FLUSH CACHE"
	}
	return fmt.Sprintf("command %#02x", c)
}

// exec runs one command in slot 0: the command header, a register H2D
// FIS, PRD entries covering the first nbytes of the bounce buffer, then
// PxCI, and waits for it. d.mu is held.
func (d *Disk) exec(cmd uint8, lba uint64, count, nbytes uint32, write bool) error {
	if d.broken != nil {
		return d.broken
	}
	le := binary.LittleEndian
	nprd := (nbytes + d.prdBytes - 1) / d.prdBytes
	ctPA := d.ctlPA + ctOffset
	hdr := d.ctl[clOffset : clOffset+32]
	dw0 := cmdHeaderCFL | nprd<<16
	if write {
		dw0 |= hdrWrite
	}
	le.PutUint32(hdr[0:], dw0)
	le.PutUint32(hdr[4:], 0) // PRDBC: the HBA counts the bytes it moves
	le.PutUint32(hdr[8:], uint32(ctPA))
	le.PutUint32(hdr[12:], uint32(ctPA>>32))
	clear(hdr[16:])
	fis := d.ctl[ctOffset : ctOffset+cmdTablePRDT]
	clear(fis)
	fis[0] = fisTypeH2D
	fis[1] = fisH2DCommand
	fis[2] = cmd
	if cmd == ataReadDMAExt || cmd == ataWriteDMAExt {
		fis[4], fis[5], fis[6] = byte(lba), byte(lba>>8), byte(lba>>16)
		fis[7] = ataDevLBA
		fis[8], fis[9], fis[10] = byte(lba>>24), byte(lba>>32), byte(lba>>40)
		fis[12], fis[13] = byte(count), byte(count>>8)
	}
	for i := uint32(0); i < nprd; i++ {
		e := d.ctl[ctOffset+cmdTablePRDT+prdBytes*i:][:prdBytes]
		pa := d.bufPA + uint64(i*d.prdBytes)
		n := min(d.prdBytes, nbytes-i*d.prdBytes)
		le.PutUint32(e[0:], uint32(pa))
		le.PutUint32(e[4:], uint32(pa>>32))
		le.PutUint32(e[8:], 0)
		le.PutUint32(e[12:], n-1) // byte count, zero-based; no interrupt
	}
	r := d.hba.regs
	r.Write32(d.base+pxIS, ^uint32(0))
	r.Write32(d.base+pxCI, 1)
	if err := d.wait(cmd, lba, count, nbytes); err != nil {
		d.errs++
		return err
	}
	d.requests++
	return nil
}

// wait polls for the command's completion: PxCI's bit 0 clear with no
// error in PxIS or the task file, and the transfer count asked for.
// It spins for spinTime yielding the processor, then sleeps with a
// growing interval (up to a millisecond), until the timeout.
func (d *Disk) wait(cmd uint8, lba uint64, count, nbytes uint32) error {
	r := d.hba.regs
	start := time.Now()
	sleep := 10 * time.Microsecond
	for {
		is := r.Read32(d.base + pxIS)
		if is&isError != 0 {
			return d.failed(cmd, lba, count, is, false)
		}
		if r.Read32(d.base+pxCI)&1 == 0 {
			is = r.Read32(d.base + pxIS)
			if is&isError != 0 || r.Read32(d.base+pxTFD)&(tfdERR|tfdDF|tfdBSY|tfdDRQ) != 0 {
				return d.failed(cmd, lba, count, is, false)
			}
			if got := binary.LittleEndian.Uint32(d.ctl[clOffset+4:]); got != nbytes {
				return fmt.Errorf("%v: %s: the HBA moved %d bytes of %d: %w", d, describe(cmd, lba, count), got, nbytes, ErrTransfer)
			}
			return nil
		}
		switch waited := time.Since(start); {
		case waited < spinTime:
			runtime.Gosched()
		case waited > d.timeout:
			return d.failed(cmd, lba, count, r.Read32(d.base+pxIS), true)
		default:
			time.Sleep(sleep)
			sleep = min(2*sleep, time.Millisecond)
		}
	}
}

// describe names a command with its range.
func describe(cmd uint8, lba uint64, count uint32) string {
	if cmd == ataReadDMAExt || cmd == ataWriteDMAExt {
		return fmt.Sprintf("%s of blocks %d-%d", commandName(cmd), lba, lba+uint64(count)-1)
	}
	return commandName(cmd)
}

// failed reports a failed or timed-out command and recovers the port
// (section 6.2.2.1): the command list stopped (which clears PxCI), the
// error registers cleared, a COMRESET when the device is still busy, the
// HBA reported an interface or host-bus error, or the command timed out
// (the device may still be working on it), and the command list started
// again. If the port cannot be stopped or started, the disk is marked
// failed.
func (d *Disk) failed(cmd uint8, lba uint64, count, is uint32, timedOut bool) error {
	r := d.hba.regs
	tfd := r.Read32(d.base + pxTFD)
	serr := r.Read32(d.base + pxSERR)
	var cause error
	switch {
	case timedOut:
		cause = fmt.Errorf("%w after %v (PxCI %#x, PxIS %#x, PxTFD %#x)", ErrTimeout, d.timeout, r.Read32(d.base+pxCI), is, tfd)
	case is&(isError&^isTFES) != 0:
		cause = fmt.Errorf("%w: PxIS %#x, PxSERR %#x, PxTFD %#x", ErrHost, is, serr, tfd)
	default:
		cause = fmt.Errorf("%w: status %#02x, error %#02x (PxIS %#x, PxTFD %#x)", ErrDevice, tfd&0xFF, tfd>>8&0xFF, is, tfd)
	}
	msg := fmt.Sprintf("%v: %s", d, describe(cmd, lba, count))
	comreset := timedOut || is&isFatal != 0 || tfd&(tfdBSY|tfdDRQ) != 0
	if err := d.recover(comreset); err != nil {
		d.broken = fmt.Errorf("%s: %w; recovery failed: %v: %w", msg, cause, err, ErrFailed)
		return d.broken
	}
	d.resets++
	how := "port recovered"
	if comreset {
		how = "port reset (COMRESET) and recovered"
	}
	return fmt.Errorf("%s: %w; %s", msg, cause, how)
}

// recover stops the command list, clears the errors, resets the link if
// asked to (or if the device stays busy), and starts the command list.
func (d *Disk) recover(comreset bool) error {
	h, r := d.hba, d.hba.regs
	c := r.Read32(d.base + pxCMD)
	r.Write32(d.base+pxCMD, c&^cmdST)
	if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(d.base+pxCMD)&cmdCR == 0 }) {
		return fmt.Errorf("the command list did not stop (PxCMD %#x)", r.Read32(d.base+pxCMD))
	}
	r.Write32(d.base+pxSERR, ^uint32(0))
	r.Write32(d.base+pxIS, ^uint32(0))
	if comreset || r.Read32(d.base+pxTFD)&(tfdBSY|tfdDRQ) != 0 {
		if err := d.comreset(); err != nil {
			return err
		}
	}
	return d.start()
}

// comreset resets the link and the device (section 10.4.2): PxSCTL.DET
// = 1 for at least a millisecond, then 0; the link comes back, the
// device sends a D2H FIS and clears BSY.
func (d *Disk) comreset() error {
	h, r := d.hba, d.hba.regs
	sctl := r.Read32(d.base+pxSCTL)&sctlSPD | sctlIPMNone
	r.Write32(d.base+pxSCTL, sctl|sctlDETComInit)
	time.Sleep(time.Millisecond)
	r.Write32(d.base+pxSCTL, sctl)
	if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(d.base+pxSSTS)&sstsDET == detPresentPhy }) {
		return fmt.Errorf("no link after COMRESET (PxSSTS %#x)", r.Read32(d.base+pxSSTS))
	}
	r.Write32(d.base+pxSERR, ^uint32(0))
	if !h.wait(d.timeout, func() bool { return r.Read32(d.base+pxTFD)&(tfdBSY|tfdDRQ) == 0 }) {
		return fmt.Errorf("device busy after COMRESET (PxTFD %#x)", r.Read32(d.base+pxTFD))
	}
	r.Write32(d.base+pxSERR, ^uint32(0))
	r.Write32(d.base+pxIS, ^uint32(0))
	return nil
}

// errBusy: the command list cannot start while the device is busy.
var errBusy = errors.New("device busy: the command list cannot start")

// start starts the command list (section 10.3.1): FIS reception on, the
// list not running, the device not busy (a command list override
// clears a stale BSY or DRQ when the HBA supports it), then PxCMD.ST.
func (d *Disk) start() error {
	h, r := d.hba, d.hba.regs
	c := r.Read32(d.base + pxCMD)
	if c&cmdFRE == 0 {
		r.Write32(d.base+pxCMD, c|cmdFRE)
	}
	if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(d.base+pxCMD)&cmdCR == 0 }) {
		return fmt.Errorf("the command list is still running (PxCMD %#x)", r.Read32(d.base+pxCMD))
	}
	if r.Read32(d.base+pxTFD)&(tfdBSY|tfdDRQ) != 0 {
		if h.Cap&capSCLO == 0 {
			return fmt.Errorf("%w (PxTFD %#x)", errBusy, r.Read32(d.base+pxTFD))
		}
		r.Write32(d.base+pxCMD, r.Read32(d.base+pxCMD)|cmdCLO)
		if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(d.base+pxCMD)&cmdCLO == 0 }) {
			return fmt.Errorf("%w: command list override did not finish (PxTFD %#x)", errBusy, r.Read32(d.base+pxTFD))
		}
	}
	r.Write32(d.base+pxCMD, r.Read32(d.base+pxCMD)|cmdST)
	return nil
}
