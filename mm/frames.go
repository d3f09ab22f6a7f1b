package mm

import (
	"math/bits"

	"juice/mm/phys"
)

// Frames is the physical frame allocator: 4 KiB frames tracked by bitmaps
// that live in the RAM it manages.
//
// A Frames value is a small handle holding no Go pointers. Its mutable
// state (free count, search hint and both bitmaps) lives in a metadata
// block in RAM, so every copy of an initialised Frames refers to the same
// allocator; PageTables and Space keep such copies.
//
// The metadata block holds a 64-byte header, then the free bitmap (bit set
// = frame free), then the managed bitmap (bit set = the allocator may hand
// the frame out: RAM, not reserved, not frame 0, not the metadata block).
// The managed bitmap lets Free tell a double free from a foreign frame.
// Both cover the frames from the lowest to the highest usable RAM frame, so
// a 64 MiB machine needs 4 KiB of metadata and a 64 GiB one about 4 MiB.
//
// Allocation is first fit from a hint: the hint is a bitmap word below
// which no frame is free. Alloc scans forward from it and moves it up past
// full words; Free moves it down. A run of allocations therefore touches
// each bitmap word at most once between frees (O(1) amortised).
type Frames struct {
	mem   phys.Mem
	meta  uint64 // physical address of the metadata block; 0 = not initialised
	size  uint64 // bytes of the metadata block (whole frames)
	lo    uint64 // frame number of bit 0
	words uint64 // 64-bit words in each bitmap
	total uint64 // frames managed
}

// Metadata header layout (offsets from Frames.meta).
const (
	hdrMagic = 0  // framesMagic
	hdrFree  = 8  // free frame count
	hdrHint  = 16 // no free frame in bitmap words below this one
	hdrSize  = 64 // header bytes before the free bitmap

	framesMagic = 0x4d52_4645_4349_554a // "JUICEFRM", little-endian
)

// Init sets the allocator up over the usable RAM ranges ram (unaligned
// ends shrink inward to whole frames; RAM beyond mem's window is ignored),
// minus the reserved ranges (any frame they touch is never handed out:
// kernel image, boot information, modules, the first MiB). Frame 0 is never
// handed out either. The metadata block goes in the lowest free RAM that
// fits and is marked used. The slices may point at caller stack arrays;
// Init keeps no reference to them. Status: OK, NoMemory (no RAM, or no
// room for the metadata), Uninitialized (mem is nil).
//
//go:nosplit
func (f *Frames) Init(mem *phys.Mem, ram []Range, reserved []Range) Status {
	*f = Frames{}
	if mem == nil {
		return Uninitialized
	}
	m := *mem
	loF, hiF := ^uint64(0), uint64(0)
	for i := 0; i < len(ram); i++ {
		b, e, ok := clipRAM(&m, ram[i])
		if !ok {
			continue
		}
		if b>>12 < loF {
			loF = b >> 12
		}
		if e>>12 > hiF {
			hiF = e >> 12
		}
	}
	if hiF <= loF {
		return NoMemory
	}
	words := (hiF - loF + 63) / 64
	size := (hdrSize + 2*words*8 + pageMask) &^ pageMask
	meta, ok := placeMeta(&m, ram, reserved, size)
	if !ok {
		return NoMemory
	}
	if !m.Zero(meta, size) {
		return NoMemory
	}
	f.mem, f.meta, f.size, f.lo, f.words = m, meta, size, loF, words
	managed := f.managedBM()
	for i := 0; i < len(ram); i++ {
		if b, e, ok := clipRAM(&m, ram[i]); ok {
			f.fill(managed, b>>12, e>>12, true)
		}
	}
	for i := 0; i < len(reserved); i++ {
		r := reserved[i]
		if r.End <= r.Base {
			continue
		}
		e, ok := alignUp(r.End)
		if !ok {
			e = ^uint64(0) &^ pageMask
		}
		f.fill(managed, r.Base>>12, e>>12, false)
	}
	f.fill(managed, 0, 1, false)
	f.fill(managed, meta>>12, (meta+size)>>12, false)
	var total uint64
	fb := f.freeBM()
	for w := uint64(0); w < words; w++ {
		v, _ := m.Load64(managed + w*8)
		m.Store64(fb+w*8, v)
		total += popcount(v)
	}
	f.total = total
	m.Store64(meta+hdrFree, total)
	m.Store64(meta+hdrHint, 0)
	m.Store64(meta+hdrMagic, framesMagic)
	return OK
}

