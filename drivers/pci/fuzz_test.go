package pci

import (
	"encoding/binary"
	"testing"
)

// FuzzScan feeds arbitrary configuration spaces (bus 0 devices 0-3 and
// bus 1 device 0, 256 bytes each, with arbitrary writable bits) to Scan
// and Describe: nothing may panic or loop, and no more than MaxFunctions
// come back.
func FuzzScan(f *testing.F) {
	m := loadRecordedF(f)
	seed := make([]byte, 0, 5*512)
	for _, a := range []Addr{{0, 2, 0}, {0, 5, 0}, {0, 31, 0}, {0, 4, 0}, {1, 0, 0}} {
		fn := m.fns[a]
		for i := 0; i < 64; i++ {
			seed = binary.LittleEndian.AppendUint32(seed, fn.regs[i])
		}
		for i := 0; i < 64; i++ {
			seed = binary.LittleEndian.AppendUint32(seed, fn.wmask[i])
		}
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newModel()
		for k, a := range []Addr{{0, 0, 0}, {0, 1, 0}, {0, 2, 0}, {0, 3, 0}, {1, 0, 0}} {
			if len(data) < (k+1)*512 {
				break
			}
			d := data[k*512:]
			fn := &mfn{}
			for i := 0; i < 64; i++ {
				fn.regs[i] = binary.LittleEndian.Uint32(d[4*i:])
				fn.wmask[i] = binary.LittleEndian.Uint32(d[256+4*i:])
			}
			m.fns[a] = fn
		}
		fns := Scan(m, 0, 255)
		if len(fns) > MaxFunctions {
			t.Fatalf("%d functions", len(fns))
		}
		for i := range fns {
			fns[i].Describe(m)
			if len(fns[i].Caps) > MaxCaps {
				t.Fatalf("%d capabilities", len(fns[i].Caps))
			}
		}
	})
}
