package bootinfo

import "juice/mm/phys"

// copyCString copies the NUL-terminated string at physical address pa into
// dst, scanning at most limit bytes for the NUL. used is the number of bytes
// the string occupies including its NUL (what must stay reserved). truncated
// is set when the string did not fit dst or had no NUL within limit. ok is
// false when the window ends before either a NUL or limit is reached.
//
//go:nosplit
func copyCString(m *phys.Mem, pa uint64, dst []byte, limit uint64) (n int, used uint64, truncated, ok bool) {
	size := m.Size()
	if pa >= size {
		return 0, 0, false, false
	}
	scan := size - pa
	short := false // the window, not limit, bounds the scan
	if scan >= limit {
		scan = limit
	} else {
		short = true
	}
	b, got := m.Bytes(pa, scan)
	if !got {
		return 0, 0, false, false
	}
	for k := 0; k < len(b); k++ {
		c := b[k]
		if c == 0 {
			return n, uint64(k) + 1, truncated, true
		}
		if uint(n) < uint(len(dst)) {
			dst[n] = c
			n++
		} else {
			truncated = true
		}
	}
	if short {
		return n, uint64(len(b)), truncated, false
	}
	return n, uint64(len(b)), true, true
}

// copyBounded copies the string stored in the n bytes at pa into dst. The
// string ends at its first NUL or at the end of the n bytes, whichever comes
// first. truncated is set when it did not fit dst. ok is false when the n
// bytes are not inside the window.
//
//go:nosplit
func copyBounded(m *phys.Mem, pa, n uint64, dst []byte) (copied int, truncated, ok bool) {
	b, got := m.Bytes(pa, n)
	if !got {
		return 0, false, false
	}
	for k := 0; k < len(b); k++ {
		c := b[k]
		if c == 0 {
			break
		}
		if copied < len(dst) {
			dst[copied] = c
			copied++
		} else {
			truncated = true
			break
		}
	}
	return copied, truncated, true
}
