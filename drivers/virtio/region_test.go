package virtio

import (
	"bytes"
	"testing"

	vblk "juice/vmm/virtio/blk"
)

var _ vblk.Backend = (*Region)(nil)

// TestRegionNested stacks two machines: a guest's virtio-blk (juice's
// device model) whose back-end is a Region of a host disk driven by Blk
// over a second device model. The guest's driver (Blk again) writes and
// flushes; the data lands at the region's offset on the host's disk and
// the flush reaches the host's back-end.
func TestRegionNested(t *testing.T) {
	host := newRig(t, 8<<20, false, "host-disk")
	hb := host.open(t, BlkOptions{})
	const at = 3 << 20
	region, err := hb.Region(at, 2<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	guest := newRigWith(t, region, "guest-disk", nil)
	gb := guest.open(t, BlkOptions{})
	if gb.Size() != 2<<20 {
		t.Fatalf("guest disk of %d bytes, want the region's 2 MiB", gb.Size())
	}
	w := make([]byte, 150<<10)
	pattern(w, 7)
	if _, err := gb.WriteAt(w, 4096); err != nil {
		t.Fatal(err)
	}
	if err := gb.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(w))
	host.disk.ReadAt(got, at+4096)
	if !bytes.Equal(got, w) {
		t.Fatal("the guest's write is not at the region's offset on the host disk")
	}
	if n := host.disk.Flushes(); n != 1 {
		t.Fatalf("host back-end saw %d flushes, want 1 (the guest's)", n)
	}
	// Reads come from the host disk.
	pattern(got, 8)
	host.disk.WriteAt(got[:4096], at+2<<20-4096)
	back := make([]byte, 4096)
	if _, err := gb.ReadAt(back, 2<<20-4096); err != nil || !bytes.Equal(back, got[:4096]) {
		t.Fatalf("guest read of the region's last page: %v", err)
	}
	// The guest cannot reach past its region: the guest's driver stops
	// it, and so would the region.
	if _, err := gb.ReadAt(back, 2<<20); err != ErrRange {
		t.Fatalf("guest read past its disk: %v", err)
	}
	if _, err := region.WriteAt(back, 2<<20-512); err != ErrRange {
		t.Fatalf("region write straddling its end: %v", err)
	}
	if logs := append(guest.deviceLogs(), host.deviceLogs()...); len(logs) != 0 {
		t.Errorf("device models complained: %v", logs)
	}
}

// TestRegionBounds checks the region's own checks.
func TestRegionBounds(t *testing.T) {
	r := newRig(t, 1<<20, false, "")
	b := r.open(t, BlkOptions{})
	for _, c := range []struct{ off, size uint64 }{{1, 512}, {0, 100}, {0, 0}, {1 << 20, 512}, {512, 1 << 20}} {
		if _, err := b.Region(c.off, c.size, false); err == nil {
			t.Errorf("region %#x+%#x accepted", c.off, c.size)
		}
	}
	ro, err := b.Region(0, 4096, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.WriteAt(make([]byte, 512), 0); err != ErrReadOnly || !ro.ReadOnly() {
		t.Errorf("write to a read-only region: %v", err)
	}
	rw, _ := b.Region(4096, 4096, false)
	if err := rw.Discard(0, 4096); err != nil {
		t.Errorf("discard: %v", err)
	}
	if err := rw.Discard(0, 8192); err != ErrRange {
		t.Errorf("discard past the end: %v", err)
	}
	if _, err := rw.ReadAt(make([]byte, 512), -512); err != ErrRange {
		t.Errorf("negative offset: %v", err)
	}
	p := make([]byte, 4096)
	if n := testing.AllocsPerRun(100, func() {
		rw.WriteAt(p, 0)
		rw.ReadAt(p, 0)
		rw.Flush()
	}); n != 0 {
		t.Fatalf("region requests allocate %v times", n)
	}
}
