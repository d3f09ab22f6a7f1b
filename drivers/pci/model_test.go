package pci

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// model is a configuration space for tests: functions with 256 bytes of
// registers each, of which only the writable bits change on a write, the
// way hardware answers BAR sizing. Reads of absent functions return all
// ones; reads above 0xFF return 0 (no extended capabilities).
type model struct {
	fns    map[Addr]*mfn
	writes int
}

// mfn is one modelled function.
type mfn struct {
	regs  [64]uint32
	wmask [64]uint32 // writable bits per dword
}

func newModel() *model { return &model{fns: map[Addr]*mfn{}} }

func (m *model) Read32(a Addr, off uint16) uint32 {
	f := m.fns[a]
	if f == nil || off >= 0x1000 {
		return Absent
	}
	if off >= 0x100 {
		return 0
	}
	return f.regs[off/4]
}

func (m *model) Write32(a Addr, off uint16, v uint32) {
	m.writes++
	f := m.fns[a]
	if f == nil || off >= 0x100 {
		return
	}
	i := off / 4
	f.regs[i] = f.regs[i]&^f.wmask[i] | v&f.wmask[i]
}

// add puts a function with registers regs (dwords) at a. The command
// register's decode/master/INTx bits, the interrupt line, and the bus
// numbers of a bridge are writable; BARs are set writable with setBAR.
func (m *model) add(a Addr, regs []uint32) *mfn {
	f := &mfn{}
	copy(f.regs[:], regs)
	f.wmask[RegCommand/4] = CmdIO | CmdMemory | CmdBusMaster | CmdINTxDisable
	f.wmask[RegInterrupt/4] = 0xFF
	if (f.regs[RegHeaderType/4]>>16)&headerTypeMask == HeaderBridge {
		f.wmask[RegBusNumbers/4] = 0x00FF_FFFF
	}
	m.fns[a] = f
	return f
}

// setBAR makes BAR i decode size bytes: its address bits above the size
// become writable (both dwords of a 64-bit BAR).
func (f *mfn) setBAR(i int, size uint64) {
	r := RegBAR0/4 + i
	low := f.regs[r]
	mask := ^(size - 1)
	switch {
	case low&1 != 0:
		f.wmask[r] = uint32(mask) &^ 3
	case low>>1&3 == 2:
		f.wmask[r] = uint32(mask) &^ 0xF
		f.wmask[r+1] = uint32(mask >> 32)
	default:
		f.wmask[r] = uint32(mask) &^ 0xF
	}
}

// writable makes the bits of mask in the dword at off writable.
func (f *mfn) writable(off uint16, mask uint32) { f.wmask[off/4] |= mask }

// loadRecorded reads testdata/q35.txt: configuration spaces recorded from
// QEMU (see the file's header) and the BAR sizes QEMU reported.
func loadRecordedF(t testing.TB) *model { return loadRecorded(t) }

func loadRecorded(t testing.TB) *model {
	t.Helper()
	fh, err := os.Open("testdata/q35.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	m := newModel()
	var cur Addr
	var regs []uint32
	flush := func() {
		if regs != nil {
			f := m.add(cur, regs)
			// MSI-X and MSI control bits are writable in every function
			// that has them.
			for _, c := range walkCaps(m, cur, RegCapPtr) {
				if c.ID == CapMSIX || c.ID == CapMSI {
					f.writable(c.Off, 0xC001<<16)
				}
			}
		}
		regs = nil
	}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		w := strings.Fields(line)
		switch {
		case len(w) == 0:
		case w[0] == "cfg":
			flush()
			cur = parseAddr(t, w[1])
			regs = []uint32{}
		case w[0] == "bar":
			flush()
			a := parseAddr(t, w[1])
			i, _ := strconv.Atoi(w[2])
			size, err := strconv.ParseUint(w[3], 0, 64)
			if err != nil || m.fns[a] == nil {
				t.Fatalf("bad bar line %q", sc.Text())
			}
			m.fns[a].setBAR(i, size)
		default:
			for _, h := range w {
				v, err := strconv.ParseUint(h, 16, 32)
				if err != nil {
					t.Fatalf("bad dword %q", h)
				}
				regs = append(regs, uint32(v))
			}
		}
	}
	flush()
	return m
}

func parseAddr(t testing.TB, s string) Addr {
	var b, d, f uint8
	if _, err := fmt.Sscanf(s, "%x:%x.%x", &b, &d, &f); err != nil {
		t.Fatalf("bad address %q", s)
	}
	return Addr{b, d, f}
}
