package virtio

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"juice/drivers/pci"
	vblk "juice/vmm/virtio/blk"
)

// TestBlkAgainstModel brings the driver up on juice's virtio-blk model and
// moves data both ways: what the driver writes is on the model's disk,
// what the model's disk holds is what the driver reads, and a flush
// reaches the back-end.
func TestBlkAgainstModel(t *testing.T) {
	r := newRig(t, 4<<20, false, "juice-serial-0123456789")
	b := r.open(t, BlkOptions{})
	if b.Capacity() != 8192 || b.Size() != 4<<20 || b.BlockSize() != 512 || b.ReadOnly() || !b.CanFlush() {
		t.Fatalf("capacity %d size %d block %d ro %v flush %v", b.Capacity(), b.Size(), b.BlockSize(), b.ReadOnly(), b.CanFlush())
	}
	if b.MaxTransfer() != DefaultMaxTransfer {
		t.Errorf("max transfer %d", b.MaxTransfer())
	}
	if id, err := b.ID(); err != nil || id != "juice-serial-0123456" {
		t.Errorf("ID = %q, %v", id, err)
	}
	st := b.Transport().Status()
	if st != StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK {
		t.Fatalf("device status %#x", st)
	}
	if f := b.Transport().Features(); f&FeatureVersion1 == 0 || f&BlkFeatureFlush == 0 || f&(1<<13) != 0 {
		t.Errorf("features %#x: want VERSION_1 and FLUSH, not DISCARD", f)
	}
	// A write spanning several bounce-buffer loads, at an odd sector.
	w := make([]byte, 200<<10)
	pattern(w, 1)
	const off = 1<<20 + 3*512
	if n, err := b.WriteAt(w, off); n != len(w) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	onDisk := make([]byte, len(w))
	r.disk.ReadAt(onDisk, off)
	if !bytes.Equal(onDisk, w) {
		t.Fatal("the model's disk does not hold what the driver wrote")
	}
	// Data put on the disk by the model side reads back through the driver.
	other := make([]byte, 64<<10+512)
	pattern(other, 2)
	r.disk.WriteAt(other, 0)
	got := make([]byte, len(other))
	if n, err := b.ReadAt(got, 0); n != len(got) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, other) {
		t.Fatal("ReadAt returned other bytes than the disk holds")
	}
	// The last sector is reachable.
	last := make([]byte, 512)
	if _, err := b.ReadAt(last, int64(b.Size())-512); err != nil {
		t.Fatalf("reading the last sector: %v", err)
	}
	if r.disk.Flushes() != 0 {
		t.Fatal("flushed before Flush")
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if r.disk.Flushes() != 1 {
		t.Fatalf("back-end saw %d flushes, want 1", r.disk.Flushes())
	}
	reqs, nbytes, flushes := b.Stats()
	// ID, 4 write requests (200 KiB in 64 KiB pieces), 2 reads, 1 read, 1 flush.
	if reqs != 9 || nbytes != uint64(len(w)+len(other)+512+IDLen) || flushes != 1 {
		t.Errorf("stats: %d requests, %d bytes, %d flushes", reqs, nbytes, flushes)
	}
	kicks, _ := r.dev.State().Notifications(0)
	if kicks != reqs {
		t.Errorf("device saw %d kicks for %d requests", kicks, reqs)
	}
	if logs := r.deviceLogs(); len(logs) != 0 {
		t.Errorf("the device model complained: %v", logs)
	}
}

// TestBlkChecks covers what the driver refuses before involving the
// device.
func TestBlkChecks(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{})
	buf := make([]byte, 1024)
	for _, c := range []struct {
		name string
		err  error
		do   func() (int, error)
	}{
		{"unaligned offset", ErrAlign, func() (int, error) { return b.ReadAt(buf, 100) }},
		{"unaligned length", ErrAlign, func() (int, error) { return b.WriteAt(buf[:100], 0) }},
		{"negative offset", ErrAlign, func() (int, error) { return b.ReadAt(buf, -512) }},
		{"past the end", ErrRange, func() (int, error) { return b.ReadAt(buf, 1<<20-512) }},
		{"far past the end", ErrRange, func() (int, error) { return b.WriteAt(buf, 1<<62) }},
	} {
		if n, err := c.do(); n != 0 || err != c.err {
			t.Errorf("%s: %d, %v; want %v", c.name, n, err, c.err)
		}
	}
	if n, err := b.ReadAt(nil, 512); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}
	if reqs, _, _ := b.Stats(); reqs != 0 {
		t.Errorf("%d requests reached the device", reqs)
	}
}

// TestBlkReadOnly checks a read-only disk: reads work, writes are refused
// by the driver.
func TestBlkReadOnly(t *testing.T) {
	r := newRig(t, 1<<20, true, "")
	b := r.open(t, BlkOptions{})
	if !b.ReadOnly() {
		t.Fatal("RO not negotiated")
	}
	if _, err := b.WriteAt(make([]byte, 512), 0); err != ErrReadOnly {
		t.Fatalf("write to a read-only disk: %v", err)
	}
	if _, err := b.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}

