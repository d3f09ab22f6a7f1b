package disk

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// memDisk is a Device over a byte slice that counts flushes.
type memDisk struct {
	b       []byte
	ro      bool
	flushes int
}

func (m *memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.b[off:]), nil }
func (m *memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memDisk) Flush() error                             { m.flushes++; return nil }
func (m *memDisk) Size() uint64                             { return uint64(len(m.b)) }
func (m *memDisk) ReadOnly() bool                           { return m.ro }

var (
	errRange = errors.New("range")
	errRO    = errors.New("read-only")
	errAlign = errors.New("align")
	testErrs = &Errors{Range: errRange, ReadOnly: errRO, Align: errAlign}
)

func TestNewRegionBounds(t *testing.T) {
	d := &memDisk{b: make([]byte, 64<<10)}
	for _, c := range []struct {
		off, size uint64
		want      error
	}{
		{100, 512, errAlign}, {0, 0, errAlign}, {0, 100, errAlign},
		{64 << 10, 512, errRange}, {32 << 10, 33 << 10, errRange}, {math.MaxUint64 - 511, 1024, errRange},
	} {
		_, err := NewRegion(d, "disk0", testErrs, c.off, c.size, false)
		if !errors.Is(err, c.want) || !strings.HasPrefix(err.Error(), "disk0: region ") {
			t.Errorf("region %#x+%#x: %v, want %v", c.off, c.size, err, c.want)
		}
	}
	if r, err := NewRegion(d, "disk0", testErrs, 0, 64<<10, false); err != nil || r.Size() != 64<<10 {
		t.Fatalf("whole disk: %v", err)
	}
}

func TestRegionIO(t *testing.T) {
	d := &memDisk{b: make([]byte, 64<<10)}
	r, err := NewRegion(d, "disk0", testErrs, 8<<10, 16<<10, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset() != 8<<10 || r.ReadOnly() {
		t.Fatalf("offset %#x read-only %v", r.Offset(), r.ReadOnly())
	}
	data := bytes.Repeat([]byte{0xa5}, 1024)
	if n, err := r.WriteAt(data, 15<<10); n != 1024 || err != nil {
		t.Fatalf("write at the end: %d %v", n, err)
	}
	if !bytes.Equal(d.b[23<<10:24<<10], data) || d.b[24<<10] != 0 || d.b[23<<10-1] != 0 {
		t.Fatal("the write did not land at the region's offset alone")
	}
	got := make([]byte, 1024)
	if n, err := r.ReadAt(got, 15<<10); n != 1024 || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d %v", n, err)
	}
	for _, off := range []int64{-512, 15<<10 + 512, 16 << 10, math.MaxInt64} {
		if _, err := r.ReadAt(got, off); !errors.Is(err, errRange) {
			t.Errorf("read at %#x: %v", off, err)
		}
		if _, err := r.WriteAt(got, off); !errors.Is(err, errRange) {
			t.Errorf("write at %#x: %v", off, err)
		}
	}
	if err := r.Discard(0, 16<<10); err != nil {
		t.Errorf("discard of the whole region: %v", err)
	}
	for _, c := range [][2]int64{{0, 16<<10 + 1}, {-1, 1}, {0, -1}, {1, math.MaxInt64}} {
		if err := r.Discard(c[0], c[1]); !errors.Is(err, errRange) {
			t.Errorf("discard %v: %v", c, err)
		}
	}
	if r.Flush() != nil || d.flushes != 1 {
		t.Errorf("flush reached the disk %d times", d.flushes)
	}
	if a := testing.AllocsPerRun(100, func() { r.ReadAt(got, 0); r.WriteAt(got, 512) }); a != 0 {
		t.Errorf("%v allocations per request", a)
	}
}

func TestRegionReadOnly(t *testing.T) {
	d := &memDisk{b: make([]byte, 8<<10)}
	ro, _ := NewRegion(d, "disk0", testErrs, 0, 4096, true)
	if _, err := ro.WriteAt(make([]byte, 512), 0); !errors.Is(err, errRO) {
		t.Errorf("write to a read-only region: %v", err)
	}
	if err := ro.Discard(0, 512); !errors.Is(err, errRO) {
		t.Errorf("discard on a read-only region: %v", err)
	}
	d.ro = true
	r, _ := NewRegion(d, "disk0", testErrs, 0, 4096, false)
	if !r.ReadOnly() {
		t.Error("a region of a read-only disk takes writes")
	}
	if _, err := r.ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("read from a read-only region: %v", err)
	}
}
