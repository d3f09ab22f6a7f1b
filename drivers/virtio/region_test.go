package virtio

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

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

// TestRegionsShareHostDisk: two guests' disks on one host disk, each
// guest driving its disk from its own goroutine. The host driver
// serializes them (the race detector watches: the host device model
// answers inside the notification here, so the only shared memory is
// the driver's); every guest write is on the host disk when the guest
// sees it complete (juice caches nothing), before any flush; each
// guest's flushes reach the host; neither region sees the other's data.
func TestRegionsShareHostDisk(t *testing.T) {
	host := newRig(t, 8<<20, false, "host-disk")
	hb := host.open(t, BlkOptions{})
	const size = 1 << 20
	var guests [2]*Blk
	for i := range guests {
		region, err := hb.Region(uint64(1+2*i)<<20, size, false)
		if err != nil {
			t.Fatal(err)
		}
		guests[i] = newRigWith(t, region, fmt.Sprintf("guest-%d", i), nil).open(t, BlkOptions{})
	}
	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for i, g := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := make([]byte, 24<<10)
			got := make([]byte, len(w))
			onHost := make([]byte, len(w))
			for k := range rounds {
				pattern(w, uint32(100*i+k))
				off := int64(k%8) * int64(len(w)+4096)
				if _, err := g.WriteAt(w, off); err != nil {
					errs <- fmt.Errorf("guest %d write %d: %v", i, k, err)
					return
				}
				host.disk.ReadAt(onHost, int64(1+2*i)<<20+off)
				if !bytes.Equal(onHost, w) {
					errs <- fmt.Errorf("guest %d write %d completed before it reached the host disk", i, k)
					return
				}
				if err := g.Flush(); err != nil {
					errs <- fmt.Errorf("guest %d flush %d: %v", i, k, err)
					return
				}
				if _, err := g.ReadAt(got, off); err != nil || !bytes.Equal(got, w) {
					errs <- fmt.Errorf("guest %d read-back %d: %v, equal %v", i, k, err, bytes.Equal(got, w))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := host.disk.Flushes(); n != 2*rounds {
		t.Errorf("host back-end saw %d flushes, want the guests' %d", n, 2*rounds)
	}
	// Nothing outside the two regions was written.
	zero := make([]byte, 1<<20)
	for _, mib := range []int64{0, 2, 4, 5, 6, 7} {
		got := make([]byte, 1<<20)
		host.disk.ReadAt(got, mib<<20)
		if !bytes.Equal(got, zero) {
			t.Errorf("host disk MiB %d was written", mib)
		}
	}
	if reqs, _, flushes := hb.Stats(); flushes != 2*rounds || reqs < 3*2*rounds {
		t.Errorf("host driver stats: %d requests, %d flushes", reqs, flushes)
	}
}

// TestRegionHostFailure: when the host disk stops answering, the guest's
// request fails with an I/O error after the host driver's timeout (the
// guest's device keeps working and is not put into NEEDS_RESET), and
// every later request on the failed host disk fails at once.
func TestRegionHostFailure(t *testing.T) {
	host := newRig(t, 4<<20, false, "host-disk")
	hb := host.open(t, BlkOptions{Timeout: 30 * time.Millisecond})
	region, err := hb.Region(1<<20, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	guest := newRigWith(t, region, "guest", nil)
	gb := guest.open(t, BlkOptions{})
	host.notifyHook = func(func()) bool { return true } // the host device goes silent
	start := time.Now()
	if _, err := gb.WriteAt(make([]byte, 4096), 0); err != ErrIO {
		t.Fatalf("guest write to a silent host disk: %v, want ErrIO", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Errorf("the guest's request took %v", d)
	}
	start = time.Now()
	if err := gb.Flush(); err != ErrIO {
		t.Errorf("guest flush on a failed host disk: %v, want ErrIO", err)
	}
	if _, err := gb.ReadAt(make([]byte, 512), 0); err != ErrIO {
		t.Errorf("guest read on a failed host disk: %v, want ErrIO", err)
	}
	if d := time.Since(start); d > 25*time.Millisecond {
		t.Errorf("requests on the failed host disk took %v, want an immediate error", d)
	}
	if logs := guest.deviceLogs(); len(logs) != 0 {
		t.Errorf("the guest's device failed: %v", logs)
	}
	if guest.dev == nil || gb.Transport().Status()&(StatusNeedsReset|StatusFailed) != 0 {
		t.Errorf("guest device status %#x", gb.Transport().Status())
	}
}
