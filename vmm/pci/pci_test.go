package pci_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"juice/vmm/pci"
)

func TestHeader(t *testing.T) {
	b := pci.NewBus(nil, nil)
	f := newFunction(t, virtioLike(nil, nil, 4))
	add(t, b, 3, f)
	c := cfg{b}
	for _, tc := range []struct {
		reg  uint64
		size uint8
		want uint64
	}{
		{0x00, 2, 0x1af4}, {0x02, 2, 0x1041}, {0x00, 4, 0x10411af4},
		{0x00, 1, 0xf4}, {0x01, 1, 0x1a}, {0x03, 1, 0x10},
		{0x04, 2, 0},          // command: reset state
		{0x06, 2, 0x0010},     // status: capabilities list
		{0x08, 1, 1},          // revision
		{0x09, 1, 0},          // prog-if
		{0x0A, 2, 0x0200},     // class 02, subclass 00
		{0x08, 4, 0x02000001}, // whole dword
		{0x0C, 4, 0},          // cache line, latency, header type 0, BIST
		{0x0E, 1, 0},          // header type: 0, single function
		{0x28, 4, 0},          // CardBus CIS
		{0x2C, 4, 0x00011af4}, // subsystem
		{0x30, 4, 0},          // expansion ROM: none
		{0x34, 1, 0x40},       // capabilities pointer
		{0x38, 4, 0},          // reserved
		{0x3C, 2, 0x0100},     // interrupt line 0, pin INTA
		{0x3E, 2, 0},          // min_gnt, max_lat
		{0x100, 4, 0},         // extended space: no capabilities
		{0xFFC, 4, 0},
		{0x800, 8, 0},
		{0x00, 8, 0x0010_0000_1041_1af4}, // aligned 8-byte: two dwords
	} {
		if got := c.r(3, tc.reg, tc.size); got != tc.want {
			t.Errorf("read %#x/%d = %#x, want %#x", tc.reg, tc.size, got, tc.want)
		}
	}
	// Read-only registers ignore writes; writable ones keep only their bits.
	c.w(3, 0x00, 4, 0)
	c.w(3, 0x08, 4, 0)
	c.w(3, 0x2C, 4, 0)
	c.w(3, 0x34, 1, 0x80)
	c.w(3, 0x3D, 1, 3)    // interrupt pin: read-only
	c.w(3, 0x0E, 1, 0x80) // header type: read-only
	c.w(3, 0x06, 2, 0xFFFF)
	c.w(3, 0x30, 4, 0xFFFFFFFF)
	c.w(3, 0x100, 4, 0xFFFFFFFF)
	if got := c.r(3, 0, 4); got != 0x10411af4 {
		t.Errorf("IDs after write %#x", got)
	}
	if c.r(3, 0x08, 4) != 0x02000001 || c.r(3, 0x2C, 4) != 0x00011af4 || c.r(3, 0x34, 1) != 0x40 ||
		c.r(3, 0x3D, 1) != 1 || c.r(3, 0x0E, 1) != 0 || c.r(3, 0x30, 4) != 0 || c.r(3, 0x100, 4) != 0 {
		t.Error("a read-only register changed")
	}
	if got := c.r(3, 0x06, 2); got != 0x0010 {
		t.Errorf("status after write %#x", got)
	}
	c.w(3, 0x04, 2, 0xFFFF)
	if got := c.r(3, 0x04, 2); got != pci.CommandMemory|pci.CommandBusMaster|pci.CommandINTxDisable {
		t.Errorf("command after writing ones = %#x, want %#x (I/O space stays 0)", got, 0x406)
	}
	if f.Command() != 0x406 || !f.BusMaster() {
		t.Errorf("Command() %#x BusMaster %v", f.Command(), f.BusMaster())
	}
	c.w(3, 0x05, 1, 0) // byte write to the high byte clears INTx disable only
	if got := c.r(3, 0x04, 2); got != 0x006 {
		t.Errorf("command after byte write = %#x", got)
	}
	c.w(3, 0x3C, 1, 11)
	c.w(3, 0x0C, 1, 0x10)
	if c.r(3, 0x3C, 1) != 11 || c.r(3, 0x3C, 2) != 0x010B || c.r(3, 0x0C, 4) != 0x10 {
		t.Errorf("interrupt line %#x, cache line %#x", c.r(3, 0x3C, 2), c.r(3, 0x0C, 4))
	}
	// Accesses crossing a dword read all ones and write nothing.
	if got := c.r(3, 0x03, 2); got != 0xFFFF {
		t.Errorf("dword-crossing read %#x", got)
	}
	if got := c.r(3, 0x04, 8); got != ^uint64(0) {
		t.Errorf("misaligned 8-byte read %#x", got)
	}
	c.w(3, 0x3B, 2, 0x0505) // would touch interrupt line
	if c.r(3, 0x3C, 1) != 11 {
		t.Error("dword-crossing write took effect")
	}
}

func TestHostBridge(t *testing.T) {
	b := pci.NewBus(nil, nil)
	c := cfg{b}
	if got := c.r(0, 0, 4); got != pci.HostBridgeDeviceID<<16|pci.HostBridgeVendorID {
		t.Errorf("host bridge IDs %#x", got)
	}
	if got := c.r(0, 8, 4) >> 8; got != pci.HostBridgeClass {
		t.Errorf("host bridge class %#x", got)
	}
	if c.r(0, 0x0E, 1) != 0 || c.r(0, 0x34, 1) != 0 || c.r(0, 0x06, 2) != 0 || c.r(0, 0x3D, 1) != 0 {
		t.Error("host bridge header type/caps/status/pin")
	}
	for i := 0; i < 6; i++ {
		c.w(0, 0x10+uint64(4*i), 4, 0xFFFFFFFF)
		if got := c.r(0, 0x10+uint64(4*i), 4); got != 0 {
			t.Errorf("host bridge BAR %d = %#x", i, got)
		}
	}
	if b.Function(0) == nil || b.Function(1) != nil || b.Function(32) != nil || b.Function(-1) != nil {
		t.Error("Function()")
	}
	if err := b.Add(0, newFunction(t, pci.FunctionConfig{VendorID: 1})); err == nil {
		t.Error("Add(0) succeeded")
	}
}

