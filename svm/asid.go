package svm

// maxASIDs bounds the allocator's bitmaps (64 Ki ASIDs = 16 KiB of maps);
// CPUs report up to 32768.
const maxASIDs = 1 << 16

// ASIDs allocates guest ASIDs 1..n-1 (ASID 0 is the host's). The TLB tags
// guest translations with the ASID, so an ASID that an earlier vCPU used
// may still have that vCPU's translations cached: Alloc says so, and the
// new owner must flush it (TLBControl) before its first run. ASIDs is not
// safe for concurrent use; the Backend serialises it.
type ASIDs struct {
	n    uint32
	free []uint64 // bit set: free
	used []uint64 // bit set: handed out at least once (may have TLB entries)
	hint uint32   // no free ASID below this word
}

// NewASIDs returns an allocator for a CPU with n ASIDs (Caps.NASID),
// handing out 1..n-1; n is capped at 65536. With n < 2 nothing can be
// allocated.
func NewASIDs(n uint32) *ASIDs {
	if n > maxASIDs {
		n = maxASIDs
	}
	words := (n + 63) / 64
	a := &ASIDs{n: n, free: make([]uint64, words), used: make([]uint64, words)}
	for i := uint32(1); i < n; i++ {
		a.free[i/64] |= 1 << (i % 64)
	}
	return a
}

// Alloc returns a free ASID. reused is true when the ASID was handed out
// before, so stale TLB entries may carry it. ok is false when all are in
// use.
func (a *ASIDs) Alloc() (asid uint32, reused, ok bool) {
	for w := a.hint; w < uint32(len(a.free)); w++ {
		f := a.free[w]
		if f == 0 {
			a.hint = w + 1
			continue
		}
		b := uint32(0)
		for f&(1<<b) == 0 {
			b++
		}
		asid = w*64 + b
		a.free[w] &^= 1 << b
		reused = a.used[w]&(1<<b) != 0
		a.used[w] |= 1 << b
		return asid, reused, true
	}
	return 0, false, false
}

// Free returns asid to the pool; ASID 0, ASIDs out of range and ASIDs
// already free are ignored (false).
func (a *ASIDs) Free(asid uint32) bool {
	if asid == 0 || asid >= a.n {
		return false
	}
	w, b := asid/64, asid%64
	if a.free[w]&(1<<b) != 0 {
		return false
	}
	a.free[w] |= 1 << b
	if w < a.hint {
		a.hint = w
	}
	return true
}

// InUse returns the number of ASIDs handed out.
func (a *ASIDs) InUse() uint32 {
	n := uint32(0)
	for i := uint32(1); i < a.n; i++ {
		if a.free[i/64]&(1<<(i%64)) == 0 {
			n++
		}
	}
	return n
}

// FlushControl is the TLB_CONTROL value that flushes one guest's ASID: a
// flush of that ASID alone when the CPU has flush-by-ASID, else of the
// whole TLB (the only flush every SVM CPU supports).
func FlushControl(c Caps) uint8 {
	if c.FlushByASID {
		return TLBControlFlushASID
	}
	return TLBControlFlushAll
}
