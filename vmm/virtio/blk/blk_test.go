package blk

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"juice/vmm"
	"juice/vmm/virtio"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	ramSize  = 32 << 20
	ringAt   = 0x1000
	hdrAt    = 0x10000
	statusAt = 0x10100
	tableAt  = 0x11000
	dataAt   = 0x100000
	diskSize = 8 << 20
)

type rig struct {
	mem  *vmm.GuestMemory
	be   Backend
	dev  *Device
	s    *virtio.State
	drv  *vt.MMIO
	r    *vt.Ring
	line bool
	logs []string
	feat uint64
}

func newRig(t testing.TB, be Backend, want uint64) *rig {
	t.Helper()
	g := &rig{mem: vmm.NewGuestMemory(make([]byte, ramSize), 0), be: be}
	g.dev = New(be, Options{Serial: "juice-disk-0"})
	g.s = virtio.NewState(g.dev, g.mem, nil, func(s string) { g.logs = append(g.logs, s) })
	g.drv = &vt.MMIO{Dev: virtio.NewMMIO(g.s, func(l bool) { g.line = l })}
	g.r = vt.NewRing(g.mem, 256, ringAt)
	f, err := g.drv.Init(want, []*vt.Ring{g.r})
	if err != nil {
		t.Fatal(err)
	}
	g.feat = f
	return g
}

func (g *rig) ram(gpa, n uint64) []byte {
	b, ok := g.mem.Slice(gpa, n)
	if !ok {
		panic("outside RAM")
	}
	return b
}

func (g *rig) header(typ uint32, sector uint64) {
	h := g.ram(hdrAt, 16)
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], 0)
	binary.LittleEndian.PutUint64(h[8:], sector)
	g.ram(statusAt, 1)[0] = 0xff
}

