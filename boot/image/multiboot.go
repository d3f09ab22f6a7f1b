package image

import "fmt"

// Multiboot2 header constants (Multiboot2 specification §3.1).
const (
	// MB2HeaderMagic is the multiboot2 header magic.
	MB2HeaderMagic = 0xe85250d6
	// MB2ArchI386 requests entry in 32-bit protected mode.
	MB2ArchI386 = 0
	// MB2SearchLimit: the header must lie entirely in the first 32 KiB.
	MB2SearchLimit = 32768
	// MB2Align: the header must be 8-byte aligned.
	MB2Align = 8

	mb2TagEnd         = 0
	mb2TagInfoRequest = 1
	mb2TagOptional    = 1 // flags bit 0

	mb2HeaderSize = 16
	mb2TagHdrSize = 8
)

// MB2RequestedTags are the multiboot2 information tags the header asks
// for (optionally): command line, modules, memory map, ACPI old and new
// RSDP, EFI memory map.
var MB2RequestedTags = [mb2NumRequests]uint32{1, 3, 6, 14, 15, 17}

const mb2NumRequests = 6

// Multiboot (v1) header constants (Multiboot specification §3.1).
const (
	// MB1HeaderMagic is the multiboot v1 header magic.
	MB1HeaderMagic = 0x1BADB002
	// MB1FlagAOutKludge (flags bit 16) says the address fields are valid,
	// so the loader loads the file as a flat binary.
	MB1FlagAOutKludge = 1 << 16
	// MB1SearchLimit: the header must lie entirely in the first 8 KiB.
	MB1SearchLimit = 8192
	// MB1Align: the header must be 4-byte aligned.
	MB1Align = 4

	mb1HeaderSize = 32
)

// mb2HeaderLen is the size of the header Patch writes.
const mb2HeaderLen = mb2HeaderSize + mb2TagHdrSize + 4*mb2NumRequests + mb2TagHdrSize

// buildMB2Header returns the multiboot2 header: magic fields, an optional
// information request tag, and the end tag. No address or entry tag:
// GRUB then loads the ELF by its program headers and enters e_entry in
// 32-bit protected mode.
func buildMB2Header() []byte {
	b := make([]byte, mb2HeaderLen)
	le.PutUint32(b[0:], MB2HeaderMagic)
	le.PutUint32(b[4:], MB2ArchI386)
	le.PutUint32(b[8:], mb2HeaderLen)
	sum := uint32(MB2HeaderMagic) + MB2ArchI386 + uint32(mb2HeaderLen)
	le.PutUint32(b[12:], -sum)
	t := b[mb2HeaderSize:]
	reqSize := mb2TagHdrSize + 4*len(MB2RequestedTags) // 8-aligned: 6 words
	le.PutUint16(t[0:], mb2TagInfoRequest)
	le.PutUint16(t[2:], mb2TagOptional)
	le.PutUint32(t[4:], uint32(reqSize))
	for i, v := range MB2RequestedTags {
		le.PutUint32(t[8+4*i:], v)
	}
	t = t[reqSize:]
	le.PutUint16(t[0:], mb2TagEnd)
	le.PutUint16(t[2:], 0)
	le.PutUint32(t[4:], mb2TagHdrSize)
	return b
}

// mb1Fields are the multiboot v1 a.out-kludge address fields.
type mb1Fields struct {
	Flags       uint32
	HeaderAddr  uint32
	LoadAddr    uint32
	LoadEndAddr uint32
	BSSEndAddr  uint32
	EntryAddr   uint32
}

func buildMB1Header(f mb1Fields) []byte {
	b := make([]byte, mb1HeaderSize)
	le.PutUint32(b[0:], MB1HeaderMagic)
	le.PutUint32(b[4:], f.Flags)
	le.PutUint32(b[8:], -(MB1HeaderMagic + f.Flags))
	le.PutUint32(b[12:], f.HeaderAddr)
	le.PutUint32(b[16:], f.LoadAddr)
	le.PutUint32(b[20:], f.LoadEndAddr)
	le.PutUint32(b[24:], f.BSSEndAddr)
	le.PutUint32(b[28:], f.EntryAddr)
	return b
}

