package image

import "fmt"

// ELF note layout (ELF64 uses 4-byte words for the note header).
const (
	noteHeaderSize = 12

	// xenNoteName is the owner of Xen ELF notes.
	xenNoteName = "Xen"
	// XenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY: the note whose
	// 4-byte descriptor is the 32-bit physical PVH entry point.
	XenElfnotePhys32Entry = 18
	// pvhNoteSize is the size of the PVH note: header, "Xen\0", 4-byte desc.
	pvhNoteSize = noteHeaderSize + 4 + 4

	// PadNoteName and PadNoteType identify the note that fills the rest of
	// the PT_NOTE after the PVH note, so that every note parses.
	PadNoteName = "juice"
	// PadNoteType is the type of the padding note (its descriptor is zero).
	PadNoteType = 0x70616420 // "pad " read as a big-endian word
)

// note is one parsed ELF note.
type note struct {
	off  int // offset within the note segment
	name string
	typ  uint32
	desc []byte
}

// parseNotes parses a PT_NOTE segment whose notes are 4-byte aligned. The
// notes must fill data exactly, and every non-empty name must be
// NUL-terminated.
func parseNotes(data []byte) ([]note, error) {
	var notes []note
	pos := uint64(0)
	n := uint64(len(data))
	for pos < n {
		if n-pos < noteHeaderSize {
			return nil, fmt.Errorf("note at offset %d: %d bytes left, need a %d-byte header", pos, n-pos, noteHeaderSize)
		}
		namesz := uint64(le.Uint32(data[pos:]))
		descsz := uint64(le.Uint32(data[pos+4:]))
		typ := le.Uint32(data[pos+8:])
		nameAl, _ := alignUp(namesz, noteAlign) // cannot overflow: namesz < 2^32
		descAl, _ := alignUp(descsz, noteAlign)
		body := pos + noteHeaderSize
		if nameAl > n-body || descAl > n-body-nameAl {
			return nil, fmt.Errorf("note at offset %d: namesz %d descsz %d extend past the segment end (%d bytes)", pos, namesz, descsz, n)
		}
		var name string
		if namesz > 0 {
			raw := data[body : body+namesz]
			if raw[namesz-1] != 0 {
				return nil, fmt.Errorf("note at offset %d: name is not NUL-terminated", pos)
			}
			i := 0
			for raw[i] != 0 {
				i++
			}
			name = string(raw[:i])
		}
		d := body + nameAl
		notes = append(notes, note{off: int(pos), name: name, typ: typ, desc: data[d : d+descsz]})
		pos = d + descAl
	}
	return notes, nil
}

// putNote writes one note at b[0:] and returns its size. b must be large
// enough; callers check sizes first.
func putNote(b []byte, name string, typ uint32, descsz uint32) uint64 {
	namesz := uint64(0)
	if name != "" {
		namesz = uint64(len(name)) + 1
	}
	nameAl, _ := alignUp(namesz, noteAlign)
	le.PutUint32(b[0:], uint32(namesz))
	le.PutUint32(b[4:], descsz)
	le.PutUint32(b[8:], typ)
	copy(b[noteHeaderSize:], name)
	return noteHeaderSize + nameAl + uint64(descsz)
}

// writePVHNote fills span (the whole PT_NOTE) with the Xen PHYS32_ENTRY
// note followed by a zero padding note. len(span) must be pvhNoteSize, or
// pvhNoteSize plus a multiple of 4 that is at least noteHeaderSize.
func writePVHNote(span []byte, entry uint32) {
	clear(span)
	n := putNote(span, xenNoteName, XenElfnotePhys32Entry, 4)
	le.PutUint32(span[n-4:], entry)
	rest := uint64(len(span)) - n
	if rest == 0 {
		return
	}
	padName := PadNoteName
	padHdr, _ := alignUp(uint64(len(padName))+1, noteAlign)
	padHdr += noteHeaderSize
	if rest < padHdr {
		padName = "" // only room for an anonymous note
		padHdr = noteHeaderSize
	}
	putNote(span[n:], padName, PadNoteType, uint32(rest-padHdr))
}