func TestBARSizing(t *testing.T) {
	for _, tc := range []struct {
		size    uint64
		is64    bool
		pref    bool
		slot    int
		lo, hi  uint32 // read back after writing all ones
		loFlags uint32
	}{
		{0x1000, false, false, 0, 0xFFFFF000, 0, 0},
		{0x1000, false, true, 1, 0xFFFFF008, 0, 8},
		{0x10000, false, false, 5, 0xFFFF0000, 0, 0},
		{1 << 20, false, true, 2, 0xFFF00008, 0, 8},
		{1 << 31, false, false, 3, 0x80000000, 0, 0},
		{0x1000, true, false, 0, 0xFFFFF004, 0xFFFFFFFF, 4},
		{0x4000, true, true, 4, 0xFFFFC00C, 0xFFFFFFFF, 0xC},
		{1 << 32, true, true, 2, 0x0000000C, 0xFFFFFFFF, 0xC},
		{1 << 33, true, false, 1, 0x00000004, 0xFFFFFFFE, 4},
	} {
		name := fmt.Sprintf("size %#x 64 %v pref %v BAR %d", tc.size, tc.is64, tc.pref, tc.slot)
		var c pci.FunctionConfig
		c.VendorID = 0x1234
		c.BARs[tc.slot] = pci.BARConfig{Size: tc.size, Is64: tc.is64, Prefetchable: tc.pref}
		b := pci.NewBus(nil, nil)
		add(t, b, 1, newFunction(t, c))
		cc := cfg{b}
		reg := 0x10 + uint64(4*tc.slot)
		if got := cc.r(1, reg, 4); got != uint64(tc.loFlags) {
			t.Errorf("%s: reset value %#x, want flags %#x", name, got, tc.loFlags)
		}
		cc.w(1, reg, 4, 0xFFFFFFFF)
		if tc.is64 {
			cc.w(1, reg+4, 4, 0xFFFFFFFF)
		}
		if got := cc.r(1, reg, 4); got != uint64(tc.lo) {
			t.Errorf("%s: low after ~0 = %#x, want %#x", name, got, tc.lo)
		}
		if tc.is64 {
			if got := cc.r(1, reg+4, 4); got != uint64(tc.hi) {
				t.Errorf("%s: high after ~0 = %#x, want %#x", name, got, tc.hi)
			}
		}
		// Linux's size computation gives back the size.
		sz := uint64(uint32(cc.r(1, reg, 4)) &^ 0xF)
		if tc.is64 {
			sz |= cc.r(1, reg+4, 4) << 32
			sz = ^sz + 1
		} else {
			sz = uint64(^uint32(sz) + 1)
		}
		if sz != tc.size {
			t.Errorf("%s: decoded size %#x", name, sz)
		}
		// Every other BAR slot is unused: reads 0, ignores writes.
		for i := 0; i < 6; i++ {
			if i == tc.slot || tc.is64 && i == tc.slot+1 {
				continue
			}
			r := 0x10 + uint64(4*i)
			cc.w(1, r, 4, 0xFFFFFFFF)
			if got := cc.r(1, r, 4); got != 0 {
				t.Errorf("%s: unused BAR %d reads %#x", name, i, got)
			}
		}
		// An address keeps only the bits above the size.
		cc.w(1, reg, 4, 0xC0001234)
		want := uint64(0xC0001234)&^(tc.size-1)&0xFFFFFFF0 | uint64(tc.loFlags)
		if got := cc.r(1, reg, 4); got != want {
			t.Errorf("%s: address %#x, want %#x", name, got, want)
		}
		// Byte writes merge.
		cc.w(1, reg+3, 1, 0xD0)
		want = want&0x00FFFFFF | 0xD0000000
		want = want&^(tc.size-1)&0xFFFFFFF0 | uint64(tc.loFlags)
		if got := cc.r(1, reg, 4); got != want {
			t.Errorf("%s: after byte write %#x, want %#x", name, got, want)
		}
	}
}

