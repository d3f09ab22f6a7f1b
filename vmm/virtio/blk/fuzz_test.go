package blk

import (
	"bytes"
	"encoding/binary"
	"testing"

	"juice/vmm"
	"juice/vmm/virtio"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	fuzzRAM   = 512 << 10
	fuzzGuard = 4096
	fuzzDisk  = 64 << 10
)

// FuzzBlk submits arbitrary requests (header, descriptor layout, data,
// read-only or not, direct or indirect) to a block device brought up
// through virtio-mmio: no panics, no access outside guest RAM, every
// completed request carries a valid status, and a read-only disk never
// changes.
func FuzzBlk(f *testing.F) {
	hdr := func(typ uint32, sector uint64) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint64(b[8:], sector)
		return b
	}
	// Layout records: flags (bit0 write, bit1 end chain here), len lo/hi,
	// address selector.
	rw := []byte{0, 16, 0, 0, 1, 0, 2, 1, 1, 1, 0, 2}   // header, 512 writable, status
	wr := []byte{0, 16, 0, 0, 0, 0, 2, 1, 1, 1, 0, 2}   // header, 512 readable, status
	st := []byte{0, 16, 0, 0, 1, 1, 0, 2}               // header, status
	dis := []byte{0, 16, 0, 0, 0, 16, 0, 3, 1, 1, 0, 2} // header, one discard segment, status
	bad := []byte{1, 1, 0, 2, 0, 16, 0, 0}              // writable before readable
	f.Add(hdr(typeIn, 0), rw, []byte{}, false, false)
	f.Add(hdr(typeOut, 3), wr, []byte("data"), false, true)
	f.Add(hdr(typeOut, 3), wr, []byte("data"), true, false)
	f.Add(hdr(typeFlush, 0), st, []byte{}, false, false)
	f.Add(hdr(typeGetID, 0), []byte{0, 16, 0, 0, 1, 20, 0, 1, 1, 1, 0, 2}, []byte{}, false, true)
	f.Add(hdr(typeDiscard, 0), dis, []byte{0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0}, false, false)
	f.Add(hdr(typeIn, 127), rw, []byte{}, false, false)
	f.Add(hdr(typeIn, 0), bad, []byte{}, false, false)
	f.Add(hdr(typeIn, ^uint64(0)), []byte{0, 8, 0, 0}, []byte{}, false, false)

	buf := make([]byte, fuzzRAM+2*fuzzGuard)
	base := pattern(fuzzDisk, 0x3c)
	f.Fuzz(func(t *testing.T, header, layout, data []byte, ro, indirect bool) {
		for i := 0; i < fuzzGuard; i++ {
			buf[i], buf[fuzzGuard+fuzzRAM+i] = 0xa5, 0xa5
		}
		ram := buf[fuzzGuard : fuzzGuard+fuzzRAM : fuzzGuard+fuzzRAM]
		clear(ram)
		mem := vmm.NewGuestMemory(ram, 0)
		var be Backend = NewOverlay(base, 0)
		if ro {
			be = NewReadOnly(be)
		}
		s := virtio.NewState(New(be, Options{Serial: "fuzz"}), mem, nil, nil)
		drv := &vt.MMIO{Dev: virtio.NewMMIO(s, nil)}
		r := vt.NewRing(mem, 16, 0x1000)
		if _, err := drv.Init(^uint64(0), []*vt.Ring{r}); err != nil {
			t.Fatal(err)
		}
		const hdrAt, dataBase = 0x8000, 0x10000
		copy(ram[hdrAt:hdrAt+32], header)
		copy(ram[dataBase:], data)
		var bufs []vt.Buf
		for len(layout) >= 4 && len(bufs) < 16 {
			rec := layout[:4]
			layout = layout[4:]
			ln := uint32(binary.LittleEndian.Uint16(rec[1:]))
			var addr uint64
			switch sel := rec[3]; sel {
			case 0:
				addr = hdrAt
			case 0xff:
				addr = fuzzRAM - uint64(ln)/2 // straddles the end of RAM
			case 0xfe:
				addr = ^uint64(0) - 8 // wraps
			default:
				addr = dataBase + uint64(sel%96)*0x1000
			}
			bufs = append(bufs, vt.Buf{Addr: addr, Len: ln, Write: rec[0]&1 != 0})
			if rec[0]&2 != 0 {
				break
			}
		}
		if len(bufs) == 0 {
			return
		}
		if indirect {
			r.AddIndirect(0x9000, bufs...)
		} else {
			r.Add(bufs...)
		}
		drv.Notify(0)
		drv.Ack()
		if id, _, ok := r.PopUsed(); ok {
			if s.Status()&virtio.StatusNeedsReset != 0 {
				t.Fatal("completed a request and needs reset")
			}
			last := bufs[len(bufs)-1]
			if !last.Write || id != 0 {
				t.Fatalf("completed chain %d whose last buffer is not writable", id)
			}
			if b, ok := mem.Slice(last.Addr+uint64(last.Len)-1, 1); ok && b[0] > StatusUnsupp {
				t.Fatalf("status byte %d", b[0])
			}
		}
		for i := 0; i < fuzzGuard; i++ {
			if buf[i] != 0xa5 || buf[fuzzGuard+fuzzRAM+i] != 0xa5 {
				t.Fatalf("wrote outside guest RAM (guard byte %d)", i)
			}
		}
		if ro {
			got := make([]byte, fuzzDisk)
			be.ReadAt(got, 0)
			if !bytes.Equal(got, base) {
				t.Fatal("read-only disk changed")
			}
		}
		if !bytes.Equal(base, pattern(fuzzDisk, 0x3c)) {
			t.Fatal("overlay base modified")
		}
	})
}