// do submits header + data + status, kicks, and returns status and used
// length.
func (g *rig) do(t testing.TB, typ uint32, sector uint64, data ...vt.Buf) (byte, uint32) {
	t.Helper()
	g.header(typ, sector)
	bufs := append([]vt.Buf{{Addr: hdrAt, Len: 16}}, data...)
	bufs = append(bufs, vt.Buf{Addr: statusAt, Len: 1, Write: true})
	head := g.r.Add(bufs...)
	g.drv.Notify(0)
	id, ln, ok := g.r.PopUsed()
	if !ok || id != uint32(head) {
		t.Fatalf("request not completed (ok=%v id=%d head=%d, status %#x, logs %q)", ok, id, head, g.drv.Status(), g.logs)
	}
	g.drv.Ack()
	return g.ram(statusAt, 1)[0], ln
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func TestConfigAndFeatures(t *testing.T) {
	g := newRig(t, NewRAMDisk(diskSize+100), ^uint64(0))
	if g.drv.R(0x008) != 2 {
		t.Fatal("device ID")
	}
	want := FeatureSizeMax | FeatureSegMax | FeatureBlkSize | FeatureFlush | FeatureDiscard
	want |= virtio.FeatureEventIdx | virtio.FeatureIndirectDesc
	if g.feat&0xffffffff != want {
		t.Fatalf("features %#x, want %#x", g.feat&0xffffffff, want)
	}
	for _, c := range []struct {
		off  uint64
		want uint64
	}{
		{cfgSizeMax, SizeMax},
		{cfgSegMax, SegMax},
		{cfgBlkSize, 512},
		{cfgMaxDiscardSectors, MaxDiscardSectors},
		{cfgMaxDiscardSeg, MaxDiscardSeg},
		{cfgDiscardAlignment, 8},
	} {
		if got := g.drv.Config(c.off, 4); got != c.want {
			t.Errorf("config %#x = %d, want %d", c.off, got, c.want)
		}
	}
	if got := g.drv.Config64(cfgCapacity); got != diskSize/512 {
		t.Fatalf("capacity %d sectors", got)
	}
	ro := newRig(t, NewReadOnly(NewRAMDisk(4096)), ^uint64(0))
	if ro.feat&FeatureRO == 0 || ro.feat&FeatureDiscard != 0 {
		t.Fatalf("read-only features %#x", ro.feat)
	}
}

func TestReadWriteRoundTrip(t *testing.T) {
	for _, be := range []struct {
		name string
		b    Backend
	}{{"ram", NewRAMDisk(diskSize)}, {"overlay", NewOverlay(pattern(diskSize/2, 0x5a), diskSize)}} {
		t.Run(be.name, func(t *testing.T) {
			g := newRig(t, be.b, ^uint64(0))
			data := pattern(3*512, 1)
			copy(g.ram(dataAt, 1024), data[:1024])
			copy(g.ram(dataAt+0x10000, 512), data[1024:])
			// A write split over two data descriptors, crossing a 4 KiB
			// block and a 64 KiB chunk boundary.
			sector := uint64(65536/512 - 1)
			st, ln := g.do(t, typeOut, sector, vt.Buf{Addr: dataAt, Len: 1024}, vt.Buf{Addr: dataAt + 0x10000, Len: 512})
			if st != StatusOK || ln != 1 {
				t.Fatalf("write status %d used %d", st, ln)
			}
			// Read back into three writable buffers.
			st, ln = g.do(t, typeIn, sector,
				vt.Buf{Addr: dataAt + 0x20000, Len: 512, Write: true},
				vt.Buf{Addr: dataAt + 0x30000, Len: 512, Write: true},
				vt.Buf{Addr: dataAt + 0x40000, Len: 512, Write: true})
			if st != StatusOK || ln != 3*512+1 {
				t.Fatalf("read status %d used %d", st, ln)
			}
			got := append(append(append([]byte{}, g.ram(dataAt+0x20000, 512)...), g.ram(dataAt+0x30000, 512)...), g.ram(dataAt+0x40000, 512)...)
			if !bytes.Equal(got, data) {
				t.Fatal("read data differs from written data")
			}
			// The back-end holds it.
			back := make([]byte, len(data))
			be.b.ReadAt(back, int64(sector*512))
			if !bytes.Equal(back, data) {
				t.Fatal("back-end content")
			}
			// Flush and GET_ID.
			if st, ln := g.do(t, typeFlush, 0); st != StatusOK || ln != 1 {
				t.Fatalf("flush %d %d", st, ln)
			}
			id := g.ram(dataAt+0x50000, 20)
			copy(id, bytes.Repeat([]byte{0xee}, 20))
			if st, ln := g.do(t, typeGetID, 0, vt.Buf{Addr: dataAt + 0x50000, Len: 20, Write: true}); st != StatusOK || ln != 21 {
				t.Fatalf("get id %d %d", st, ln)
			}
			if string(id) != "juice-disk-0\x00\x00\x00\x00\x00\x00\x00\x00" {
				t.Fatalf("id %q", id)
			}
		})
	}
}

func TestIndirectRequest(t *testing.T) {
	g := newRig(t, NewRAMDisk(diskSize), ^uint64(0))
	copy(g.ram(dataAt, 512), pattern(512, 9))
	g.header(typeOut, 10)
	g.r.AddIndirect(tableAt, vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: dataAt, Len: 512}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
	g.drv.Notify(0)
	if _, _, ok := g.r.PopUsed(); !ok || g.ram(statusAt, 1)[0] != StatusOK {
		t.Fatal("indirect write")
	}
	back := make([]byte, 512)
	g.be.ReadAt(back, 10*512)
	if !bytes.Equal(back, pattern(512, 9)) {
		t.Fatal("indirect write data")
	}
}

func TestHeaderSplitAcrossDescriptors(t *testing.T) {
	g := newRig(t, NewRAMDisk(diskSize), ^uint64(0))
	g.header(typeIn, 1)
	// Header as 4 + 12 bytes: devices must not assume the layout.
	copy(g.ram(hdrAt+0x200, 12), g.ram(hdrAt+4, 12))
	g.r.Add(vt.Buf{Addr: hdrAt, Len: 4}, vt.Buf{Addr: hdrAt + 0x200, Len: 12},
		vt.Buf{Addr: dataAt, Len: 512, Write: true}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
	g.drv.Notify(0)
	if _, ln, ok := g.r.PopUsed(); !ok || ln != 513 || g.ram(statusAt, 1)[0] != StatusOK {
		t.Fatal("split header")
	}
}

func TestRequestErrors(t *testing.T) {
	g := newRig(t, NewRAMDisk(diskSize), ^uint64(0))
	capSectors := uint64(diskSize / 512)
	w := func(n uint32) vt.Buf { return vt.Buf{Addr: dataAt, Len: n, Write: true} }
	r := func(n uint32) vt.Buf { return vt.Buf{Addr: dataAt, Len: n} }
	for _, tc := range []struct {
		name   string
		typ    uint32
		sector uint64
		data   []vt.Buf
		want   byte
		used   uint32
	}{
		{"read past end", typeIn, capSectors, []vt.Buf{w(512)}, StatusIOErr, 0},
		{"read straddling end", typeIn, capSectors - 1, []vt.Buf{w(1024)}, StatusIOErr, 0},
		{"read at end, zero length", typeIn, capSectors, nil, StatusOK, 1},
		{"sector overflow", typeIn, 1 << 63, []vt.Buf{w(512)}, StatusIOErr, 0},
		{"sector max", typeOut, ^uint64(0), []vt.Buf{r(512)}, StatusIOErr, 1},
		{"read not sector multiple", typeIn, 0, []vt.Buf{w(100)}, StatusIOErr, 0},
		{"write not sector multiple", typeOut, 0, []vt.Buf{r(513)}, StatusIOErr, 1},
		{"read with readable data", typeIn, 0, []vt.Buf{r(512)}, StatusIOErr, 1},
		{"write with writable data", typeOut, 0, []vt.Buf{w(512)}, StatusIOErr, 0},
		{"read too large", typeIn, 0, []vt.Buf{w(MaxRequestBytes + 512)}, StatusIOErr, 0},
		{"unknown type", 99, 0, nil, StatusUnsupp, 1},
		{"write zeroes not offered", typeWriteZeroes, 0, []vt.Buf{r(16)}, StatusUnsupp, 1},
		{"get id short buffer", typeGetID, 0, []vt.Buf{w(4)}, StatusOK, 5},
	} {
		st, used := g.do(t, tc.typ, tc.sector, tc.data...)
		if st != tc.want || used != tc.used {
			t.Errorf("%s: status %d used %d, want %d used %d", tc.name, st, used, tc.want, tc.used)
		}
	}
	if g.drv.Status()&virtio.StatusNeedsReset != 0 {
		t.Fatal("request errors must not reset the device")
	}
	if g.be.(*RAMDisk).Allocated() != 0 {
		t.Fatal("failed writes changed the disk")
	}
}

func TestReadOnly(t *testing.T) {
	base := pattern(diskSize, 3)
	g := newRig(t, NewReadOnly(NewOverlay(base, 0)), ^uint64(0))
	copy(g.ram(dataAt, 512), bytes.Repeat([]byte{0x11}, 512))
	if st, _ := g.do(t, typeOut, 0, vt.Buf{Addr: dataAt, Len: 512}); st != StatusIOErr {
		t.Fatalf("write on read-only disk: status %d", st)
	}
	seg := g.ram(dataAt+0x1000, 16)
	binary.LittleEndian.PutUint64(seg, 0)
	binary.LittleEndian.PutUint32(seg[8:], 8)
	if st, _ := g.do(t, typeDiscard, 0, vt.Buf{Addr: dataAt + 0x1000, Len: 16}); st != StatusIOErr {
		t.Fatalf("discard on read-only disk: status %d", st)
	}
	if !bytes.Equal(base, pattern(diskSize, 3)) {
		t.Fatal("base changed")
	}
	if st, _ := g.do(t, typeIn, 0, vt.Buf{Addr: dataAt, Len: 512, Write: true}); st != StatusOK || !bytes.Equal(g.ram(dataAt, 512), base[:512]) {
		t.Fatal("read on read-only disk")
	}
}

func discardSeg(b []byte, sector uint64, num, flags uint32) {
	binary.LittleEndian.PutUint64(b, sector)
	binary.LittleEndian.PutUint32(b[8:], num)
	binary.LittleEndian.PutUint32(b[12:], flags)
}

func TestDiscard(t *testing.T) {
	disk := NewRAMDisk(diskSize)
	disk.WriteAt(bytes.Repeat([]byte{0x77}, 256<<10), 0)
	g := newRig(t, disk, ^uint64(0))
	segs := g.ram(dataAt, 64)
	discardSeg(segs[0:], 0, 128, 0)  // 64 KiB: one whole chunk
	discardSeg(segs[16:], 200, 8, 0) // partial chunk
	if st, used := g.do(t, typeDiscard, 0, vt.Buf{Addr: dataAt, Len: 32}); st != StatusOK || used != 1 {
		t.Fatalf("discard status %d used %d", st, used)
	}
	back := make([]byte, 256<<10)
	disk.ReadAt(back, 0)
	for i, b := range back {
		discarded := i < 64<<10 || (i >= 200*512 && i < 208*512)
		if discarded != (b == 0) {
			t.Fatalf("byte %#x = %#x after discard", i, b)
		}
	}
	if disk.Allocated() != 3*ramChunk {
		t.Fatalf("allocated %d, the discarded chunk must be freed", disk.Allocated())
	}
	for _, tc := range []struct {
		name string
		seg  func(b []byte)
		n    uint32
		want byte
	}{
		{"unmap flag", func(b []byte) { discardSeg(b, 0, 8, 1) }, 16, StatusUnsupp},
		{"reserved flag", func(b []byte) { discardSeg(b, 0, 8, 4) }, 16, StatusUnsupp},
		{"too many sectors", func(b []byte) { discardSeg(b, 0, MaxDiscardSectors+1, 0) }, 16, StatusIOErr},
		{"past end", func(b []byte) { discardSeg(b, diskSize/512-4, 8, 0) }, 16, StatusIOErr},
		{"sector overflow", func(b []byte) { discardSeg(b, ^uint64(0)-2, 8, 0) }, 16, StatusIOErr},
		{"not a multiple of 16", func(b []byte) { discardSeg(b, 0, 8, 0) }, 20, StatusIOErr},
		{"too many segments", func(b []byte) {}, 16 * (MaxDiscardSeg + 1), StatusIOErr},
	} {
		clear(g.ram(dataAt, 0x1000))
		tc.seg(g.ram(dataAt, 16))
		if st, _ := g.do(t, typeDiscard, 0, vt.Buf{Addr: dataAt, Len: tc.n}); st != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, st, tc.want)
		}
	}
	// Without DISCARD negotiated the request is unsupported.
	g2 := newRig(t, NewRAMDisk(diskSize), ^FeatureDiscard)
	discardSeg(g2.ram(dataAt, 16), 0, 8, 0)
	if st, _ := g2.do(t, typeDiscard, 0, vt.Buf{Addr: dataAt, Len: 16}); st != StatusUnsupp {
		t.Fatalf("discard not negotiated: status %d", st)
	}
}

func TestMalformedRequestsNeedReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		bufs []vt.Buf
		want string
	}{
		{"header too short", []vt.Buf{{Addr: hdrAt, Len: 8}, {Addr: statusAt, Len: 1, Write: true}}, "header needs 16"},
		{"no status byte", []vt.Buf{{Addr: hdrAt, Len: 16}}, "no device-writable status"},
		{"writable before readable", []vt.Buf{{Addr: statusAt, Len: 1, Write: true}, {Addr: hdrAt, Len: 16}}, "readable buffer after a device-writable"},
		{"only writable", []vt.Buf{{Addr: hdrAt, Len: 16, Write: true}, {Addr: statusAt, Len: 1, Write: true}}, "header needs 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, NewRAMDisk(diskSize), ^uint64(0))
			g.header(typeIn, 0)
			g.r.Add(tc.bufs...)
			g.drv.Notify(0)
			if g.drv.Status()&virtio.StatusNeedsReset == 0 {
				t.Fatalf("status %#x", g.drv.Status())
			}
			if len(g.logs) != 1 || !strings.Contains(g.logs[0], tc.want) || !strings.Contains(g.logs[0], "virtio-blk") {
				t.Fatalf("logs %q", g.logs)
			}
			if g.r.UsedIdx() != 0 {
				t.Fatal("malformed request completed")
			}
		})
	}
}