func TestNewFunctionErrors(t *testing.T) {
	ok := func() pci.FunctionConfig { return virtioLike(nil, nil, 4) }
	for name, mod := range map[string]func(*pci.FunctionConfig){
		"vendor ffff":      func(c *pci.FunctionConfig) { c.VendorID = 0xFFFF },
		"class":            func(c *pci.FunctionConfig) { c.ClassCode = 1 << 24 },
		"pin":              func(c *pci.FunctionConfig) { c.InterruptPin = 5 },
		"size not pow2":    func(c *pci.FunctionConfig) { c.BARs[0].Size = 0x3000 },
		"size small":       func(c *pci.FunctionConfig) { c.BARs[0].Size = 0x800 },
		"32-bit 4G":        func(c *pci.FunctionConfig) { c.BARs[0].Size = 1 << 32 },
		"64-bit BAR 5":     func(c *pci.FunctionConfig) { c.BARs[5] = pci.BARConfig{Size: 0x1000, Is64: true} },
		"upper half used":  func(c *pci.FunctionConfig) { c.BARs[5] = pci.BARConfig{Size: 0x1000} },
		"unused with bits": func(c *pci.FunctionConfig) { c.BARs[1].Prefetchable = true },
		"vectors":          func(c *pci.FunctionConfig) { c.MSIXVectors = pci.MaxMSIXVectors + 1 },
		"negative vectors": func(c *pci.FunctionConfig) { c.MSIXVectors = -1 },
		"msix bar unused":  func(c *pci.FunctionConfig) { c.MSIXBAR = 2 },
		"msix bar upper":   func(c *pci.FunctionConfig) { c.MSIXBAR = 5 },
		"msix bar 7":       func(c *pci.FunctionConfig) { c.MSIXBAR = 7 },
		"table unaligned":  func(c *pci.FunctionConfig) { c.MSIXTableOffset = 0x3004 },
		"pba unaligned":    func(c *pci.FunctionConfig) { c.MSIXPBAOffset = 0x3801 },
		"table outside":    func(c *pci.FunctionConfig) { c.MSIXTableOffset = 0x3FF8 },
		"pba outside":      func(c *pci.FunctionConfig) { c.MSIXPBAOffset = 0x4000 },
		"overlap":          func(c *pci.FunctionConfig) { c.MSIXPBAOffset = 0x3030 },
		"empty cap":        func(c *pci.FunctionConfig) { c.VendorCaps = append(c.VendorCaps, nil) },
		"caps too long":    func(c *pci.FunctionConfig) { c.VendorCaps = append(c.VendorCaps, make([]byte, 160)) },
	} {
		c := ok()
		mod(&c)
		if _, err := pci.NewFunction(c); !errors.Is(err, pci.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	if _, err := pci.NewFunction(ok()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	// Exactly filling config space up to 0x100 is fine.
	c := ok()
	c.MSIXVectors = 0
	c.VendorCaps = [][]byte{make([]byte, 0x100-0x40-2)}
	if _, err := pci.NewFunction(c); err != nil {
		t.Errorf("caps filling to 0x100: %v", err)
	}
	c.VendorCaps = [][]byte{make([]byte, 0x100-0x40-1)}
	if _, err := pci.NewFunction(c); err == nil {
		t.Error("caps one byte past 0x100 accepted")
	}
	b := pci.NewBus(nil, nil)
	f := newFunction(t, ok())
	for _, s := range []int{-1, 0, 32} {
		if err := b.Add(s, f); !errors.Is(err, pci.ErrConfig) {
			t.Errorf("Add(%d): %v", s, err)
		}
	}
	if err := b.Add(1, nil); err == nil {
		t.Error("Add(nil)")
	}
	add(t, b, 31, f)
	if err := b.Add(30, f); err == nil {
		t.Error("function added twice")
	}
	if err := b.Add(31, newFunction(t, ok())); err == nil {
		t.Error("slot taken twice")
	}
}

// walkCaps follows the capability list and returns the offsets and IDs.
func walkCaps(t *testing.T, c cfg, dev int) (offs []uint64, ids []uint64) {
	t.Helper()
	if c.r(dev, 0x06, 2)&0x10 == 0 {
		if c.r(dev, 0x34, 1) != 0 {
			t.Error("capabilities pointer without the status bit")
		}
		return nil, nil
	}
	p := c.r(dev, 0x34, 1) &^ 3
	for n := 0; p != 0; n++ {
		if n > 48 || p < 0x40 || p > 0xFC || p&3 != 0 {
			t.Fatalf("bad capability pointer %#x after %d capabilities", p, n)
		}
		offs = append(offs, p)
		ids = append(ids, c.r(dev, p, 1))
		p = c.r(dev, p+1, 1)
	}
	return offs, ids
}

func TestCapabilities(t *testing.T) {
	b := pci.NewBus(nil, nil)
	fc := virtioLike(nil, nil, 5)
	f := newFunction(t, fc)
	add(t, b, 1, f)
	noMSIX := virtioLike(nil, nil, 0)
	g := newFunction(t, noMSIX)
	add(t, b, 2, g)
	none := newFunction(t, pci.FunctionConfig{VendorID: 0x1234})
	add(t, b, 3, none)
	c := cfg{b}

	offs, ids := walkCaps(t, c, 1)
	if fmt.Sprint(ids) != "[17 9 9]" || offs[0] != 0x40 {
		t.Fatalf("caps %v at %#x", ids, offs)
	}
	co := f.CapOffsets()
	if len(co) != 2 || uint64(co[0]) != offs[1] || uint64(co[1]) != offs[2] {
		t.Errorf("CapOffsets %v, walk %v", co, offs)
	}
	// MSI-X: table size 5-1, disabled, unmasked; table and PBA in BAR 4.
	if got := c.r(1, 0x42, 2); got != 4 {
		t.Errorf("MSI-X message control %#x", got)
	}
	if got := c.r(1, 0x44, 4); got != 0x3000|4 {
		t.Errorf("MSI-X table offset/BIR %#x", got)
	}
	if got := c.r(1, 0x48, 4); got != 0x3800|4 {
		t.Errorf("MSI-X PBA offset/BIR %#x", got)
	}
	// Vendor capabilities: ID, cap_len = len + 2, the caller's bytes.
	for i, vc := range fc.VendorCaps {
		o := uint64(co[i])
		if o&3 != 0 {
			t.Errorf("cap %d at %#x not dword aligned", i, o)
		}
		if got := c.r(1, o+2, 1); got != uint64(len(vc)+2) {
			t.Errorf("cap %d cap_len %d", i, got)
		}
		for j := 1; j < len(vc); j++ {
			if got := c.r(1, o+2+uint64(j), 1); got != uint64(vc[j]) {
				t.Errorf("cap %d byte %d = %#x, want %#x", i, j+2, got, vc[j])
			}
		}
		// Read-only.
		c.w(1, o, 4, 0)
		c.w(1, o+4, 4, 0xFFFFFFFF)
		if c.r(1, o, 1) != 9 || c.r(1, o+2, 1) != uint64(len(vc)+2) || c.r(1, o+4, 1) != uint64(vc[2]) {
			t.Errorf("cap %d changed by a write", i)
		}
	}
	if co[0] != 0x4C || co[1] != 0x5C {
		t.Errorf("vendor caps at %#x, %#x; want 0x4c, 0x5c", co[0], co[1])
	}
	// The MSI-X fields other than the control bits are read-only.
	c.w(1, 0x40, 4, 0xFFFFFFFF)
	c.w(1, 0x44, 4, 0)
	if c.r(1, 0x40, 2) != 0x4C11 || c.r(1, 0x42, 2) != 0xC004 || c.r(1, 0x44, 4) != 0x3004 {
		t.Errorf("MSI-X cap after writes: %#x %#x %#x", c.r(1, 0x40, 2), c.r(1, 0x42, 2), c.r(1, 0x44, 4))
	}
	// Without MSI-X the vendor caps start at 0x40.
	if offs, ids := walkCaps(t, c, 2); fmt.Sprint(ids) != "[9 9]" || offs[0] != 0x40 {
		t.Errorf("no-MSI-X caps %v at %#x", ids, offs)
	}
	if offs, _ := walkCaps(t, c, 3); offs != nil {
		t.Errorf("capability-less function lists %v", offs)
	}
}

// setupBAR programs BAR slot (and its upper half) to addr and enables
// memory decoding.
func setupBAR(c cfg, dev, slot int, addr uint64, is64 bool) {
	reg := 0x10 + uint64(4*slot)
	c.w(dev, reg, 4, addr&0xFFFFFFFF)
	if is64 {
		c.w(dev, reg+4, 4, addr>>32)
	}
	c.w(dev, 0x04, 2, c.r(dev, 0x04, 2)|pci.CommandMemory)
}

func TestWindowDecode(t *testing.T) {
	h0, h4 := &fakeBAR{id: 0xA0}, &fakeBAR{id: 0xA4}
	b := pci.NewBus(nil, nil)
	f := newFunction(t, virtioLike(h0, h4, 2))
	add(t, b, 2, f)
	g0 := &fakeBAR{id: 0xB0}
	g := newFunction(t, virtioLike(g0, nil, 0))
	add(t, b, 5, g)
	c := cfg{b}
	w := b.Window()
	at := func(gpa uint64) uint64 { return gpa - pci.WindowBase }

	// Reset: BARs at 0, decoding off: nothing answers.
	if got := w.Read(0, 4); got != 0xFFFFFFFF {
		t.Errorf("empty window reads %#x", got)
	}
	c.w(2, 0x10, 4, 0xC0001000)
	if got := w.Read(at(0xC0001000), 4); got != 0xFFFFFFFF {
		t.Errorf("BAR decoded with memory space disabled: %#x", got)
	}
	c.w(2, 0x04, 2, pci.CommandMemory)
	if got := w.Read(at(0xC0001010), 4); got != 0x10 { // the handler's value, cut to 4 bytes
		t.Errorf("BAR 0 read %#x", got)
	}
	if got := w.Read(at(0xC0001008), 8); got != 0xA0<<48|8 {
		t.Errorf("BAR 0 8-byte read %#x", got)
	}
	w.Write(at(0xC0001FFE), 2, 0x12345)
	if _, wr, off, sz, val := h0.last(); wr != 1 || off != 0xFFE || sz != 2 || val != 0x2345 {
		t.Errorf("BAR 0 write seen as %d %#x/%d %#x", wr, off, sz, val)
	}
	// Straddling the BAR's end, or just past it, hits nothing.
	if got := w.Read(at(0xC0001FFE), 4); got != 0xFFFFFFFF {
		t.Errorf("straddling read %#x", got)
	}
	if got := w.Read(at(0xC0002000), 1); got != 0xFF {
		t.Errorf("past the BAR %#x", got)
	}
	// Move it.
	c.w(2, 0x10, 4, 0xC0100000)
	if got := w.Read(at(0xC0001000), 4); got != 0xFFFFFFFF {
		t.Errorf("old address still decodes: %#x", got)
	}
	if got := w.Read(at(0xC0100004), 2); got != 4 {
		t.Errorf("new address %#x", got)
	}
	// Sizing with decoding on parks it at 0xFFFFF000: outside the window.
	c.w(2, 0x10, 4, 0xFFFFFFFF)
	if got := w.Read(at(0xC0100004), 2); got != 0xFFFF {
		t.Errorf("BAR decodes while being sized: %#x", got)
	}
	// Outside the window: below, at the ECAM, straddling the end.
	for _, a := range []uint64{0xB0000000, 0xE0000000, 0x1000} {
		c.w(2, 0x10, 4, a)
		for off := uint64(0); off < pci.WindowSize; off += 0x1000000 {
			if got := w.Read(off, 4); got != 0xFFFFFFFF {
				t.Fatalf("BAR at %#x: window %#x reads %#x", a, off, got)
			}
		}
	}
	// The last page of the window is fine.
	c.w(2, 0x10, 4, 0xDFFFF000)
	if got := w.Read(at(0xDFFFFFFC), 4); got != 0xFFC {
		t.Errorf("last page %#x", got)
	}
	// A 64-bit BAR: the high dword must be 0 for the window.
	setupBAR(c, 2, 4, 0x1_C0200000, true)
	if got := w.Read(at(0xC0200000), 4); got != 0xFFFFFFFF {
		t.Errorf("BAR above 4 GiB decoded in the window: %#x", got)
	}
	c.w(2, 0x24, 4, 0) // BAR 4's upper half
	if got := w.Read(at(0xC0200008), 4); got != 8 {
		t.Errorf("64-bit BAR %#x", got)
	}
	// Overlap: slot 5's BAR 0 at slot 2's BAR 4 address: slot 2 wins;
	// elsewhere slot 5's answers.
	setupBAR(c, 5, 0, 0xC0200000, false)
	if got := w.Read(at(0xC0200010), 4); got != 0x10 {
		t.Errorf("overlap: %#x, want slot 2's", got)
	}
	c.w(2, 0x04, 2, 0)
	if got := w.Read(at(0xC0200010), 8); got != 0xB0<<48|0x10 {
		t.Errorf("overlap after slot 2 stops decoding: %#x", got)
	}
	// Invalid sizes and offsets past the window.
	if got := w.Read(at(0xC0200010), 3); got != ^uint64(0) {
		t.Errorf("3-byte read %#x", got)
	}
	if got := w.Read(pci.WindowSize, 4); got != 0xFFFFFFFF {
		t.Errorf("read past the window %#x", got)
	}
	w.Write(pci.WindowSize+0x200010, 4, 1)
	w.Write(at(0xC0200010), 0, 1)
	if _, wr, _, _, _ := g0.last(); wr != 0 {
		t.Error("invalid write reached a handler")
	}
}

func TestMSIX(t *testing.T) {
	rec := &recorder{}
	b := pci.NewBus(rec.irq, rec.msi)
	h4 := &fakeBAR{id: 4}
	f := newFunction(t, virtioLike(nil, h4, 70))
	add(t, b, 1, f)
	c := cfg{b}
	w := b.Window()
	const bar = 0xC0010000
	setupBAR(c, 1, 4, bar, true)
	tbl := func(v int, word uint64) uint64 { return bar - pci.WindowBase + 0x3000 + uint64(16*v) + 4*word }
	pba := func(q uint64) uint64 { return bar - pci.WindowBase + 0x3800 + 8*q }

	// Reset: every vector masked, table otherwise 0, PBA clear.
	for v := 0; v < 70; v++ {
		if w.Read(tbl(v, 0), 8) != 0 || w.Read(tbl(v, 2), 4) != 0 || w.Read(tbl(v, 3), 4) != 1 {
			t.Fatalf("vector %d not in reset state", v)
		}
	}
	if w.Read(pba(0), 8) != 0 || w.Read(pba(1), 8) != 0 {
		t.Error("PBA not clear")
	}
	// The rest of the BAR goes to the handler; the table and PBA never do.
	if got := w.Read(bar-pci.WindowBase+0x2FF8, 8); got != 4<<48|0x2FF8 {
		t.Errorf("handler below the table %#x", got)
	}
	if r, _, _, _, _ := h4.last(); r != 1 {
		t.Errorf("handler reads %d", r)
	}
	// Disabled: SignalMSIX says so.
	if f.SignalMSIX(0) || f.MSIXEnabled() {
		t.Error("MSI-X reported enabled at reset")
	}
	// Enable with the function masked, as Linux does, then program.
	c.w(1, 0x43, 1, 0xC0)
	if !f.MSIXEnabled() || c.r(1, 0x42, 2) != 0xC000|69 {
		t.Fatalf("control %#x", c.r(1, 0x42, 2))
	}
	for v := 0; v < 70; v++ {
		w.Write(tbl(v, 0), 4, 0xFEE01003) // low bits are reserved: dropped
		w.Write(tbl(v, 1), 4, 0)
		w.Write(tbl(v, 2), 4, uint64(0x40+v))
	}
	if got := w.Read(tbl(3, 0), 8); got != 0xFEE01000 {
		t.Errorf("address readback %#x", got)
	}
	if got := w.Read(tbl(3, 2), 8); got != 0x1_00000043 {
		t.Errorf("data+control readback %#x", got)
	}
	// Vector masked and function masked: pending.
	if !f.SignalMSIX(3) || !f.SignalMSIX(65) {
		t.Fatal("SignalMSIX false while enabled")
	}
	if got := rec.takeMSIs(); got != nil {
		t.Errorf("masked vector delivered %v", got)
	}
	if w.Read(pba(0), 8) != 1<<3 || w.Read(pba(1), 4) != 1<<1 || w.Read(pba(0), 1) != 8 {
		t.Errorf("PBA %#x %#x", w.Read(pba(0), 8), w.Read(pba(1), 8))
	}
	// The PBA is read-only.
	w.Write(pba(0), 8, 0)
	if w.Read(pba(0), 8) != 1<<3 {
		t.Error("PBA written")
	}
	// Unmask vector 3 while the function is masked: still pending.
	w.Write(tbl(3, 3), 4, 0)
	if got := rec.takeMSIs(); got != nil {
		t.Errorf("delivered under function mask: %v", got)
	}
	// Clear the function mask: vector 3 goes out, 65 (masked) stays.
	c.w(1, 0x43, 1, 0x80)
	if got := rec.takeMSIs(); len(got) != 1 || got[0] != (msiEvent{0xFEE01000, 0x43}) {
		t.Errorf("on function unmask: %v", got)
	}
	if w.Read(pba(0), 8) != 0 || w.Read(pba(1), 8) != 2 {
		t.Errorf("PBA after flush %#x %#x", w.Read(pba(0), 8), w.Read(pba(1), 8))
	}
	// Unmask vector 65 with an 8-byte write of data+control.
	w.Write(tbl(65, 2), 8, 0x99)
	if got := rec.takeMSIs(); len(got) != 1 || got[0] != (msiEvent{0xFEE01000, 0x99}) {
		t.Errorf("on vector unmask: %v", got)
	}
	if w.Read(pba(1), 8) != 0 {
		t.Error("PBA bit not cleared")
	}
	// Unmasked: straight through.
	f.SignalMSIX(3)
	f.SignalMSIX(3)
	if got := rec.takeMSIs(); len(got) != 2 {
		t.Errorf("unmasked vector: %v", got)
	}
	// Vector control keeps only the mask bit.
	w.Write(tbl(4, 3), 4, 0xFFFFFFFE)
	if got := w.Read(tbl(4, 3), 4); got != 0 {
		t.Errorf("vector control %#x", got)
	}
	// A bad address is dropped and counted; so is a bad vector.
	w.Write(tbl(4, 0), 4, 0xFED00000)
	d0 := b.DroppedMSIs()
	f.SignalMSIX(4)
	w.Write(tbl(4, 0), 4, 0xFEE00000)
	w.Write(tbl(4, 1), 4, 1) // above 4 GiB
	f.SignalMSIX(4)
	if !f.SignalMSIX(70) || !f.SignalMSIX(-1) || !f.SignalMSIX(0xFFFF) {
		t.Error("SignalMSIX of a bad vector says MSI-X is off")
	}
	if got := rec.takeMSIs(); got != nil {
		t.Errorf("bad messages delivered: %v", got)
	}
	if b.DroppedMSIs()-d0 != 5 {
		t.Errorf("dropped %d, want 5", b.DroppedMSIs()-d0)
	}
	// Accesses straddling the table's edges, or misaligned, do nothing.
	if got := w.Read(tbl(0, 0)-4, 8); got != ^uint64(0) {
		t.Errorf("straddling the table start %#x", got)
	}
	if got := w.Read(tbl(69, 3)+2, 4); got != 0xFFFFFFFF {
		t.Errorf("straddling the table end %#x", got)
	}
	if got := w.Read(tbl(1, 0)+4, 8); got != ^uint64(0) {
		t.Errorf("misaligned 8-byte table read %#x", got)
	}
	w.Write(tbl(5, 3)-1, 2, 0) // crosses into vector 5's control: ignored
	if got := w.Read(tbl(5, 3), 4); got != 1 {
		t.Errorf("vector 5 control %#x", got)
	}
	if r, wr, _, _, _ := h4.last(); r != 1 || wr != 0 {
		t.Errorf("handler saw table accesses: %d reads %d writes", r, wr)
	}
	// Disable: SignalMSIX false, nothing sent.
	c.w(1, 0x43, 1, 0)
	if f.SignalMSIX(3) || f.MSIXEnabled() {
		t.Error("disabled MSI-X still signals")
	}
	if got := rec.takeMSIs(); got != nil {
		t.Errorf("sent while disabled: %v", got)
	}
	// Pending bits set while masked wait through a disable/enable cycle.
	c.w(1, 0x43, 1, 0xC0)
	f.SignalMSIX(3)
	c.w(1, 0x43, 1, 0x00)
	c.w(1, 0x43, 1, 0x80)
	if got := rec.takeMSIs(); len(got) != 1 || got[0].data != 0x43 {
		t.Errorf("pending vector after re-enable: %v", got)
	}
	// The table is reached only while the BAR decodes.
	c.w(1, 0x04, 2, 0)
	if got := w.Read(tbl(3, 2), 4); got != 0xFFFFFFFF {
		t.Errorf("table with memory space off %#x", got)
	}
}

// TestINTxRouting checks the slot/pin swizzle against the formula the
// ACPI _PRT uses, INTx disable, the status bit and the wired-OR sharing.
func TestINTxRouting(t *testing.T) {
	for slot := 1; slot < pci.Slots; slot++ {
		for pin := uint8(1); pin <= 4; pin++ {
			rec := &recorder{}
			b := pci.NewBus(rec.irq, nil)
			f := newFunction(t, pci.FunctionConfig{VendorID: 1, InterruptPin: pin})
			add(t, b, slot, f)
			f.SetINTx(true)
			want := pci.INTxGSIBase + (slot+int(pin)-1)&3
			if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{want, true}) {
				t.Fatalf("slot %d pin %d: %v, want GSI %d", slot, pin, got, want)
			}
		}
	}

	rec := &recorder{}
	b := pci.NewBus(rec.irq, rec.msi)
	f := newFunction(t, virtioLike(nil, nil, 2)) // INTA
	// Before Add: the level is recorded, nothing is driven.
	f.SetINTx(true)
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("irq before Add: %v", got)
	}
	add(t, b, 1, f) // slot 1 INTA: GSI 21
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, true}) {
		t.Errorf("Add with the level high: %v", got)
	}
	c := cfg{b}
	if c.r(1, 0x06, 2)&8 == 0 {
		t.Error("status interrupt bit clear while asserted")
	}
	f.SetINTx(true) // no change: no call
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("repeated level: %v", got)
	}
	c.w(1, 0x04, 2, pci.CommandINTxDisable)
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, false}) {
		t.Errorf("INTx disable: %v", got)
	}
	if c.r(1, 0x06, 2)&8 == 0 {
		t.Error("status interrupt bit must still show the device's level")
	}
	f.SetINTx(false)
	f.SetINTx(true)
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("level changes while disabled: %v", got)
	}
	c.w(1, 0x04, 2, 0)
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, true}) {
		t.Errorf("INTx re-enabled: %v", got)
	}
	// MSI-X enabled: the line drops and stays low.
	c.w(1, 0x43, 1, 0x80)
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, false}) {
		t.Errorf("MSI-X enable: %v", got)
	}
	f.SetINTx(false)
	f.SetINTx(true)
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("INTx with MSI-X on: %v", got)
	}
	c.w(1, 0x43, 1, 0)
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, true}) {
		t.Errorf("MSI-X disable: %v", got)
	}
	// Wired-OR: slot 5 INTA shares GSI 21 with slot 1 INTA.
	g := newFunction(t, pci.FunctionConfig{VendorID: 2, InterruptPin: 1})
	add(t, b, 5, g)
	g.SetINTx(true)
	f.SetINTx(false)
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("shared line dropped while slot 5 asserts: %v", got)
	}
	g.SetINTx(false)
	if got := rec.takeIRQs(); len(got) != 1 || got[0] != (irqEvent{21, false}) {
		t.Errorf("shared line: %v", got)
	}
	// No pin: nothing, ever.
	h := newFunction(t, pci.FunctionConfig{VendorID: 3})
	add(t, b, 6, h)
	h.SetINTx(true)
	if got := rec.takeIRQs(); got != nil {
		t.Errorf("pin-less function drove %v", got)
	}
}

