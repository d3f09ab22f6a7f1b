package virtio

import (
	"bytes"
	"encoding/binary"
	"testing"

	"juice/vmm"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	fuzzRAM   = 64 << 10
	fuzzGuard = 4096
)

// guarded returns RAM of fuzzRAM bytes with guard bytes on both sides and
// a check that they are intact.
func guarded(t *testing.T, buf []byte) (*vmm.GuestMemory, func()) {
	for i := 0; i < fuzzGuard; i++ {
		buf[i], buf[fuzzGuard+fuzzRAM+i] = 0xa5, 0xa5
	}
	ram := buf[fuzzGuard : fuzzGuard+fuzzRAM : fuzzGuard+fuzzRAM]
	clear(ram)
	return vmm.NewGuestMemory(ram, 0), func() {
		t.Helper()
		for i := 0; i < fuzzGuard; i++ {
			if buf[i] != 0xa5 || buf[fuzzGuard+fuzzRAM+i] != 0xa5 {
				t.Fatalf("wrote outside guest RAM (guard byte %d)", i)
			}
		}
	}
}

// FuzzQueue feeds arbitrary RAM contents, ring addresses and available
// indices to a queue: the Next/Done loop must terminate within the
// budget, never panic, and never touch memory outside RAM.
func FuzzQueue(f *testing.F) {
	// Seeds: a valid ring with a few chains, and the malformed cases.
	for _, tc := range append([]malformed{{name: "ok", setup: func(m *vmm.GuestMemory, r *vt.Ring) {
		r.Add(vt.Buf{Addr: 0x400, Len: 16}, vt.Buf{Addr: 0x500, Len: 32, Write: true})
		r.AddIndirect(0x600, vt.Buf{Addr: 0x400, Len: 8}, vt.Buf{Addr: 0x700, Len: 8, Write: true})
	}}}, malformedCases...) {
		mem := vmm.NewGuestMemory(make([]byte, fuzzRAM), 0)
		r := vt.NewRing(mem, 4, 0x1000)
		tc.setup(mem, r) // writes beyond this small RAM are dropped
		b, _ := mem.Slice(0, fuzzRAM)
		b = bytes.TrimRight(b, "\x00")
		f.Add(bytes.Clone(b), uint8(2), uint64(r.Desc), uint64(r.Avail), uint64(r.Used), false, uint16(0))
		f.Add(bytes.Clone(b), uint8(2), uint64(r.Desc), uint64(r.Avail), uint64(r.Used), true, uint16(7))
	}
	buf := make([]byte, fuzzRAM+2*fuzzGuard)
	f.Fuzz(func(t *testing.T, data []byte, sizeLog uint8, desc, avail, used uint64, eventIdx bool, idx uint16) {
		mem, check := guarded(t, buf)
		ram, _ := mem.Slice(0, fuzzRAM)
		copy(ram, data)
		size := uint16(1) << (sizeLog % 11) // up to 1024 entries
		q := &Queue{}
		if err := q.Configure(mem, size, desc, avail, used, eventIdx); err != nil {
			// Fall back to a fixed layout so the chain walker still runs.
			desc, avail = 0, 16*uint64(size)
			used = (avail + 6 + 2*uint64(size) + 3) &^ 3
			if err := q.Configure(mem, size, desc, avail, used, eventIdx); err != nil {
				t.Fatalf("fallback layout: %v", err)
			}
		}
		if idx != 0 {
			mem.Write(avail+2, 2, uint64(idx))
		}
		q.setBudget(int(size))
		var tmp [512]byte
		n := 0
		for ; n <= int(size)+1; n++ {
			c, ok, err := q.Next()
			if err != nil {
				if _, isChain := err.(*ChainError); !isChain {
					t.Fatalf("error %T", err)
				}
				break
			}
			if !ok {
				break
			}
			if c.ReadLen() > MaxChainBytes || uint64(c.ReadLen())+uint64(c.WriteLen()) > MaxChainBytes {
				t.Fatal("chain over the byte limit")
			}
			if len(c.Readable())+len(c.Writable()) > int(size) {
				t.Fatal("more segments than the queue size")
			}
			c.Read(tmp[:])
			for i := 0; i < 8; i++ {
				w := c.NextWrite(4096)
				if len(w) == 0 {
					break
				}
				copy(w, tmp[:])
			}
			c.WriteAt(tmp[:3], c.WriteLen()-1)
			q.Done(c, c.Written())
			q.NeedInterrupt()
		}
		if n > int(size) {
			t.Fatalf("Next returned %d chains with a budget of %d", n, size)
		}
		check()
	})
}

