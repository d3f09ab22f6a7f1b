package loader

import (
	"bytes"
	"encoding/binary"
)

// tSeg is a program header for the test ELF writer: its data is placed in
// the file after the headers (at 0x1000 and up, 16-aligned).
type tSeg struct {
	typ          uint32
	vaddr, paddr uint64
	data         []byte
	memsz        uint64
	align        uint64
}

// buildELF writes a little-endian x86 executable of class 32 or 64.
func buildELF(class int, entry uint64, segs []tSeg) []byte {
	le := binary.LittleEndian
	ehsize, phsize := 52, 32
	if class == 64 {
		ehsize, phsize = 64, 56
	}
	off := 0x1000
	offs := make([]int, len(segs))
	for i, s := range segs {
		offs[i] = off
		off += (len(s.data) + 15) &^ 15
	}
	b := make([]byte, off)
	copy(b, "\x7fELF")
	b[5], b[6] = 1, 1
	le.PutUint16(b[16:], 2)
	if class == 32 {
		b[4] = 1
		le.PutUint16(b[18:], 3)
		le.PutUint32(b[20:], 1)
		le.PutUint32(b[24:], uint32(entry))
		le.PutUint32(b[28:], uint32(ehsize))
		le.PutUint16(b[40:], uint16(ehsize))
		le.PutUint16(b[42:], uint16(phsize))
		le.PutUint16(b[44:], uint16(len(segs)))
	} else {
		b[4] = 2
		le.PutUint16(b[18:], 62)
		le.PutUint32(b[20:], 1)
		le.PutUint64(b[24:], entry)
		le.PutUint64(b[32:], uint64(ehsize))
		le.PutUint16(b[52:], uint16(ehsize))
		le.PutUint16(b[54:], uint16(phsize))
		le.PutUint16(b[56:], uint16(len(segs)))
	}
	for i, s := range segs {
		p := b[ehsize+i*phsize:]
		memsz := s.memsz
		if memsz == 0 {
			memsz = uint64(len(s.data))
		}
		if class == 32 {
			le.PutUint32(p[0:], s.typ)
			le.PutUint32(p[4:], uint32(offs[i]))
			le.PutUint32(p[8:], uint32(s.vaddr))
			le.PutUint32(p[12:], uint32(s.paddr))
			le.PutUint32(p[16:], uint32(len(s.data)))
			le.PutUint32(p[20:], uint32(memsz))
			le.PutUint32(p[28:], uint32(s.align))
		} else {
			le.PutUint32(p[0:], s.typ)
			le.PutUint64(p[8:], uint64(offs[i]))
			le.PutUint64(p[16:], s.vaddr)
			le.PutUint64(p[24:], s.paddr)
			le.PutUint64(p[32:], uint64(len(s.data)))
			le.PutUint64(p[40:], memsz)
			le.PutUint64(p[48:], s.align)
		}
		copy(b[offs[i]:], s.data)
	}
	return b
}

// mbHeaderBytes returns a multiboot v1 header with the given flags and,
// when flags has bit 16, the address fields.
func mbHeaderBytes(flags uint32, addrs ...uint32) []byte {
	var w bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&w, le, uint32(0x1BADB002))
	binary.Write(&w, le, flags)
	binary.Write(&w, le, -(uint32(0x1BADB002) + flags))
	for _, a := range addrs {
		binary.Write(&w, le, a)
	}
	return w.Bytes()
}

// xenNoteBytes returns an ELF note "Xen" of type 18 with a 4- or 8-byte
// value, preceded by an unrelated "GNU" note to skip.
func xenNoteBytes(entry uint64, size int) []byte {
	var w bytes.Buffer
	le := binary.LittleEndian
	// GNU build-id style note: namesz 4, descsz 5 (padded to 8), type 3.
	binary.Write(&w, le, []uint32{4, 5, 3})
	w.WriteString("GNU\x00")
	w.Write([]byte{1, 2, 3, 4, 5, 0, 0, 0})
	binary.Write(&w, le, []uint32{4, uint32(size), 18})
	w.WriteString("Xen\x00")
	if size == 4 {
		binary.Write(&w, le, uint32(entry))
	} else {
		binary.Write(&w, le, entry)
	}
	return w.Bytes()
}

// pattern returns n bytes of a recognisable pattern seeded by seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// cstr reads a NUL-terminated string at gpa from ram.
func cstr(ram []byte, gpa uint64) string {
	if gpa >= uint64(len(ram)) {
		return "<out of RAM>"
	}
	s := ram[gpa:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return string(s[:i])
	}
	return "<unterminated>"
}