// fakeReset records accesses to the reset control register.
type fakeReset struct{ in, out, last uint32 }

func (r *fakeReset) In(off uint16, size uint8) uint32 { r.in++; return 0x5A }
func (r *fakeReset) Out(off uint16, size uint8, v uint32) {
	r.out++
	r.last = v
}

func TestConfigMechanisms(t *testing.T) {
	b := pci.NewBus(nil, nil)
	add(t, b, 1, newFunction(t, virtioLike(nil, nil, 3)))
	add(t, b, 31, newFunction(t, pci.FunctionConfig{VendorID: 0x8086, DeviceID: 0x1234, InterruptPin: 4}))
	c := cfg{b}
	a, d := b.ConfigPorts()

	// Linux's pci_check_type1.
	a.Out(3, 1, 0x01)
	saved := a.In(0, 4)
	a.Out(0, 4, 0x80000000)
	if got := a.In(0, 4); got != 0x80000000 {
		t.Errorf("type 1 probe reads %#x", got)
	}
	a.Out(0, 4, saved)
	// Reserved and low bits read 0; narrower writes do not change it.
	a.Out(0, 4, 0xFFFFFFFF)
	if got := a.In(0, 4); got != 0x80FFFFFC {
		t.Errorf("address register %#x", got)
	}
	a.Out(0, 2, 0)
	a.Out(2, 1, 0)
	if got := a.In(0, 4); got != 0x80FFFFFC || a.In(2, 2) != 0x80FF || a.In(0, 1) != 0xFC {
		t.Errorf("after narrow writes %#x", got)
	}
	// 0xCF9 byte accesses go to the reset control register once set.
	rst := &fakeReset{}
	a.Out(1, 1, 6)
	b.SetResetControl(rst)
	a.Out(1, 1, 6)
	if got := a.In(1, 1); got != 0x5A || rst.out != 1 || rst.last != 6 || rst.in != 1 {
		t.Errorf("reset control: read %#x, %+v", got, rst)
	}
	if got := a.In(0, 4); got != 0x80FFFFFC {
		t.Errorf("0xCF9 write changed the address register: %#x", got)
	}

	// Every register, every size, both mechanisms agree.
	for _, dev := range []int{0, 1, 2, 31} {
		for reg := uint64(0); reg < 0x100; reg++ {
			for _, size := range []uint8{1, 2, 4} {
				if reg&3+uint64(size) > 4 {
					continue
				}
				e, p := c.r(dev, reg, size), cf8Read(b, 0, dev, 0, reg, size)
				if e != uint64(p) {
					t.Fatalf("dev %d reg %#x size %d: ECAM %#x, CF8 %#x", dev, reg, size, e, p)
				}
			}
		}
	}
	// Writes through one are seen through the other.
	cf8Write(b, 0, 1, 0, 0x3C, 1, 0x42)
	cf8Write(b, 0, 1, 0, 0x10, 4, 0xC0005000)
	if c.r(1, 0x3C, 1) != 0x42 || c.r(1, 0x10, 4) != 0xC0005000 {
		t.Error("CF8 write not seen through ECAM")
	}
	c.w(31, 0x3C, 1, 0x17)
	c.w(1, 0x04, 2, 6)
	if cf8Read(b, 0, 31, 0, 0x3C, 2) != 0x0417 || cf8Read(b, 0, 1, 0, 0x04, 2) != 6 {
		t.Error("ECAM write not seen through CF8")
	}
	// Data port offsets select bytes: 2 bytes at 0xCFE read register+2.
	if got := cf8Read(b, 0, 1, 0, 0x02, 2); got != 0x1041 {
		t.Errorf("0xCFE read %#x", got)
	}
	// Enable bit clear, another bus, another function, an empty slot:
	// all ones, writes ignored.
	a.Out(0, 4, 1<<11) // device 1, enable clear
	if got := d.In(0, 4); got != 0xFFFFFFFF {
		t.Errorf("disabled read %#x", got)
	}
	d.Out(0, 1, 0)
	if got := cf8Read(b, 1, 1, 0, 0, 4); got != 0xFFFFFFFF {
		t.Errorf("bus 1 read %#x", got)
	}
	cf8Write(b, 1, 1, 0, 0x3C, 1, 0)
	cf8Write(b, 0, 1, 1, 0x3C, 1, 0)
	if c.r(1, 0x3C, 1) != 0x42 {
		t.Error("write to bus 1 / function 1 reached device 1")
	}
	// A data access running past 0xCFF (the I/O bus never sends one).
	a.Out(0, 4, 0x80000800)
	if got := d.In(3, 2); got != 0xFFFF {
		t.Errorf("data port overrun %#x", got)
	}
	d.Out(2, 4, 0)
}

