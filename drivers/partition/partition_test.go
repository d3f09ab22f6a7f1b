package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"unicode/utf16"
)

// The tests build tables byte by byte from the specifications' layouts
// (independently of the parser's constants) and read them back.

// mbrEntry writes a 16-byte MBR entry at slot i of the sector s.
func mbrEntry(s []byte, i int, boot, typ byte, start, count uint32) {
	e := s[446+16*i:]
	e[0], e[4] = boot, typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], count)
	s[510], s[511] = 0x55, 0xAA
}

func TestNone(t *testing.T) {
	disk := make([]byte, 1<<20)
	tb, err := Read(bytes.NewReader(disk), uint64(len(disk)), 512)
	if err != nil || tb.Scheme != None || len(tb.Partitions) != 0 || tb.Summary() != "no partition table" {
		t.Fatalf("blank disk: %+v, %v", tb, err)
	}
	// A boot sector with the signature but code where the table is: not
	// an MBR.
	disk[446], disk[510], disk[511] = 0xEB, 0x55, 0xAA
	if tb, err := Read(bytes.NewReader(disk), uint64(len(disk)), 512); err != nil || tb.Scheme != None {
		t.Fatalf("boot sector: %+v, %v", tb, err)
	}
	if _, err := Read(bytes.NewReader(disk), uint64(len(disk)), 1000); !errors.Is(err, ErrSectorSize) {
		t.Fatalf("block size 1000: %v", err)
	}
	if _, err := Read(bytes.NewReader(disk[:100]), 100, 512); err == nil {
		t.Fatal("a 100-byte disk read")
	}
}

func TestMBRPrimaryAndLogical(t *testing.T) {
	const sectors = 8192 // 4 MiB
	disk := make([]byte, sectors*512)
	mbrEntry(disk, 0, 0x80, 0x83, 2048, 2048) // vda1: 1 MiB at 1 MiB
	mbrEntry(disk, 2, 0, 0x05, 4096, 4096)    // vda3: extended, 2 MiB at 2 MiB
	// Chain: EBR at 4096 (logical 5 at +63, 1000 sectors), EBR at
	// 4096+2000 (logical 6 at +1, 100 sectors), end.
	ebr1 := disk[4096*512:]
	mbrEntry(ebr1, 0, 0, 0x83, 63, 1000)
	mbrEntry(ebr1, 1, 0, 0x05, 2000, 101)
	ebr2 := disk[(4096+2000)*512:]
	mbrEntry(ebr2, 0, 0, 0x82, 1, 100)
	tb, err := Read(bytes.NewReader(disk), uint64(len(disk)), 512)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Number: 1, Offset: 1 << 20, Size: 1 << 20, Type: "0x83"},
		{Number: 3, Offset: 2 << 20, Size: 2 << 20, Type: "0x05"},
		{Number: 5, Offset: (4096 + 63) * 512, Size: 1000 * 512, Type: "0x83"},
		{Number: 6, Offset: (4096 + 2001) * 512, Size: 100 * 512, Type: "0x82"},
	}
	if tb.Scheme != MBR || len(tb.Partitions) != len(want) {
		t.Fatalf("table %+v", tb)
	}
	for i, p := range want {
		if tb.Partitions[i] != p {
			t.Errorf("partition %d: %+v, want %+v", i, tb.Partitions[i], p)
		}
	}
	if p, ok := tb.Find(5); !ok || p.End() != (4096+63+1000)*512 {
		t.Errorf("Find(5) = %+v, %v", p, ok)
	}
	if _, ok := tb.Find(2); ok {
		t.Error("empty slot 2 found")
	}
	if s := tb.Summary(); s != "MBR with 4 partitions" {
		t.Errorf("summary %q", s)
	}
	if s := tb.Numbers(); s != "1, 3, 5, 6" {
		t.Errorf("numbers %q", s)
	}
}

