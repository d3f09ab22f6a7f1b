package loader

import (
	"fmt"
	"sort"
)

// span is a guest-physical range [lo, hi).
type span struct{ lo, hi uint64 }

// arena tracks which guest-physical ranges are taken, so that the boot
// information and modules never overlap the kernel or each other.
type arena struct {
	limit uint64 // first address past usable RAM for boot data (≤ 4 GiB)
	used  []span
}

// newArena returns an arena over guest RAM of size memSize with the real-
// mode page 0 and the legacy hole [LowMemEnd, HighMemStart) already taken.
// Everything it hands out is below 4 GiB: the boot protocols here start a
// 32-bit vCPU and pass 32-bit addresses.
func newArena(memSize uint64) *arena {
	a := &arena{limit: min(memSize, 1<<32)}
	a.used = append(a.used, span{0, pageSize}, span{LowMemEnd, HighMemStart})
	return a
}

// overlaps reports whether [lo, hi) intersects a taken range.
func (a *arena) overlaps(lo, hi uint64) bool {
	for _, u := range a.used {
		if lo < u.hi && u.lo < hi {
			return true
		}
	}
	return false
}

// take marks [lo, hi) as used.
func (a *arena) take(lo, hi uint64) { a.used = append(a.used, span{lo, hi}) }

// place finds the lowest address ≥ floor, aligned to align (a power of
// two), where n bytes fit below the limit without overlapping anything
// taken, takes it and returns it. A zero-length object still gets one byte
// so that its address is inside RAM.
func (a *arena) place(n, align, floor uint64, what string) (uint64, error) {
	if n == 0 {
		n = 1
	}
	if n > a.limit {
		return 0, fmt.Errorf("%s: %d bytes do not fit in %#x bytes of guest RAM", what, n, a.limit)
	}
	cands := make([]uint64, 0, len(a.used)+1)
	if c, ok := alignUp(floor, align); ok {
		cands = append(cands, c)
	}
	for _, u := range a.used {
		if c, ok := alignUp(u.hi, align); ok && c >= floor {
			cands = append(cands, c)
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
	for _, c := range cands {
		if c > a.limit-n {
			break
		}
		if !a.overlaps(c, c+n) {
			a.take(c, c+n)
			return c, nil
		}
	}
	return 0, fmt.Errorf("%s: no free room for %d bytes in guest RAM at or above %#x", what, n, floor)
}

// alignUp rounds v up to a multiple of align (a power of two).
func alignUp(v, align uint64) (uint64, bool) {
	r := (v + align - 1) &^ (align - 1)
	return r, r >= v
}