func TestAbsent(t *testing.T) {
	b := pci.NewBus(nil, nil)
	add(t, b, 1, newFunction(t, virtioLike(nil, nil, 3)))
	e := b.ECAM()
	for _, tc := range []struct{ dev, fn int }{{1, 1}, {1, 7}, {0, 3}, {2, 0}, {30, 0}, {31, 7}} {
		for _, size := range []uint8{1, 2, 4, 8} {
			for _, reg := range []uint64{0, 0x3C, 0x100, 0xFF8} {
				if got, want := e.Read(ecamOff(tc.dev, tc.fn, reg), size), uint64(1)<<(8*size)-1; size < 8 && got != want || size == 8 && got != ^uint64(0) {
					t.Errorf("%d.%d reg %#x size %d = %#x", tc.dev, tc.fn, reg, size, got)
				}
			}
		}
		e.Write(ecamOff(tc.dev, tc.fn, 0x04), 2, 0xFFFF)
		if got := cf8Read(b, 0, tc.dev, tc.fn, 0, 4); got != 0xFFFFFFFF {
			t.Errorf("%d.%d via CF8 = %#x", tc.dev, tc.fn, got)
		}
	}
	if b.ECAM().Read(pci.ECAMSize, 4) != 0xFFFFFFFF || b.ECAM().Read(^uint64(0), 1) != 0xFF {
		t.Error("ECAM past its end")
	}
	b.ECAM().Write(pci.ECAMSize+4, 4, 0)
	if cfg(cfg{b}).r(1, 4, 2) != 0 {
		t.Error("write past ECAM end reached device 0")
	}
}