// findMB2 returns the offsets of every 8-aligned multiboot2 magic with a
// valid checksum whose 16 magic bytes lie in the first 32 KiB, as GRUB
// scans for them.
func findMB2(img []byte) []int {
	limit := min(len(img), MB2SearchLimit)
	var offs []int
	for off := 0; off+mb2HeaderSize <= limit; off += MB2Align {
		if le.Uint32(img[off:]) != MB2HeaderMagic {
			continue
		}
		if le.Uint32(img[off:])+le.Uint32(img[off+4:])+le.Uint32(img[off+8:])+le.Uint32(img[off+12:]) == 0 {
			offs = append(offs, off)
		}
	}
	return offs
}

// findMB1 returns the offsets of every 4-aligned multiboot v1 magic with
// a valid checksum in the first 8 KiB, as QEMU and GRUB scan for them.
func findMB1(img []byte) []int {
	limit := min(len(img), MB1SearchLimit)
	var offs []int
	for off := 0; off+12 <= limit; off += MB1Align {
		if le.Uint32(img[off:]) != MB1HeaderMagic {
			continue
		}
		if le.Uint32(img[off:])+le.Uint32(img[off+4:])+le.Uint32(img[off+8:]) == 0 {
			offs = append(offs, off)
		}
	}
	return offs
}

// mb2Parsed is a parsed multiboot2 header.
type mb2Parsed struct {
	length   uint32
	arch     uint32
	requests []uint32
	optional bool
	tags     []uint16 // tag types in order, end tag included
}

// parseMB2 parses the multiboot2 header at img[off:]; it checks the
// header length, the 32 KiB window and the tag structure.
func parseMB2(img []byte, off int) (mb2Parsed, error) {
	var p mb2Parsed
	if off%MB2Align != 0 || off < 0 || off+mb2HeaderSize > len(img) {
		return p, fmt.Errorf("header at %#x is misaligned or truncated", off)
	}
	p.arch = le.Uint32(img[off+4:])
	p.length = le.Uint32(img[off+8:])
	end := uint64(off) + uint64(p.length)
	if p.length < mb2HeaderSize+mb2TagHdrSize || end > uint64(len(img)) || end > MB2SearchLimit {
		return p, fmt.Errorf("header_length %d at %#x does not fit the first %d bytes of the file", p.length, off, MB2SearchLimit)
	}
	pos := uint64(off) + mb2HeaderSize
	for {
		if pos+mb2TagHdrSize > end {
			return p, fmt.Errorf("tag at %#x runs past header_length (no end tag)", pos)
		}
		typ := le.Uint16(img[pos:])
		flags := le.Uint16(img[pos+2:])
		size := uint64(le.Uint32(img[pos+4:]))
		if size < mb2TagHdrSize || size > end-pos {
			return p, fmt.Errorf("tag type %d at %#x has size %d, outside the header", typ, pos, size)
		}
		p.tags = append(p.tags, typ)
		switch typ {
		case mb2TagEnd:
			if size != mb2TagHdrSize {
				return p, fmt.Errorf("end tag at %#x has size %d, expected %d", pos, size, mb2TagHdrSize)
			}
			if pos+size != end {
				return p, fmt.Errorf("end tag at %#x ends at %#x but header_length says %#x", pos, pos+size, end)
			}
			return p, nil
		case mb2TagInfoRequest:
			if (size-mb2TagHdrSize)%4 != 0 {
				return p, fmt.Errorf("information request tag at %#x has size %d, not 8 + 4n", pos, size)
			}
			p.optional = flags&mb2TagOptional != 0
			for q := pos + mb2TagHdrSize; q < pos+size; q += 4 {
				p.requests = append(p.requests, le.Uint32(img[q:]))
			}
		}
		next, ok := alignUp(pos+size, MB2Align)
		if !ok {
			return p, fmt.Errorf("tag at %#x overflows", pos)
		}
		pos = next
	}
}
