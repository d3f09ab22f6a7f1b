package devices

import (
	"encoding/binary"
	"sync"
	"testing"

	"juice/vmm"
)

var _ vmm.MMIODevice = (*Scratch)(nil)

// mop is one MMIO access in a Scratch script: a write of v, or a read
// that must return v.
type mop struct {
	write bool
	off   uint64
	size  uint8
	v     uint64
}

func rd(off uint64, size uint8, v uint64) mop { return mop{false, off, size, v} }
func wr(off uint64, size uint8, v uint64) mop { return mop{true, off, size, v} }

func TestScratchRegisters(t *testing.T) {
	const (
		data = ScratchRegData
		add  = ScratchRegAdd
		sum  = ScratchRegSum
		cnt  = ScratchRegCount
	)
	cases := []struct {
		name string
		ops  []mop
		sum  uint64 // Sum() afterwards
	}{
		{name: "id, all sizes and lanes", ops: []mop{
			rd(0, 4, ScratchID), rd(0, 1, 'c'), rd(1, 1, 'i'), rd(2, 1, 'u'), rd(3, 1, 'j'),
			rd(0, 2, 0x6963), rd(2, 2, 0x6a75), rd(1, 2, 0x7569), rd(0, 8, ScratchID),
			rd(2, 4, 0x6a75), rd(4, 4, 0),
		}},
		{name: "id is read-only", ops: []mop{
			wr(0, 4, 0), wr(0, 1, 0xff), wr(0, 8, ^uint64(0)), rd(0, 4, ScratchID),
		}},
		{name: "scratch starts zero", ops: []mop{
			rd(data, 8, 0), rd(data+ScratchDataLen-8, 8, 0), rd(data+31, 1, 0),
		}},
		{name: "32-bit round trip", ops: []mop{
			wr(data, 4, 0x11223344), rd(data, 4, 0x11223344), rd(data, 1, 0x44), rd(data+3, 1, 0x11),
			rd(data+1, 2, 0x2233), rd(data, 8, 0x11223344),
		}},
		{name: "byte lanes of narrow writes", ops: []mop{
			wr(data, 4, 0x11223344), wr(data+1, 1, 0xab), rd(data, 4, 0x1122ab44),
			wr(data+2, 2, 0xcdef), rd(data, 4, 0xcdefab44), rd(data+2, 1, 0xef),
		}},
		{name: "64-bit round trip", ops: []mop{
			wr(data+8, 8, 0x0102030405060708), rd(data+8, 8, 0x0102030405060708),
			rd(data+8, 4, 0x05060708), rd(data+12, 4, 0x01020304), rd(data+15, 1, 0x01),
		}},
		{name: "unaligned accesses", ops: []mop{
			wr(data+3, 4, 0xa1b2c3d4), rd(data, 8, 0x00a1b2c3d4000000), rd(data+5, 2, 0xa1b2),
			wr(data+7, 8, 0x8877665544332211), rd(data+7, 8, 0x8877665544332211), rd(data+4, 4, 0x11a1b2c3),
		}},
		{name: "only the written size is stored", ops: []mop{
			wr(data, 8, ^uint64(0)), wr(data, 1, 0x1234), wr(data+2, 2, 0x56789a), rd(data, 8, 0xffffffff789aff34),
		}},
		{name: "last scratch bytes", ops: []mop{
			wr(data+ScratchDataLen-4, 4, 0xdeadbeef), rd(data+ScratchDataLen-4, 4, 0xdeadbeef),
			rd(data+ScratchDataLen-2, 4, 0xdead), // runs into the sum (0)
		}},
		{name: "write spanning scratch and sum", ops: []mop{
			wr(data+ScratchDataLen-2, 4, 0x99887766), rd(data+ScratchDataLen-2, 2, 0x7766), rd(sum, 8, 0),
		}},
		{name: "sum adds", ops: []mop{
			wr(add, 4, 5), wr(add, 4, 7), rd(sum, 8, 12), wr(add, 8, 1<<40), rd(sum, 8, 1<<40+12),
			rd(sum+4, 4, 1<<8), rd(sum+5, 1, 1),
		}, sum: 1<<40 + 12},
		{name: "sum lanes", ops: []mop{
			wr(add+1, 1, 1), wr(add+4, 2, 0x0102), rd(sum, 8, 0x0000010200000100),
		}, sum: 0x0000010200000100},
		{name: "sum wraps", ops: []mop{
			wr(add, 8, ^uint64(0)), wr(add, 1, 2), rd(sum, 8, 1),
		}, sum: 1},
		{name: "add reads zero, sum ignores writes", ops: []mop{
			wr(add, 4, 3), rd(add, 8, 0), rd(add, 4, 0), wr(sum, 8, 100), rd(sum, 8, 3),
		}, sum: 3},
		{name: "write spanning scratch and add", ops: []mop{
			wr(add+6, 4, 0x44332211), rd(data, 2, 0x4433), rd(sum, 8, 0x2211<<48),
		}, sum: 0x2211 << 48},
		{name: "counter", ops: []mop{
			rd(cnt, 8, 0), rd(cnt, 8, 1), wr(data, 4, 0), rd(0, 4, ScratchID), rd(cnt, 4, 4),
			wr(cnt, 8, 0), rd(cnt, 8, 6), rd(cnt+1, 1, 0), rd(0x800, 4, 0), rd(cnt, 1, 9),
		}},
		{name: "everything else reads 0, ignores writes", ops: []mop{
			wr(4, 4, 0xffffffff), rd(4, 4, 0), wr(0x60, 8, ^uint64(0)), rd(0x60, 8, 0),
			wr(0x800, 4, 1), rd(0x800, 4, 0), wr(ScratchSize-8, 8, 1), rd(ScratchSize-8, 8, 0),
			rd(ScratchSize-1, 1, 0),
		}},
		{name: "bad sizes and offsets", ops: []mop{
			wr(data, 3, 0xffffff), rd(data, 4, 0), rd(0, 3, 0), rd(0, 16, 0), rd(0, 0, 0),
			wr(data, 0, 1), rd(data, 8, 0),
			rd(ScratchSize, 4, 0), wr(ScratchSize, 4, 1), rd(^uint64(0), 8, 0), wr(^uint64(0), 8, 1),
			wr(^uint64(0)-3, 8, ^uint64(0)), rd(0, 4, ScratchID), rd(sum, 8, 0),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Scratch
			for i, o := range c.ops {
				if o.write {
					s.Write(o.off, o.size, o.v)
				} else if got := s.Read(o.off, o.size); got != o.v {
					t.Fatalf("op %d: Read(%#x, %d) = %#x, want %#x", i, o.off, o.size, got, o.v)
				}
			}
			if got := s.Sum(); got != c.sum {
				t.Errorf("Sum() = %#x, want %#x", got, c.sum)
			}
			if got := s.Accesses(); got != uint64(len(c.ops)) {
				t.Errorf("Accesses() = %d, want %d", got, len(c.ops))
			}
		})
	}
}