// TestHostile throws every value at every register of every function
// through both mechanisms and checks the invariants still hold.
func TestHostile(t *testing.T) {
	rec := &recorder{}
	b := pci.NewBus(rec.irq, rec.msi)
	h0, h4 := &fakeBAR{}, &fakeBAR{}
	f := newFunction(t, virtioLike(h0, h4, 64))
	add(t, b, 1, f)
	c := cfg{b}
	for _, v := range []uint64{0, ^uint64(0), 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0xC0000000C0000000} {
		for reg := uint64(0); reg < 0x1000; reg++ {
			for _, size := range []uint8{1, 2, 4, 8, 3, 0} {
				c.w(1, reg, size, v)
				c.w(0, reg, size, v)
				cf8Write(b, 0, 1, 0, reg, size, uint32(v))
			}
			f.SignalMSIX(int(reg % 70))
			f.SetINTx(reg&1 != 0)
		}
		w := b.Window()
		for off := uint64(0); off < 0x10000; off += 4 {
			w.Write(off, 4, v)
			w.Read(off, 8)
		}
		if c.r(1, 0, 4) != 0x10411af4 || c.r(1, 0x08, 4) != 0x02000001 || c.r(1, 0x34, 1) != 0x40 || c.r(1, 0x0E, 1) != 0 {
			t.Fatalf("identity changed after writing %#x", v)
		}
		if c.r(0, 0, 4) != 0x00081b36 {
			t.Fatalf("host bridge changed")
		}
		if offs, ids := walkCaps(t, c, 1); fmt.Sprint(ids) != "[17 9 9]" || offs[0] != 0x40 {
			t.Fatalf("caps %v", ids)
		}
		if got := c.r(1, 0x04, 2); got&^0x406 != 0 {
			t.Fatalf("command %#x", got)
		}
	}
	for _, e := range rec.takeMSIs() {
		if e.addr>>20 != 0xFEE {
			t.Errorf("message to %#x delivered", e.addr)
		}
	}
	// Line events alternate per GSI and stay within 20-23.
	last := map[int]bool{}
	for _, e := range rec.takeIRQs() {
		if e.gsi < 20 || e.gsi > 23 || last[e.gsi] == e.level {
			t.Fatalf("irq event %+v after level %v", e, last[e.gsi])
		}
		last[e.gsi] = e.level
	}
}

