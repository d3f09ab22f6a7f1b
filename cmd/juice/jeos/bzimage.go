package jeos

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/therootcompany/xz"
)

// Offsets in a bzImage's real-mode header (Linux boot protocol,
// Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1 // u8: 512-byte setup sectors after the boot sector (0 means 4)
	offBootFlag      = 0x1fe // u16: 0xAA55
	offHeaderMagic   = 0x202 // u32: "HdrS"
	offVersion       = 0x206 // u16: boot protocol version
	offPayloadOffset = 0x248 // u32: payload start, from the protected-mode code (2.08+)
	offPayloadLength = 0x24c // u32: payload length (2.08+)
	setupHeaderEnd   = 0x250 // the header must reach at least here
)

// setupHeader is what the builder needs from a bzImage's header.
type setupHeader struct {
	setupSects    int    // setup sectors (0 in the file is read as 4)
	version       uint16 // boot protocol, e.g. 0x020f for 2.15
	payloadOffset uint32 // payload offset from the protected-mode code
	payloadLength uint32 // payload length in bytes
}

// protectedModeOffset is where the protected-mode code (which the payload
// offset is relative to) starts in the file.
func (h setupHeader) protectedModeOffset() uint64 {
	return uint64(h.setupSects+1) * 512
}

// Errors of the bzImage parser.
var (
	errNotBzImage  = errors.New("not a bzImage (no HdrS header)")
	errOldProtocol = errors.New("boot protocol older than 2.08 (no payload fields)")
	errTruncated   = errors.New("truncated")
)

// parseSetupHeader reads a bzImage's header.
func parseSetupHeader(b []byte) (setupHeader, error) {
	if len(b) < setupHeaderEnd {
		return setupHeader{}, fmt.Errorf("bzImage header: %w (%d bytes)", errTruncated, len(b))
	}
	le := binary.LittleEndian
	if le.Uint16(b[offBootFlag:]) != 0xaa55 || string(b[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return setupHeader{}, errNotBzImage
	}
	h := setupHeader{
		setupSects:    int(b[offSetupSects]),
		version:       le.Uint16(b[offVersion:]),
		payloadOffset: le.Uint32(b[offPayloadOffset:]),
		payloadLength: le.Uint32(b[offPayloadLength:]),
	}
	if h.setupSects == 0 {
		h.setupSects = 4
	}
	if h.version < 0x0208 {
		return setupHeader{}, fmt.Errorf("%w: version %d.%02d", errOldProtocol, h.version>>8, h.version&0xff)
	}
	return h, nil
}

// bzPayload returns the compressed kernel inside a bzImage: payload_length
// bytes at (setup_sects+1)*512 + payload_offset.
func bzPayload(b []byte) ([]byte, error) {
	h, err := parseSetupHeader(b)
	if err != nil {
		return nil, err
	}
	start := h.protectedModeOffset() + uint64(h.payloadOffset)
	end := start + uint64(h.payloadLength)
	if h.payloadLength == 0 {
		return nil, errors.New("bzImage: empty payload")
	}
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("bzImage payload %#x-%#x: %w (file is %#x bytes)", start, end, errTruncated, len(b))
	}
	return b[start:end], nil
}

// compression names the format of a kernel payload from its magic.
func compression(p []byte) string {
	for _, m := range []struct {
		name  string
		magic []byte
	}{
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}},
		{"gzip", []byte{0x1f, 0x8b}},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}},
		{"bzip2", []byte("BZh")},
		{"lzma", []byte{0x5d, 0x00, 0x00}},
		{"lzo", []byte{0x89, 'L', 'Z', 'O'}},
		{"elf", []byte("\x7fELF")},
	} {
		if bytes.HasPrefix(p, m.magic) {
			return m.name
		}
	}
	return "unknown"
}

// errUnsupportedPayload marks a bzImage whose payload is not XZ: the
// builder then makes no vmlinux.
var errUnsupportedPayload = errors.New("unsupported payload compression")

// vmlinuxFromBzImage decompresses a bzImage's XZ payload into the vmlinux
// ELF (with its x86 BCJ filter undone). Linux appends the uncompressed size
// as 4 little-endian bytes after the XZ stream; when present it must match.
func vmlinuxFromBzImage(b []byte) ([]byte, error) {
	p, err := bzPayload(b)
	if err != nil {
		return nil, err
	}
	if c := compression(p); c != "xz" {
		return nil, fmt.Errorf("%w: %s", errUnsupportedPayload, c)
	}
	r, err := xz.NewReader(bytes.NewReader(p), 0)
	if err != nil {
		return nil, fmt.Errorf("xz payload: %w", err)
	}
	r.Multistream(false)
	var out bytes.Buffer
	if n := binary.LittleEndian.Uint32(p[len(p)-4:]); n < 1<<30 {
		out.Grow(int(n)) // a hint only: the trailer, or garbage
	}
	if _, err := io.Copy(&out, r); err != nil {
		return nil, fmt.Errorf("xz payload: %w", err)
	}
	v := out.Bytes()
	// An XZ stream ends in the footer magic "YZ"; anything else at the
	// end is Linux's size trailer.
	if !bytes.HasSuffix(p, []byte("YZ")) {
		if want := binary.LittleEndian.Uint32(p[len(p)-4:]); uint64(want) != uint64(len(v)) {
			return nil, fmt.Errorf("xz payload: size trailer says %d bytes, decompressed %d", want, len(v))
		}
	}
	if !bytes.HasPrefix(v, []byte("\x7fELF")) {
		return nil, errors.New("decompressed payload is not an ELF file")
	}
	return v, nil
}

// Xen ELF note that carries the PVH entry point (xen/include/public/elfnote.h).
const xenElfnotePhys32Entry = 18

// pvhEntry returns the 32-bit PVH entry point of a vmlinux from its
// XEN_ELFNOTE_PHYS32_ENTRY note; ok is false when the kernel has none.
func pvhEntry(vmlinux []byte) (entry uint64, ok bool, err error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return 0, false, err
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return 0, false, fmt.Errorf("PT_NOTE: %w", err)
		}
		if e, ok := findNote(data, f.ByteOrder, "Xen", xenElfnotePhys32Entry); ok {
			switch len(e) {
			case 4:
				return uint64(f.ByteOrder.Uint32(e)), true, nil
			case 8:
				return f.ByteOrder.Uint64(e), true, nil
			}
			return 0, false, fmt.Errorf("Xen PHYS32_ENTRY note has %d bytes", len(e))
		}
	}
	return 0, false, nil
}

// findNote returns the descriptor of the first ELF note with this name and
// type in a PT_NOTE segment's data (4-byte aligned fields).
func findNote(data []byte, bo binary.ByteOrder, name string, typ uint32) ([]byte, bool) {
	align := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for off := uint64(0); off+12 <= uint64(len(data)); {
		namesz := uint64(bo.Uint32(data[off:]))
		descsz := uint64(bo.Uint32(data[off+4:]))
		t := bo.Uint32(data[off+8:])
		nameStart := off + 12
		descStart := nameStart + align(namesz)
		next := descStart + align(descsz)
		if descStart+descsz > uint64(len(data)) {
			return nil, false
		}
		n := data[nameStart : nameStart+namesz]
		n = bytes.TrimSuffix(n, []byte{0})
		if t == typ && string(n) == name {
			return data[descStart : descStart+descsz], true
		}
		off = next
	}
	return nil, false
}