// opRecorder records a driver's register accesses as FuzzMMIO ops.
type opRecorder struct {
	dev vmm.MMIODevice
	ops []byte
}

func (r *opRecorder) op(write bool, off uint64, size uint8, v uint64) {
	var o [8]byte
	o[0] = byte(map[uint8]byte{1: 0, 2: 2, 4: 4, 8: 6}[size])
	if write {
		o[0] |= 1
	}
	binary.LittleEndian.PutUint16(o[1:], uint16(off))
	binary.LittleEndian.PutUint32(o[3:], uint32(v))
	r.ops = append(r.ops, o[:]...)
}

func (r *opRecorder) Read(off uint64, size uint8) uint64 {
	r.op(false, off, size, 0)
	return r.dev.Read(off, size)
}

func (r *opRecorder) Write(off uint64, size uint8, v uint64) {
	r.op(true, off, size, v)
	r.dev.Write(off, size, v)
}

// FuzzMMIO applies arbitrary register access sequences (8-byte records:
// flags, offset, value) to a virtio-mmio device over arbitrary RAM: no
// panics, no access outside RAM, the line always matches the interrupt
// status, and the status invariants hold.
func FuzzMMIO(f *testing.F) {
	// Seed: Linux's bring-up plus a kick, recorded.
	mem := vmm.NewGuestMemory(make([]byte, fuzzRAM), 0)
	s := NewState(&echoDev{nq: 2, max: 16}, mem, nil, nil)
	rec := &opRecorder{dev: NewMMIO(s, nil)}
	r := vt.NewRing(mem, 8, 0x1000)
	r.Add(vt.Buf{Addr: 0x400, Len: 16}, vt.Buf{Addr: 0x500, Len: 16, Write: true})
	drv := &vt.MMIO{Dev: rec}
	if _, err := drv.Init(^uint64(0), []*vt.Ring{r}); err != nil {
		f.Fatal(err)
	}
	drv.Notify(0)
	drv.Ack()
	drv.Config(0, 4)
	ramImg, _ := mem.Slice(0, fuzzRAM)
	f.Add(rec.ops, bytes.Clone(bytes.TrimRight(ramImg, "\x00")))
	f.Add([]byte{1, 0x70, 0, 0xff, 0, 0, 0}, []byte{})

	buf := make([]byte, fuzzRAM+2*fuzzGuard)
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		mem, check := guarded(t, buf)
		ram, _ := mem.Slice(0, fuzzRAM)
		copy(ram, data)
		dev := &echoDev{nq: 2, max: 16, features: 1 << 5}
		var level bool
		s := NewState(dev, mem, func(IRQKind, int) {}, func(string) {})
		m := NewMMIO(s, func(l bool) { level = l })
		for len(ops) >= 8 {
			o := ops[:8]
			ops = ops[8:]
			size := uint8(1) << ((o[0] >> 1) & 3)
			off := uint64(binary.LittleEndian.Uint16(o[1:])) % MMIOSize
			v := uint64(binary.LittleEndian.Uint32(o[3:])) | uint64(o[7])<<32
			if o[0]&1 != 0 {
				m.Write(off, size, v)
			} else {
				m.Read(off, size)
			}
			if level != (s.InterruptStatus() != 0) {
				t.Fatalf("line %v with interrupt status %#x", level, s.InterruptStatus())
			}
			st := s.Status()
			if st&StatusDriverOK != 0 && st&StatusFeaturesOK == 0 {
				t.Fatalf("DRIVER_OK without FEATURES_OK: %#x", st)
			}
			if st&StatusFeaturesOK != 0 {
				if f := s.Features(); f&^s.OfferedFeatures() != 0 || f&FeatureVersion1 == 0 {
					t.Fatalf("accepted features %#x", f)
				}
			}
		}
		check()
	})
}