// Through juice's MMIO bus, as a guest reaches it.
func TestScratchOnBus(t *testing.T) {
	var bus vmm.MMIOBus
	s := &Scratch{}
	if err := bus.Register(ScratchBase, ScratchSize, s); err != nil {
		t.Fatal(err)
	}
	if v, ok := bus.Read(ScratchBase, 4); !ok || v != ScratchID {
		t.Errorf("bus read of the ID = %#x, %v", v, ok)
	}
	if !bus.Write(ScratchBase+ScratchRegData+6, 2, 0xbeef) {
		t.Error("bus write to the scratch area failed")
	}
	if v, ok := bus.Read(ScratchBase+ScratchRegData+4, 8); !ok || v != 0xbeef0000 {
		t.Errorf("bus read back = %#x, %v", v, ok)
	}
	if _, ok := bus.Read(ScratchBase+ScratchSize, 1); ok {
		t.Error("a read past the device's page reached it")
	}
	if _, ok := bus.Read(ScratchBase+ScratchSize-4, 8); ok {
		t.Error("a read straddling the device's end reached it")
	}
	if n := s.Accesses(); n != 3 {
		t.Errorf("device saw %d accesses, want 3", n)
	}
}

func TestScratchNoAlloc(t *testing.T) {
	var s Scratch
	n := testing.AllocsPerRun(1000, func() {
		s.Write(ScratchRegData+8, 8, 0x1122334455667788)
		s.Write(ScratchRegAdd, 4, 1)
		s.Read(ScratchRegData+9, 2)
		s.Read(ScratchRegCount, 8)
	})
	if n != 0 {
		t.Errorf("Scratch Read/Write allocate %v times per run", n)
	}
	if s.Sum() != 1001 || s.Accesses() != 4*1001 {
		t.Errorf("sum %d, %d accesses after 1001 runs", s.Sum(), s.Accesses())
	}
}