// clipRAM shrinks r inward to whole frames inside m's window.
//
//go:nosplit
func clipRAM(m *phys.Mem, r Range) (b, e uint64, ok bool) {
	end := r.End
	if end > m.Size() {
		end = m.Size()
	}
	b, ok = alignUp(r.Base)
	if !ok {
		return 0, 0, false
	}
	e = end &^ pageMask
	if e <= b {
		return 0, 0, false
	}
	return b, e, true
}

// placeMeta finds size bytes of page-aligned RAM that avoid frame 0 and
// every reserved range: the lowest such spot, RAM range by RAM range.
//
//go:nosplit
func placeMeta(m *phys.Mem, ram, reserved []Range, size uint64) (uint64, bool) {
	for i := 0; i < len(ram); i++ {
		b, e, ok := clipRAM(m, ram[i])
		if !ok {
			continue
		}
		cand := b
		if cand < PageSize {
			cand = PageSize
		}
		// Each pass either succeeds or moves cand past one reserved range,
		// so there are at most len(reserved)+1 passes.
		for pass := 0; pass <= len(reserved); pass++ {
			if cand >= e || e-cand < size {
				break
			}
			end := cand + size
			moved := false
			for j := 0; j < len(reserved); j++ {
				r := reserved[j]
				if r.End > r.Base && r.Base < end && cand < r.End {
					next, ok := alignUp(r.End)
					if !ok {
						return 0, false
					}
					cand = next
					moved = true
					break
				}
			}
			if !moved {
				return cand, true
			}
		}
	}
	return 0, false
}

//go:nosplit
func (f *Frames) freeBM() uint64 { return f.meta + hdrSize }

//go:nosplit
func (f *Frames) managedBM() uint64 { return f.meta + hdrSize + f.words*8 }

// fill sets (or clears) the bits of frames [from, to) in the bitmap at bm,
// clipped to the frames the bitmaps cover.
//
//go:nosplit
func (f *Frames) fill(bm, from, to uint64, set bool) {
	if from < f.lo {
		from = f.lo
	}
	limit := f.lo + f.words*64
	if to > limit {
		to = limit
	}
	if from >= to {
		return
	}
	from -= f.lo
	to -= f.lo
	for from < to {
		w := from >> 6
		b := from & 63
		n := uint64(64) - b
		if to-from < n {
			n = to - from
		}
		mask := ^uint64(0)
		if n < 64 {
			mask = (uint64(1)<<n - 1) << b
		}
		v, _ := f.mem.Load64(bm + w*8)
		if set {
			v |= mask
		} else {
			v &^= mask
		}
		f.mem.Store64(bm+w*8, v)
		from += n
	}
}

// popcount counts the set bits of v without the runtime's CPU-feature
// dispatch (not yet set up before the runtime starts).
//
//go:nosplit
func popcount(v uint64) uint64 {
	v -= (v >> 1) & 0x5555555555555555
	v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333)
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0f
	return (v * 0x0101010101010101) >> 56
}

// ready reports whether f was initialised.
//
//go:nosplit
func (f *Frames) ready() bool { return f != nil && f.meta != 0 && f.words != 0 }

// Alloc hands out one frame; its contents are undefined. ok is false when
// no frame is free (or f is not initialised).
//
//go:nosplit
func (f *Frames) Alloc() (pa uint64, ok bool) {
	if !f.ready() {
		return 0, false
	}
	free, _ := f.mem.Load64(f.meta + hdrFree)
	if free == 0 {
		return 0, false
	}
	hint, _ := f.mem.Load64(f.meta + hdrHint)
	fb := f.freeBM()
	for w := hint; w < f.words; w++ {
		v, _ := f.mem.Load64(fb + w*8)
		if v == 0 {
			continue
		}
		b := uint64(bits.TrailingZeros64(v))
		f.mem.Store64(fb+w*8, v&^(1<<b))
		f.mem.Store64(f.meta+hdrFree, free-1)
		f.mem.Store64(f.meta+hdrHint, w)
		return (f.lo + w*64 + b) << 12, true
	}
	// The hint invariant makes this unreachable; repair rather than fail
	// if the count says a frame is free below the hint.
	f.mem.Store64(f.meta+hdrHint, 0)
	for w := uint64(0); w < hint && w < f.words; w++ {
		v, _ := f.mem.Load64(fb + w*8)
		if v == 0 {
			continue
		}
		b := uint64(bits.TrailingZeros64(v))
		f.mem.Store64(fb+w*8, v&^(1<<b))
		f.mem.Store64(f.meta+hdrFree, free-1)
		f.mem.Store64(f.meta+hdrHint, w)
		return (f.lo + w*64 + b) << 12, true
	}
	f.mem.Store64(f.meta+hdrFree, 0)
	return 0, false
}