// TestPersistence: data written survives a device reset and a new
// device over the same back-end (juice keeps back-ends across reboots).
func TestPersistence(t *testing.T) {
	disk := NewOverlay(make([]byte, diskSize), 0)
	g := newRig(t, disk, ^uint64(0))
	copy(g.ram(dataAt, 4096), pattern(4096, 42))
	if st, _ := g.do(t, typeOut, 8, vt.Buf{Addr: dataAt, Len: 4096}); st != StatusOK {
		t.Fatal("write")
	}
	g.do(t, typeFlush, 0)
	g.drv.W(0x70, 0) // guest reset
	g.r = vt.NewRing(g.mem, 256, ringAt)
	if _, err := g.drv.Init(^uint64(0), []*vt.Ring{g.r}); err != nil {
		t.Fatal(err)
	}
	clear(g.ram(dataAt, 4096))
	if st, _ := g.do(t, typeIn, 8, vt.Buf{Addr: dataAt, Len: 4096, Write: true}); st != StatusOK || !bytes.Equal(g.ram(dataAt, 4096), pattern(4096, 42)) {
		t.Fatal("data lost across device reset")
	}
	g2 := newRig(t, disk, ^uint64(0))
	if st, _ := g2.do(t, typeIn, 8, vt.Buf{Addr: dataAt, Len: 4096, Write: true}); st != StatusOK || !bytes.Equal(g2.ram(dataAt, 4096), pattern(4096, 42)) {
		t.Fatal("data lost across devices")
	}
}