// TestConcurrent runs the exit-path entry points from several goroutines
// (for the race detector), then checks the INTx line ends up matching the
// final state.
func TestConcurrent(t *testing.T) {
	var lineMu sync.Mutex
	line := map[int]bool{}
	b := pci.NewBus(func(gsi int, level bool) {
		lineMu.Lock()
		if line[gsi] == level {
			t.Errorf("irq(%d, %v) repeats the level", gsi, level)
		}
		line[gsi] = level
		lineMu.Unlock()
	}, func(uint64, uint32) {})
	f := newFunction(t, virtioLike(&fakeBAR{}, &fakeBAR{}, 8))
	add(t, b, 1, f)
	c := cfg{b}
	setupBAR(c, 1, 4, 0xC0010000, true)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			a, d := b.ConfigPorts()
			w := b.Window()
			for i := 0; i < 2000; i++ {
				switch (i + g) % 6 {
				case 0:
					f.SetINTx(i&2 != 0)
				case 1:
					c.w(1, 0x04, 2, uint64(0x0406&(i*g)))
					c.w(1, 0x04, 2, pci.CommandMemory)
				case 2:
					f.SignalMSIX(i % 8)
				case 3:
					w.Write(0x10000+0x3000+uint64(16*(i%8)+12), 4, uint64(i&1))
					w.Read(0x10000+0x3800, 8)
				case 4:
					a.Out(0, 4, 0x80000800|uint32(i&0x3C))
					d.In(0, 4)
				case 5:
					c.w(1, 0x43, 1, uint64(i&0xC0))
				}
			}
		}(g)
	}
	wg.Wait()
	c.w(1, 0x43, 1, 0)
	c.w(1, 0x04, 2, pci.CommandMemory)
	f.SetINTx(true)
	lineMu.Lock()
	if !line[21] {
		t.Error("line 21 low with INTx asserted and enabled")
	}
	lineMu.Unlock()
	f.SetINTx(false)
	lineMu.Lock()
	if line[21] {
		t.Error("line 21 high after deassert")
	}
	lineMu.Unlock()
}