func TestMBRBad(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(d []byte)
		want  string
	}{
		{"past the end", func(d []byte) { mbrEntry(d, 0, 0, 0x83, 2048, 8000) }, "does not lie inside"},
		{"two extended", func(d []byte) {
			mbrEntry(d, 0, 0, 0x05, 100, 100)
			mbrEntry(d, 1, 0, 0x0f, 300, 100)
		}, "two extended"},
		{"EBR without signature", func(d []byte) { mbrEntry(d, 0, 0, 0x05, 100, 100) }, "no signature"},
		{"logical outside", func(d []byte) {
			mbrEntry(d, 0, 0, 0x05, 100, 100)
			mbrEntry(d[100*512:], 0, 0, 0x83, 1, 200)
		}, "not inside its extended"},
		{"EBR loop", func(d []byte) {
			mbrEntry(d, 0, 0, 0x05, 100, 100)
			mbrEntry(d[100*512:], 0, 0, 0x83, 1, 10)
			mbrEntry(d[100*512:], 1, 0, 0x05, 0, 10) // links to itself
		}, "links to"},
	} {
		disk := make([]byte, 4096*512)
		c.build(disk)
		_, err := Read(bytes.NewReader(disk), uint64(len(disk)), 512)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A long but forward-moving chain is cut at MaxLogical.
	disk := make([]byte, 4096*512)
	mbrEntry(disk, 0, 0, 0x05, 100, 3000)
	for i := 0; i < 2000; i++ {
		e := disk[(100+i)*512:]
		mbrEntry(e, 0, 0, 0x83, 0, 0) // empty logical entry: numbers nothing
		mbrEntry(e, 1, 0, 0x05, uint32(i+1), 1)
	}
	if _, err := Read(bytes.NewReader(disk), uint64(len(disk)), 512); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("2000-link chain: %v", err)
	}
}

// gptPart is one entry for buildGPT.
type gptPart struct {
	slot        int
	typ         [16]byte
	first, last uint64
	name        string
}

// linuxFS is the Linux file system type GUID 0FC63DAF-8483-4772-8E79-3D69D8477DE4
// in its on-disk byte order.
var linuxFS = [16]byte{0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4}

// buildGPT writes a protective MBR, the primary header at LBA 1 with the
// array at LBA 2, and the backup header at the last LBA with its array
// just before it, for a disk of blocks blocks of size bs.
func buildGPT(disk []byte, bs int, parts []gptPart) {
	le := binary.LittleEndian
	blocks := uint64(len(disk) / bs)
	mbrEntry(disk, 0, 0, 0xEE, 1, uint32(min(blocks-1, 0xffffffff)))
	const n, esz = 128, 128
	arr := make([]byte, n*esz)
	for _, p := range parts {
		e := arr[(p.slot-1)*esz:]
		copy(e, p.typ[:])
		e[16] = byte(p.slot) // unique GUID
		le.PutUint64(e[32:], p.first)
		le.PutUint64(e[40:], p.last)
		for i, c := range utf16.Encode([]rune(p.name)) {
			le.PutUint16(e[56+2*i:], c)
		}
	}
	arrBlocks := uint64(len(arr) / bs)
	header := func(my, alt, arrLBA uint64) []byte {
		h := make([]byte, 92)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], 2+arrBlocks)
		le.PutUint64(h[48:], blocks-2-arrBlocks)
		h[56] = 0x42 // disk GUID
		le.PutUint64(h[72:], arrLBA)
		le.PutUint32(h[80:], n)
		le.PutUint32(h[84:], esz)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(arr))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
		return h
	}
	copy(disk[bs:], header(1, blocks-1, 2))
	copy(disk[2*bs:], arr)
	copy(disk[(blocks-1)*uint64(bs):], header(blocks-1, 1, blocks-1-arrBlocks))
	copy(disk[(blocks-1-arrBlocks)*uint64(bs):], arr)
}

