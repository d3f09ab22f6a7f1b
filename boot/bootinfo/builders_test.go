package bootinfo

import (
	"encoding/binary"
	"sort"
)

// Test builders: they lay out PVH and multiboot2 structures in a byte slice
// that stands in for physical memory (phys.FromSlice), following
// start_info.h and the multiboot2 specification.

var le = binary.LittleEndian

type e820 struct {
	base, length uint64
	typ          uint32
}

type pvhMod struct {
	start, size uint64
	cmdline     string
	noCmdline   bool
}

// PVH sections, in the default layout order.
const (
	secStart = iota
	secMemmap
	secModlist
	secCmdline
	secModCmdlines
	numSecs
)

type pvhSpec struct {
	version    uint32
	cmdline    string
	noCmdline  bool
	cmdlineNUL bool // false: append a NUL (the normal case)
	mods       []pvhMod
	nrMods     int64 // >= 0 overrides nr_modules
	mem        []e820
	memEntries int64 // >= 0 overrides memmap_entries
	rsdp       uint64
	order      []int // section order; nil = default
	gap        int   // padding between sections
}

type pvhLayout struct {
	sec [numSecs][2]int // [start, end) of each section in the buffer
	// modCmd[i] is the [start, end) of module i's command line.
	modCmd [][2]int
}

func newPVH() pvhSpec { return pvhSpec{version: 1, nrMods: -1, memEntries: -1} }

func align8(n int) int { return (n + 7) &^ 7 }

// build returns the memory image, the EBX value and where things landed.
func (s pvhSpec) build() ([]byte, uint32, pvhLayout) {
	var lay pvhLayout
	size := [numSecs]int{}
	size[secStart] = pvhSizeV1
	if s.version == 0 {
		size[secStart] = pvhSizeV0
	}
	size[secMemmap] = 24 * len(s.mem)
	size[secModlist] = 32 * len(s.mods)
	if !s.noCmdline {
		size[secCmdline] = len(s.cmdline)
		if !s.cmdlineNUL {
			size[secCmdline]++
		}
	}
	for _, m := range s.mods {
		if !m.noCmdline {
			size[secModCmdlines] += len(m.cmdline) + 1
		}
	}
	order := s.order
	if order == nil {
		order = []int{secStart, secMemmap, secModlist, secCmdline, secModCmdlines}
	}
	off := 64 // nothing at physical 0: 0 means "absent" in start_info
	end := off
	for _, sec := range order {
		if size[sec] == 0 {
			lay.sec[sec] = [2]int{0, 0}
			continue
		}
		off = align8(end) + s.gap
		lay.sec[sec] = [2]int{off, off + size[sec]}
		end = off + size[sec]
	}
	buf := make([]byte, end)

	st := lay.sec[secStart][0]
	le.PutUint32(buf[st:], PVHMagic)
	le.PutUint32(buf[st+4:], s.version)
	nr := uint32(len(s.mods))
	if s.nrMods >= 0 {
		nr = uint32(s.nrMods)
	}
	le.PutUint32(buf[st+12:], nr)
	if len(s.mods) > 0 {
		le.PutUint64(buf[st+16:], uint64(lay.sec[secModlist][0]))
	}
	if !s.noCmdline {
		le.PutUint64(buf[st+24:], uint64(lay.sec[secCmdline][0]))
		copy(buf[lay.sec[secCmdline][0]:], s.cmdline)
	}
	le.PutUint64(buf[st+32:], s.rsdp)
	if s.version >= 1 {
		ne := uint32(len(s.mem))
		if s.memEntries >= 0 {
			ne = uint32(s.memEntries)
		}
		if len(s.mem) > 0 {
			le.PutUint64(buf[st+40:], uint64(lay.sec[secMemmap][0]))
		}
		le.PutUint32(buf[st+48:], ne)
	}
	for i, e := range s.mem {
		p := lay.sec[secMemmap][0] + 24*i
		le.PutUint64(buf[p:], e.base)
		le.PutUint64(buf[p+8:], e.length)
		le.PutUint32(buf[p+16:], e.typ)
	}
	mc := lay.sec[secModCmdlines][0]
	for i, m := range s.mods {
		p := lay.sec[secModlist][0] + 32*i
		le.PutUint64(buf[p:], m.start)
		le.PutUint64(buf[p+8:], m.size)
		if m.noCmdline {
			lay.modCmd = append(lay.modCmd, [2]int{})
			continue
		}
		le.PutUint64(buf[p+16:], uint64(mc))
		copy(buf[mc:], m.cmdline)
		lay.modCmd = append(lay.modCmd, [2]int{mc, mc + len(m.cmdline) + 1})
		mc += len(m.cmdline) + 1
	}
	return buf, uint32(lay.sec[secStart][0]), lay
}

// Multiboot2.

type mb2Tag struct {
	typ  uint32
	body []byte
	size int64 // >= 0 overrides the size field
}