// TestAllocs checks that the exit-path entry points do not allocate.
func TestAllocs(t *testing.T) {
	var irqs, msis int
	b := pci.NewBus(func(int, bool) { irqs++ }, func(uint64, uint32) { msis++ })
	f := newFunction(t, virtioLike(&fakeBAR{}, &fakeBAR{}, 8))
	add(t, b, 1, f)
	c := cfg{b}
	setupBAR(c, 1, 0, 0xC0000000, false)
	setupBAR(c, 1, 4, 0xC0010000, true)
	c.w(1, 0x43, 1, 0xC0)
	w := b.Window()
	for v := 0; v < 8; v++ {
		w.Write(0x10000+0x3000+uint64(16*v), 4, 0xFEE00000)
	}
	a, d := b.ConfigPorts()
	e := b.ECAM()
	i := 0
	n := testing.AllocsPerRun(500, func() {
		i++
		e.Read(ecamOff(1, 0, uint64(i&0xFFC)), 4)
		e.Write(ecamOff(1, 0, 0x3C), 1, uint64(i))
		e.Read(ecamOff(1, 0, 0x10), 8)
		a.Out(0, 4, 0x80000800|uint32(i&0xFC))
		d.In(uint16(i&3), 1)
		d.Out(0, 4, 0)
		a.In(0, 4)
		w.Read(uint64(i&0xFF8), 8)
		w.Write(0x10, 4, uint64(i))
		w.Read(0x10000+0x3000+uint64(i&0x7C), 4)
		w.Write(0x10000+0x3000+12, 4, uint64(i&1)) // mask/unmask vector 0
		w.Read(0x10000+0x3800, 8)
		f.SignalMSIX(i & 7)
		c.w(1, 0x43, 1, uint64(0x80|(i&1)<<6)) // function mask toggles
		f.SetINTx(i&1 != 0)
		c.w(1, 0x04, 2, uint64(pci.CommandMemory|(i&1)<<10))
		f.MSIXEnabled()
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
	if msis == 0 {
		t.Error("the allocation test sent no messages")
	}
}