func TestNotifyByteBudget(t *testing.T) {
	g := newRig(t, NewRAMDisk(diskSize), ^uint64(0))
	const per = 4 << 20
	n := MaxNotifyBytes/per + 2
	for i := 0; i < n; i++ {
		g.header(typeIn, 0)
		g.r.Add(vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: dataAt, Len: per, Write: true}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
	}
	g.drv.Notify(0)
	if got := int(g.r.UsedIdx()); got != MaxNotifyBytes/per || !g.s.Pending() {
		t.Fatalf("one notify served %d requests of 4 MiB (pending %v)", got, g.s.Pending())
	}
	g.drv.Ack()
	if got := int(g.r.UsedIdx()); got != n {
		t.Fatalf("after ack %d", got)
	}
}

func TestAllocs(t *testing.T) {
	for _, be := range []Backend{NewRAMDisk(diskSize), NewOverlay(make([]byte, diskSize), 0)} {
		g := newRig(t, be, ^uint64(0))
		copy(g.ram(dataAt, 8192), pattern(8192, 1))
		g.do(t, typeOut, 16, vt.Buf{Addr: dataAt, Len: 8192}) // allocate the blocks first
		seg := g.ram(dataAt+0x10000, 16)
		discardSeg(seg, 64, 8, 0)
		allocs := testing.AllocsPerRun(100, func() {
			g.header(typeOut, 16)
			g.r.Add(vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: dataAt, Len: 4096}, vt.Buf{Addr: dataAt + 4096, Len: 4096}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
			g.drv.Notify(0)
			g.header(typeIn, 16)
			g.r.AddIndirect(tableAt, vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: dataAt + 0x8000, Len: 8192, Write: true}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
			g.drv.Notify(0)
			g.header(typeFlush, 0)
			g.r.Add(vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
			g.drv.Notify(0)
			g.header(typeDiscard, 0)
			g.r.Add(vt.Buf{Addr: hdrAt, Len: 16}, vt.Buf{Addr: dataAt + 0x10000, Len: 16}, vt.Buf{Addr: statusAt, Len: 1, Write: true})
			g.drv.Notify(0)
			g.drv.Ack()
			for {
				if _, _, ok := g.r.PopUsed(); !ok {
					break
				}
			}
		})
		if allocs != 0 {
			t.Fatalf("%T: %v allocations per request batch", be, allocs)
		}
		if g.ram(statusAt, 1)[0] != StatusOK || !bytes.Equal(g.ram(dataAt+0x8000, 8192), pattern(8192, 1)) {
			t.Fatal("requests failed")
		}
	}
}