// AllocZeroed hands out one frame filled with zeros.
//
//go:nosplit
func (f *Frames) AllocZeroed() (pa uint64, ok bool) {
	pa, ok = f.Alloc()
	if !ok {
		return 0, false
	}
	f.mem.Zero(pa, PageSize)
	return pa, true
}

// AllocContig hands out n physically contiguous frames (4 KiB aligned;
// no larger alignment is promised) and returns the first one's address.
// It scans the bitmap from the hint: O(frames), meant for rare, early use.
//
//go:nosplit
func (f *Frames) AllocContig(n uint64) (pa uint64, ok bool) {
	if !f.ready() || n == 0 {
		return 0, false
	}
	free, _ := f.mem.Load64(f.meta + hdrFree)
	if n > free {
		return 0, false
	}
	hint, _ := f.mem.Load64(f.meta + hdrHint)
	fb := f.freeBM()
	nbits := f.words * 64
	run, start := uint64(0), uint64(0)
	for i := hint * 64; i < nbits; {
		v, _ := f.mem.Load64(fb + (i>>6)*8)
		if i&63 == 0 && v == 0 {
			run = 0
			i += 64
			continue
		}
		if v&(1<<(i&63)) == 0 {
			run = 0
			i++
			continue
		}
		if run == 0 {
			start = i
		}
		run++
		i++
		if run == n {
			f.fill(fb, f.lo+start, f.lo+start+n, false)
			f.mem.Store64(f.meta+hdrFree, free-n)
			return (f.lo + start) << 12, true
		}
	}
	return 0, false
}

// Free returns the frame at pa. Status: OK, BadAlign (pa not
// frame-aligned), NotRAM (not a frame this allocator hands out), DoubleFree
// (already free), Uninitialized. Nothing changes unless the status is OK.
//
//go:nosplit
func (f *Frames) Free(pa uint64) Status {
	idx, st := f.check(pa)
	if st != OK {
		return st
	}
	fb := f.freeBM()
	w := idx >> 6
	v, _ := f.mem.Load64(fb + w*8)
	f.mem.Store64(fb+w*8, v|1<<(idx&63))
	free, _ := f.mem.Load64(f.meta + hdrFree)
	f.mem.Store64(f.meta+hdrFree, free+1)
	if hint, _ := f.mem.Load64(f.meta + hdrHint); w < hint {
		f.mem.Store64(f.meta+hdrHint, w)
	}
	return OK
}

// FreeContig returns the n frames starting at pa. It checks all of them
// first and frees none unless every one may be freed.
//
//go:nosplit
func (f *Frames) FreeContig(pa, n uint64) Status {
	if pa >= maxPhys || n > (maxPhys-pa)>>12 {
		return BadAddress
	}
	for i := uint64(0); i < n; i++ {
		if _, st := f.check(pa + i<<12); st != OK {
			return st
		}
	}
	for i := uint64(0); i < n; i++ {
		f.Free(pa + i<<12)
	}
	return OK
}

// check validates pa as an allocated, managed frame and returns its bit.
//
//go:nosplit
func (f *Frames) check(pa uint64) (uint64, Status) {
	if !f.ready() {
		return 0, Uninitialized
	}
	if pa&pageMask != 0 {
		return 0, BadAlign
	}
	fn := pa >> 12
	if fn < f.lo || fn-f.lo >= f.words*64 {
		return 0, NotRAM
	}
	idx := fn - f.lo
	w := idx >> 6
	bit := uint64(1) << (idx & 63)
	if m, _ := f.mem.Load64(f.managedBM() + w*8); m&bit == 0 {
		return 0, NotRAM
	}
	if v, _ := f.mem.Load64(f.freeBM() + w*8); v&bit != 0 {
		return 0, DoubleFree
	}
	return idx, OK
}

// IsAllocated reports whether pa is a frame this allocator manages and has
// handed out (and not had back).
//
//go:nosplit
func (f *Frames) IsAllocated(pa uint64) bool {
	_, st := f.check(pa)
	return st == OK
}

// FreeCount returns the number of free frames.
//
//go:nosplit
func (f *Frames) FreeCount() uint64 {
	if !f.ready() {
		return 0
	}
	v, _ := f.mem.Load64(f.meta + hdrFree)
	return v
}

// TotalCount returns the number of frames the allocator manages (free or
// not), excluding reserved frames, frame 0 and its own metadata.
//
//go:nosplit
func (f *Frames) TotalCount() uint64 {
	if !f.ready() {
		return 0
	}
	return f.total
}

// Bitmap returns the physical range of the allocator's metadata block
// (header and bitmaps); it is never handed out.
//
//go:nosplit
func (f *Frames) Bitmap() Range {
	if !f.ready() {
		return Range{}
	}
	return Range{Base: f.meta, End: f.meta + f.size}
}
