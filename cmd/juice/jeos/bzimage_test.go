package jeos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the XZ fixtures in testdata with the xz command")

// fakeBzImage wraps payload in a bzImage: the boot sector and
// setupSects setup sectors (0 meaning 4), then the protected-mode code,
// which has pad bytes before the payload and some after it.
func fakeBzImage(payload []byte, setupSects uint8, pad int) []byte {
	n := int(setupSects)
	if n == 0 {
		n = 4
	}
	setup := make([]byte, (n+1)*512)
	setup[offSetupSects] = setupSects
	binary.LittleEndian.PutUint16(setup[offBootFlag:], 0xaa55)
	copy(setup[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(setup[offVersion:], 0x020f)
	binary.LittleEndian.PutUint32(setup[offPayloadOffset:], uint32(pad))
	binary.LittleEndian.PutUint32(setup[offPayloadLength:], uint32(len(payload)))
	b := append(setup, bytes.Repeat([]byte{0x90}, pad)...)
	b = append(b, payload...)
	return append(b, bytes.Repeat([]byte{0xcc}, 64)...)
}

// withSizeTrailer appends Linux's 4-byte uncompressed-size trailer.
func withSizeTrailer(xz []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte(nil), xz...), uint32(size))
}

// xzCompress runs the xz command as Linux's build does (x86 BCJ, LZMA2,
// CRC32 check).
func xzCompress(t *testing.T, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("no xz command")
	}
	cmd := exec.Command("xz", "--format=xz", "--check=crc32", "--x86", "--lzma2=preset=6,dict=1MiB", "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	return out
}

// fixture returns testdata/name, rewriting it from data with xz under
// -update.
func fixture(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, xzCompress(t, data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update rewrites it)", err, t.Name())
	}
	return b
}

const testPVHEntry = 0x1000850

// testVmlinux is the ELF inside testdata/fake-vmlinux.xz.
func testVmlinux() []byte {
	return fakeVmlinux(xenEntryNote(testPVHEntry), 16<<10)
}

func TestSetupHeader(t *testing.T) {
	b := fakeBzImage([]byte("PAYLOAD"), 39, 716)
	h, err := parseSetupHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.setupSects != 39 || h.version != 0x020f || h.payloadOffset != 716 || h.payloadLength != 7 {
		t.Errorf("header = %+v", h)
	}
	if got := h.protectedModeOffset(); got != 40*512 {
		t.Errorf("protected-mode code at %#x, want %#x", got, 40*512)
	}
	// setup_sects 0 means 4.
	h, err = parseSetupHeader(fakeBzImage([]byte("P"), 0, 0))
	if err != nil || h.setupSects != 4 || h.protectedModeOffset() != 5*512 {
		t.Errorf("setup_sects 0: %+v, %v", h, err)
	}
}

func TestBzPayload(t *testing.T) {
	for _, c := range []struct {
		ss  uint8
		pad int
	}{{39, 716}, {0, 0}, {1, 3}, {255, 4096}} {
		want := []byte("the compressed kernel")
		got, err := bzPayload(fakeBzImage(want, c.ss, c.pad))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("setup_sects %d, offset %d: payload %q, %v; want %q", c.ss, c.pad, got, err, want)
		}
	}
}

func TestBzPayloadErrors(t *testing.T) {
	good := fakeBzImage([]byte("payload"), 2, 16)
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	put32 := func(off int, v uint32) []byte {
		return mod(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b })
	}
	cases := []struct {
		name string
		b    []byte
		want error  // errors.Is, or nil for any error
		text string // in the message
	}{
		{"empty", nil, errTruncated, ""},
		{"short header", good[:setupHeaderEnd-1], errTruncated, ""},
		{"no boot flag", mod(func(b []byte) []byte { b[offBootFlag] = 0; return b }), errNotBzImage, ""},
		{"no HdrS", mod(func(b []byte) []byte { copy(b[offHeaderMagic:], "ELF!"); return b }), errNotBzImage, ""},
		{"protocol 2.06", mod(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[offVersion:], 0x0206); return b }), errOldProtocol, "2.06"},
		{"payload past end", put32(offPayloadLength, uint32(len(good))), errTruncated, "payload"},
		{"offset past end", put32(offPayloadOffset, uint32(len(good))), errTruncated, ""},
		{"huge offset and length", mod(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[offPayloadOffset:], 0xffffffff)
			binary.LittleEndian.PutUint32(b[offPayloadLength:], 0xffffffff)
			return b
		}), errTruncated, ""},
		{"file cut in the payload", good[:len(good)-64-3], errTruncated, ""},
		{"empty payload", put32(offPayloadLength, 0), nil, "empty payload"},
	}
	for _, c := range cases {
		p, err := bzPayload(c.b)
		if err == nil {
			t.Errorf("%s: payload %q, want an error", c.name, p)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.text)
		}
		if _, err := vmlinuxFromBzImage(c.b); err == nil {
			t.Errorf("%s: vmlinuxFromBzImage succeeded", c.name)
		}
	}
}

func TestVmlinuxFromBzImage(t *testing.T) {
	want := testVmlinux()
	xz := fixture(t, "fake-vmlinux.xz", want)
	// As Linux builds it: XZ with a size trailer, setup_sects 39.
	got, err := vmlinuxFromBzImage(fakeBzImage(withSizeTrailer(xz, len(want)), 39, 716))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("vmlinux differs: %d bytes, want %d", len(got), len(want))
	}
	entry, ok, err := pvhEntry(got)
	if err != nil || !ok || entry != testPVHEntry {
		t.Errorf("pvhEntry = %#x, %v, %v; want %#x", entry, ok, err, testPVHEntry)
	}
	// Without the trailer (the stream ends in "YZ") it works too.
	if got, err := vmlinuxFromBzImage(fakeBzImage(xz, 4, 0)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("without a size trailer: %d bytes, %v", len(got), err)
	}
}