// TestBlkSmallTransfer splits requests at MaxTransfer.
func TestBlkSmallTransfer(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{MaxTransfer: 4096 + 100})
	if b.MaxTransfer() != 4096 {
		t.Fatalf("max transfer %d, want 4096 (rounded down to sectors)", b.MaxTransfer())
	}
	w := make([]byte, 5*4096+512)
	pattern(w, 3)
	if _, err := b.WriteAt(w, 4096); err != nil {
		t.Fatal(err)
	}
	if reqs, _, _ := b.Stats(); reqs != 6 {
		t.Errorf("%d requests, want 6", reqs)
	}
	got := make([]byte, len(w))
	r.disk.ReadAt(got, 4096)
	if !bytes.Equal(got, w) {
		t.Fatal("disk contents differ")
	}
	// The model's size_max (64 KiB) caps a larger request size.
	r2 := newRig(t, 1<<20, false, "")
	if b2 := r2.open(t, BlkOptions{MaxTransfer: 1 << 20}); b2.MaxTransfer() != vblk.SizeMax {
		t.Errorf("max transfer %d, want the device's size_max %d", b2.MaxTransfer(), vblk.SizeMax)
	}
}

// TestBlkNoAllocs checks that requests allocate nothing.
func TestBlkNoAllocs(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{})
	p := make([]byte, 8192)
	if n := testing.AllocsPerRun(200, func() {
		b.WriteAt(p, 4096)
		b.ReadAt(p, 8192)
		b.Flush()
	}); n != 0 {
		t.Fatalf("a write, a read and a flush allocate %v times", n)
	}
}

// TestBlkAsyncDevice has the device complete requests a little later,
// from another goroutine, as QEMU's does: the driver polls, then sleeps.
func TestBlkAsyncDevice(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{})
	r.delayNotify(3 * time.Millisecond)
	w := make([]byte, 100<<10)
	pattern(w, 4)
	if _, err := b.WriteAt(w, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(w))
	if _, err := b.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, w) {
		t.Fatal("data differs")
	}
}

// TestBlkTimeout: a device that never answers fails the request after the
// timeout, is marked FAILED, and the driver refuses further requests
// (their buffers may still belong to the device).
func TestBlkTimeout(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{Timeout: 20 * time.Millisecond})
	r.notifyHook = func(func()) bool { return true } // notifications are lost
	start := time.Now()
	_, err := b.ReadAt(make([]byte, 512), 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("ReadAt on a silent device: %v", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if b.Transport().Status()&StatusFailed == 0 {
		t.Error("device not marked FAILED")
	}
	r.notifyHook = nil
	if err := b.Flush(); !errors.Is(err, ErrTimeout) {
		t.Errorf("request after the timeout: %v", err)
	}
}

// failingDisk fails reads at one offset.
type failingDisk struct {
	*countingDisk
	at int64
}

func (f *failingDisk) ReadAt(p []byte, off int64) (int, error) {
	if off == f.at {
		return 0, errors.New("medium error")
	}
	return f.countingDisk.ReadAt(p, off)
}

// TestBlkIOError: an I/O error from the device is reported and is not
// fatal.
func TestBlkIOError(t *testing.T) {
	disk := &countingDisk{RAMDisk: vblk.NewRAMDisk(1 << 20)}
	r := newRigWith(t, &failingDisk{countingDisk: disk, at: 8192}, "", disk)
	b := r.open(t, BlkOptions{})
	if _, err := b.ReadAt(make([]byte, 512), 8192); err != ErrIO {
		t.Fatalf("read of a bad sector: %v", err)
	}
	if _, err := b.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("read after an I/O error: %v", err)
	}
}

// TestOpenRefuses checks Open on functions without usable virtio
// structures.
func TestOpenRefuses(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	nic := pci.Function{VendorID: pci.VendorIntel, DeviceID: 0x100e}
	if _, err := Open(r.cs, &nic, r.mapper); err != ErrNotVirtio {
		t.Errorf("e1000: %v", err)
	}
	legacy := pci.Function{Addr: pci.Addr{Dev: 9}, VendorID: pci.VendorRedHat, DeviceID: 0x1001, SubsystemID: 2}
	if _, err := Open(r.cs, &legacy, r.mapper); err != ErrNoModern {
		t.Errorf("legacy-only virtio-blk: %v", err)
	}
	// Capabilities pointing past their BAR are skipped.
	small := r.fn
	small.BARs[0].Size = 0x1000 // the notify area at 0x3000 no longer fits
	if _, err := Open(r.cs, &small, r.mapper); err != ErrNoModern {
		t.Errorf("structures outside the BAR: %v", err)
	}
	// A mapper failure is reported.
	if _, err := Open(r.cs, &r.fn, func(uint8, uint32, uint32) (pci.Regs, error) { return nil, pci.ErrNotMapped }); !errors.Is(err, pci.ErrNotMapped) {
		t.Errorf("mapper failure: %v", err)
	}
	// A non-block device is refused by NewBlk.
	tr, err := Open(r.cs, &r.fn, r.mapper)
	if err != nil {
		t.Fatal(err)
	}
	tr.Type = TypeNet
	if _, err := NewBlk(tr, &r.mem, r.dma, BlkOptions{}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("NewBlk on a network device: %v", err)
	}
}