type mb2Spec struct {
	tags      []mb2Tag
	noEnd     bool
	totalSize int64 // >= 0 overrides total_size
	lead      int   // bytes before the MBI (EBX = lead); 64 if 0
}

func (s mb2Spec) build() ([]byte, uint32) {
	lead := s.lead
	if lead == 0 {
		lead = 64
	}
	mbi := make([]byte, 8)
	tags := s.tags
	if !s.noEnd {
		tags = append(append([]mb2Tag(nil), tags...), mb2Tag{typ: 0, size: -1})
	}
	for _, t := range tags {
		for len(mbi)%8 != 0 {
			mbi = append(mbi, 0)
		}
		h := make([]byte, 8)
		le.PutUint32(h, t.typ)
		sz := uint32(8 + len(t.body))
		if t.size >= 0 {
			sz = uint32(t.size)
		}
		le.PutUint32(h[4:], sz)
		mbi = append(mbi, h...)
		mbi = append(mbi, t.body...)
	}
	total := uint32(len(mbi))
	if s.totalSize >= 0 {
		total = uint32(s.totalSize)
	}
	le.PutUint32(mbi, total)
	return append(make([]byte, lead), mbi...), uint32(lead)
}

func tag(typ uint32, body []byte) mb2Tag { return mb2Tag{typ: typ, body: body, size: -1} }

func cstr(s string) []byte { return append([]byte(s), 0) }

func u64body(v uint64) []byte { b := make([]byte, 8); le.PutUint64(b, v); return b }

func moduleBody(start, end uint32, cmd string) []byte {
	b := make([]byte, 8)
	le.PutUint32(b, start)
	le.PutUint32(b[4:], end)
	return append(b, cstr(cmd)...)
}

func mmapBody(entrySize uint32, es []e820) []byte {
	b := make([]byte, 8)
	le.PutUint32(b, entrySize)
	for _, e := range es {
		ent := make([]byte, entrySize)
		le.PutUint64(ent, e.base)
		le.PutUint64(ent[8:], e.length)
		le.PutUint32(ent[16:], e.typ)
		for i := 24; i < int(entrySize); i++ {
			ent[i] = 0xAA // vendor extension bytes the parser must skip
		}
		b = append(b, ent...)
	}
	return b
}

type efiDesc struct {
	typ          uint32
	start, pages uint64
}

func efiMapBody(descSize uint32, ds []efiDesc) []byte {
	b := make([]byte, 8)
	le.PutUint32(b, descSize)
	le.PutUint32(b[4:], 1) // descriptor_version
	for _, d := range ds {
		ent := make([]byte, descSize)
		le.PutUint32(ent, d.typ)
		le.PutUint64(ent[8:], d.start)
		le.PutUint64(ent[16:], 0xdead0000) // VirtualStart: ignored
		le.PutUint64(ent[24:], d.pages)
		le.PutUint64(ent[32:], 0xf) // Attribute: UC|WC|WT|WB
		b = append(b, ent...)
	}
	return b
}

func rsdpBody(n int, fill byte) []byte {
	b := make([]byte, n)
	copy(b, "RSD PTR ")
	for i := 8; i < n; i++ {
		b[i] = fill
	}
	return b
}

// Reference model of the sanitiser, written independently of the
// production sweep: elementary intervals over all clipped boundaries.

func refClip(e e820) (b, end uint64, t RegionType, ok bool) {
	t = e820Type(e.typ)
	if e.length == 0 || e.base >= MaxPhys {
		return
	}
	end = e.base + e.length
	if end < e.base { // wraps
		if t == RegionRAM {
			return
		}
		return e.base, MaxPhys, t, true
	}
	if end > MaxPhys {
		end = MaxPhys
	}
	return e.base, end, t, true
}

func refMap(es []e820) ([]Region, bool) {
	type iv struct {
		b, e uint64
		t    RegionType
	}
	var ivs []iv
	var pts []uint64
	for _, e := range es {
		if b, end, t, ok := refClip(e); ok {
			ivs = append(ivs, iv{b, end, t})
			pts = append(pts, b, end)
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i] < pts[j] })
	var out []Region
	for i := 0; i+1 < len(pts); i++ {
		lo, hi := pts[i], pts[i+1]
		if lo == hi {
			continue
		}
		var t RegionType
		for _, v := range ivs {
			if v.b <= lo && hi <= v.e && v.t > t {
				t = v.t
			}
		}
		if t == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Type == t && out[n-1].End() == lo {
			out[n-1].Length = hi - out[n-1].Base
			continue
		}
		out = append(out, Region{Base: lo, Length: hi - lo, Type: t})
	}
	truncated := false
	if len(out) > MaxRegions {
		out, truncated = out[:MaxRegions], true
	}
	var res []Region
	for _, r := range out {
		if r.Type == RegionRAM {
			b := (r.Base + 4095) &^ 4095
			e := r.End() &^ 4095
			if b >= e {
				continue
			}
			r.Base, r.Length = b, e-b
		}
		res = append(res, r)
	}
	return res, truncated
}