func TestGPT(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		blocks := 4 << 20 / bs
		disk := make([]byte, blocks*bs)
		buildGPT(disk, bs, []gptPart{
			{slot: 1, typ: linuxFS, first: uint64(1 << 20 / bs), last: uint64(2<<20/bs - 1), name: "root"},
			{slot: 3, typ: linuxFS, first: uint64(2 << 20 / bs), last: uint64(3<<20/bs - 1), name: "données"},
		})
		tb, err := Read(bytes.NewReader(disk), uint64(len(disk)), uint32(bs))
		if err != nil {
			t.Fatalf("block %d: %v", bs, err)
		}
		want := []Partition{
			{Number: 1, Offset: 1 << 20, Size: 1 << 20, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Name: "root"},
			{Number: 3, Offset: 2 << 20, Size: 1 << 20, Type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Name: "données"},
		}
		if tb.Scheme != GPT || tb.Backup || len(tb.Partitions) != 2 || tb.Partitions[0] != want[0] || tb.Partitions[1] != want[1] {
			t.Fatalf("block %d: %+v", bs, tb)
		}
		if s := tb.Summary(); s != "GPT with 2 partitions" {
			t.Errorf("summary %q", s)
		}

		// A damaged primary header: the backup is used.
		disk[bs+56] ^= 1 // the disk GUID, inside the header's CRC'd 92 bytes
		tb, err = Read(bytes.NewReader(disk), uint64(len(disk)), uint32(bs))
		if err != nil || !tb.Backup || len(tb.Partitions) != 2 || tb.Partitions[1] != want[1] {
			t.Fatalf("block %d, primary damaged: %+v, %v", bs, tb, err)
		}
		// Both damaged: an error naming both.
		disk[len(disk)-bs+20] ^= 1
		if _, err := Read(bytes.NewReader(disk), uint64(len(disk)), uint32(bs)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "backup header") {
			t.Fatalf("block %d, both damaged: %v", bs, err)
		}
	}
}

func TestGPTBad(t *testing.T) {
	const bs = 512
	le := binary.LittleEndian
	// Each case edits the primary and backup alike (through fix, which
	// re-computes the CRCs), so the backup cannot rescue it.
	for _, c := range []struct {
		name string
		edit func(h, arr []byte)
		want string
	}{
		{"array CRC", func(h, arr []byte) { arr[0] ^= 1 }, "array fails its CRC32"},
		{"huge array", func(h, arr []byte) { le.PutUint32(h[80:], 1<<20) }, "GPT array of"},
		{"entry size", func(h, arr []byte) { le.PutUint32(h[84:], 100) }, "GPT array of"},
		{"header size", func(h, arr []byte) { le.PutUint32(h[12:], 8) }, "header size"},
		{"usable range", func(h, arr []byte) { le.PutUint64(h[48:], 1<<40) }, "usable blocks"},
		{"partition outside usable", func(h, arr []byte) { le.PutUint64(arr[40:], 1<<30) }, "outside the usable"},
		{"partition reversed", func(h, arr []byte) { le.PutUint64(arr[40:], 100) }, "outside the usable"},
	} {
		disk := make([]byte, 8192*bs)
		buildGPT(disk, bs, []gptPart{{slot: 1, typ: linuxFS, first: 2048, last: 4095}})
		for _, hdrLBA := range []int{1, 8191} {
			h := disk[hdrLBA*bs : hdrLBA*bs+92]
			arr := disk[int(le.Uint64(h[72:]))*bs:][:128*128]
			c.edit(h, arr)
			if c.name != "array CRC" {
				le.PutUint32(h[88:], crc32.ChecksumIEEE(arr))
			}
			le.PutUint32(h[16:], 0)
			le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
		}
		_, err := Read(bytes.NewReader(disk), uint64(len(disk)), bs)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A protective MBR with no GPT behind it.
	disk := make([]byte, 8192*bs)
	mbrEntry(disk, 0, 0, 0xEE, 1, 8191)
	if _, err := Read(bytes.NewReader(disk), uint64(len(disk)), bs); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no GPT header") {
		t.Errorf("protective MBR alone: %v", err)
	}
}

// FuzzRead: whatever sector 0, LBA 1 and the rest hold, Read neither
// panics nor returns a partition outside the disk.
func FuzzRead(f *testing.F) {
	d := make([]byte, 64*512)
	mbrEntry(d, 0, 0, 0x05, 8, 40)
	mbrEntry(d[8*512:], 0, 0, 0x83, 1, 4)
	mbrEntry(d[8*512:], 1, 0, 0x05, 10, 4)
	f.Add(d[:16*512])
	g := make([]byte, 64*512)
	buildGPT(g, 512, []gptPart{{slot: 2, typ: linuxFS, first: 40, last: 50}})
	f.Add(g)
	f.Fuzz(func(t *testing.T, disk []byte) {
		size := uint64(len(disk)) &^ 511
		tb, err := Read(bytes.NewReader(disk), size, 512)
		if err != nil {
			return
		}
		for _, p := range tb.Partitions {
			if p.Size == 0 || p.Offset > size || p.Size > size-p.Offset || p.Number < 1 {
				t.Fatalf("partition %+v on a %d-byte disk", p, size)
			}
		}
	})
}