func TestVmlinuxErrors(t *testing.T) {
	want := testVmlinux()
	xz := fixture(t, "fake-vmlinux.xz", want)
	corrupt := append([]byte(nil), xz...)
	corrupt[len(corrupt)/2] ^= 0x55
	notELF := fixture(t, "not-elf.xz", []byte(strings.Repeat("not an ELF file\n", 100)))
	cases := []struct {
		name    string
		payload []byte
		want    error
		text    string
	}{
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, errUnsupportedPayload, "gzip"},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, errUnsupportedPayload, "zstd"},
		{"garbage", []byte("hello, world"), errUnsupportedPayload, "unknown"},
		{"wrong size trailer", withSizeTrailer(xz, len(want)+1), nil, "size trailer"},
		{"corrupt stream", withSizeTrailer(corrupt, len(want)), nil, "xz"},
		{"cut stream", xz[:len(xz)/2], nil, "xz"},
		{"not an ELF", withSizeTrailer(notELF, 1600), nil, "not an ELF"},
	}
	for _, c := range cases {
		v, err := vmlinuxFromBzImage(fakeBzImage(c.payload, 4, 100))
		if err == nil {
			t.Errorf("%s: got %d bytes, want an error", c.name, len(v))
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.text)
		}
	}
}

// TestVmlinuxRandomBCJ round-trips random x86-like data through the xz
// command's BCJ filter (skipped without xz).
func TestVmlinuxRandomBCJ(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5; i++ {
		data := make([]byte, 1000+r.Intn(200000))
		r.Read(data)
		for j := range data {
			if r.Intn(8) == 0 {
				data[j] = 0xe8 // calls with random targets
			} else if r.Intn(4) == 0 {
				data[j] = 0
			}
		}
		copy(data, "\x7fELF")
		got, err := vmlinuxFromBzImage(fakeBzImage(withSizeTrailer(xzCompress(t, data), len(data)), uint8(r.Intn(64)), r.Intn(5000)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round %d (%d bytes): %d bytes back, %v", i, len(data), len(got), err)
		}
	}
}

func TestCompression(t *testing.T) {
	for in, want := range map[string]string{
		"\xfd7zXZ\x00rest": "xz", "\x1f\x8b\x08": "gzip", "\x28\xb5\x2f\xfd": "zstd",
		"BZh9": "bzip2", "\x02\x21\x4c\x18": "lz4", "\x7fELF": "elf", "": "unknown", "\xfd7zXZ": "unknown",
	} {
		if got := compression([]byte(in)); got != want {
			t.Errorf("compression(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindNote(t *testing.T) {
	e4 := binary.LittleEndian.AppendUint32(nil, 0x1000850)
	notes := append(fakeNote("GNU", 3, []byte("build-id-bytes!")), fakeNote("Xen", 5, []byte("linux\x00"))...)
	notes = append(notes, fakeNote("Xen", xenElfnotePhys32Entry, e4)...)
	le := binary.LittleEndian
	if d, ok := findNote(notes, le, "Xen", xenElfnotePhys32Entry); !ok || !bytes.Equal(d, e4) {
		t.Errorf("findNote = %x, %v; want %x", d, ok, e4)
	}
	if _, ok := findNote(notes, le, "Xen", 99); ok {
		t.Error("found a note type that is not there")
	}
	if _, ok := findNote(notes, le, "GNU", xenElfnotePhys32Entry); ok {
		t.Error("matched the type under the wrong name")
	}
	// Truncated notes and absurd sizes end the search without a panic.
	for n := 0; n < len(notes); n++ {
		findNote(notes[:n], le, "Xen", xenElfnotePhys32Entry)
	}
	bad := fakeNote("Xen", xenElfnotePhys32Entry, e4)
	le.PutUint32(bad[4:], 0xfffffff0)
	if _, ok := findNote(bad, le, "Xen", xenElfnotePhys32Entry); ok {
		t.Error("accepted a descriptor past the end")
	}

	// A vmlinux with a 4-byte entry note, and one with none.
	v := fakeVmlinux(fakeNote("Xen", xenElfnotePhys32Entry, e4), 100)
	if entry, ok, err := pvhEntry(v); entry != 0x1000850 || !ok || err != nil {
		t.Errorf("4-byte note: %#x, %v, %v", entry, ok, err)
	}
	v = fakeVmlinux(fakeNote("GNU", 3, []byte("id")), 100)
	if entry, ok, err := pvhEntry(v); ok || err != nil {
		t.Errorf("no Xen note: %#x, %v, %v", entry, ok, err)
	}
	if _, _, err := pvhEntry([]byte("not an elf")); err == nil {
		t.Error("pvhEntry accepted a non-ELF")
	}
}

func FuzzVmlinuxFromBzImage(f *testing.F) {
	f.Add(fakeBzImage([]byte("payload"), 2, 16))
	f.Add(fakeBzImage([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1, 0x69, 0x22, 0xde, 0x36}, 0, 0))
	if xz, err := os.ReadFile(filepath.Join("testdata", "fake-vmlinux.xz")); err == nil {
		f.Add(fakeBzImage(xz[:min(len(xz), 600)], 1, 1))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := vmlinuxFromBzImage(b)
		if err == nil && !bytes.HasPrefix(v, []byte("\x7fELF")) {
			t.Errorf("accepted a non-ELF vmlinux")
		}
	})
}
