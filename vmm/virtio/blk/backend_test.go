package blk

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRAMDisk(t *testing.T) {
	d := NewRAMDisk(3*ramChunk + 100)
	if d.Size() != 3*ramChunk+100 {
		t.Fatal("size")
	}
	buf := make([]byte, 1000)
	if n, err := d.ReadAt(buf, 0); n != 1000 || err != nil || !allZero(buf) {
		t.Fatal("fresh disk must read zeros")
	}
	// Zero writes do not allocate.
	if n, err := d.WriteAt(make([]byte, 2*ramChunk), 0); n != 2*ramChunk || err != nil || d.Allocated() != 0 {
		t.Fatalf("zero write: %d %v allocated %d", n, err, d.Allocated())
	}
	// A write across a chunk boundary.
	data := pattern(5000, 1)
	if n, err := d.WriteAt(data, ramChunk-2000); n != 5000 || err != nil {
		t.Fatal(err)
	}
	if d.Allocated() != 2*ramChunk {
		t.Fatalf("allocated %d", d.Allocated())
	}
	got := make([]byte, 5000)
	d.ReadAt(got, ramChunk-2000)
	if !bytes.Equal(got, data) {
		t.Fatal("read back")
	}
	// Short read/write at the end.
	if n, err := d.ReadAt(make([]byte, 200), 3*ramChunk); n != 100 || err != io.EOF {
		t.Fatalf("read at end: %d %v", n, err)
	}
	if n, err := d.WriteAt(make([]byte, 200), 3*ramChunk); n != 100 || err == nil {
		t.Fatalf("write at end: %d %v", n, err)
	}
	for _, off := range []int64{-1, 3*ramChunk + 101, 1 << 62} {
		if _, err := d.ReadAt(buf, off); !errors.Is(err, ErrRange) {
			t.Errorf("read at %d: %v", off, err)
		}
		if _, err := d.WriteAt(buf, off); !errors.Is(err, ErrRange) {
			t.Errorf("write at %d: %v", off, err)
		}
	}
	for _, r := range [][2]int64{{-1, 1}, {0, -1}, {3 * ramChunk, 101}, {1, 1<<63 - 1}} {
		if err := d.Discard(r[0], r[1]); !errors.Is(err, ErrRange) {
			t.Errorf("discard %v: %v", r, err)
		}
	}
	if err := d.Discard(ramChunk-2000, ramChunk+2000); err != nil {
		t.Fatal(err)
	}
	d.ReadAt(got, ramChunk-2000)
	if !allZero(got) || d.Allocated() != ramChunk { // chunk 0 partly discarded (zeroed), chunk 1 freed
		t.Fatalf("discard: allocated %d", d.Allocated())
	}
	if d.ReadOnly() || d.Flush() != nil {
		t.Fatal("flags")
	}
}

func TestOverlay(t *testing.T) {
	base := pattern(3*OverlayBlock+10, 7)
	orig := bytes.Clone(base)
	o := NewOverlay(base, 5*OverlayBlock)
	if o.Size() != 5*OverlayBlock {
		t.Fatal("size")
	}
	all := make([]byte, 5*OverlayBlock)
	o.ReadAt(all, 0)
	if !bytes.Equal(all[:len(base)], base) || !allZero(all[len(base):]) {
		t.Fatal("initial view: base then zeros")
	}
	data := bytes.Repeat([]byte{0xcc}, 100)
	o.WriteAt(data, OverlayBlock-50) // straddles blocks 0 and 1
	o.WriteAt(data, 3*OverlayBlock)  // block 3 starts 10 bytes of base, then zeros
	if !bytes.Equal(base, orig) {
		t.Fatal("base modified")
	}
	if o.Dirty() != 3 {
		t.Fatalf("dirty %d", o.Dirty())
	}
	o.ReadAt(all, 0)
	want := bytes.Clone(orig)
	want = append(want, make([]byte, 5*OverlayBlock-len(want))...)
	copy(want[OverlayBlock-50:], data)
	copy(want[3*OverlayBlock:], data)
	if !bytes.Equal(all, want) {
		t.Fatal("merged view")
	}
	// Discarding whole blocks reverts them to the base; partial blocks
	// keep their data.
	if err := o.Discard(100, 2*OverlayBlock); err != nil {
		t.Fatal(err)
	}
	if o.Dirty() != 2 {
		t.Fatalf("dirty after discard %d", o.Dirty())
	}
	o.ReadAt(all, 0)
	copy(want[OverlayBlock:], orig[OverlayBlock:OverlayBlock+50])
	if !bytes.Equal(all, want) {
		t.Fatal("view after discard")
	}
	if _, err := o.ReadAt(all, 5*OverlayBlock+1); !errors.Is(err, ErrRange) {
		t.Fatal("range")
	}
	// size 0 means len(base).
	if NewOverlay(base, 0).Size() != uint64(len(base)) {
		t.Fatal("default size")
	}
}

func TestReadOnlyWrapper(t *testing.T) {
	d := NewRAMDisk(4096)
	d.WriteAt([]byte{1, 2, 3}, 0)
	r := NewReadOnly(d)
	if !r.ReadOnly() || r.Size() != 4096 {
		t.Fatal("flags")
	}
	if _, err := r.WriteAt([]byte{9}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatal("write accepted")
	}
	if err := r.Discard(0, 512); !errors.Is(err, ErrReadOnly) {
		t.Fatal("discard accepted")
	}
	b := make([]byte, 3)
	r.ReadAt(b, 0)
	if !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Fatal("read")
	}
}