// vCPUs may hit the device at once: no access is lost and sums add up.
func TestScratchConcurrent(t *testing.T) {
	var s Scratch
	const workers, each = 4, 1000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				s.Write(ScratchRegAdd, 2, 3)
				s.Write(ScratchRegData+uint64(w)*8, 8, uint64(i))
				if got := s.Read(ScratchRegData+uint64(w)*8, 8); got != uint64(i) {
					t.Errorf("worker %d read %d, wrote %d", w, got, i)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if s.Sum() != 3*workers*each || s.Accesses() != 3*workers*each {
		t.Errorf("sum %d, %d accesses", s.Sum(), s.Accesses())
	}
}

// FuzzScratch drives the device with arbitrary accesses and compares it
// with a byte-array model of the register window.
func FuzzScratch(f *testing.F) {
	f.Add([]byte{1, 0x10, 0, 4, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0, 0x10, 0, 2})
	f.Add([]byte{1, 0x08, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0x50, 0, 8, 0, 0x58, 0, 8})
	f.Add([]byte{1, 0xff, 0x0f, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0x0f, 4})
	f.Fuzz(func(t *testing.T, script []byte) {
		var s Scratch
		var data [ScratchDataLen]byte
		var sum, count uint64
		for len(script) >= 4 {
			write := script[0]&1 == 1
			off := uint64(binary.LittleEndian.Uint16(script[1:3]))
			size := script[3]
			script = script[4:]
			if !write {
				got := s.Read(off, size)
				var want uint64
				if validSize(size) && off < ScratchSize {
					var win [ScratchSize + 8]byte
					binary.LittleEndian.PutUint32(win[ScratchRegID:], ScratchID)
					copy(win[ScratchRegData:], data[:])
					binary.LittleEndian.PutUint64(win[ScratchRegSum:], sum)
					binary.LittleEndian.PutUint64(win[ScratchRegCount:], count)
					var b [8]byte
					copy(b[:size], win[off:])
					want = binary.LittleEndian.Uint64(b[:])
				}
				if got != want {
					t.Fatalf("Read(%#x, %d) = %#x, model says %#x", off, size, got, want)
				}
				count++
				continue
			}
			if len(script) < 8 {
				return
			}
			v := binary.LittleEndian.Uint64(script)
			script = script[8:]
			s.Write(off, size, v)
			count++
			if !validSize(size) || off >= ScratchSize {
				continue
			}
			var addend [16]byte
			for i := uint64(0); i < uint64(size); i++ {
				o, b := off+i, byte(v>>(8*i))
				switch {
				case o >= ScratchRegAdd && o < ScratchRegAdd+8:
					addend[o-ScratchRegAdd] = b
				case o >= ScratchRegData && o < ScratchRegData+ScratchDataLen:
					data[o-ScratchRegData] = b
				}
			}
			sum += binary.LittleEndian.Uint64(addend[:])
		}
		if s.Sum() != sum || s.Accesses() != count {
			t.Fatalf("sum %#x, %d accesses; model %#x, %d", s.Sum(), s.Accesses(), sum, count)
		}
	})
}
