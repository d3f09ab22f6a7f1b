// Package partition reads a disk's partition table: an MBR (the classic
// PC table in sector 0, with logical partitions in an extended
// partition's chain of EBRs) or a GPT (UEFI 2.10 section 5.3: the header
// at LBA 1, or its backup at the last LBA, and the partition entry
// array, both checked by their CRC32s). Partitions are numbered as Linux
// numbers them: MBR primaries 1-4 by slot, logical partitions from 5 in
// chain order, GPT entries by their slot in the array (from 1; empty
// slots leave gaps).
//
// The disk is read through io.ReaderAt and trusted in nothing: every
// count, size and pointer is checked, the work is bounded (an EBR chain
// of at most MaxLogical links, a GPT array of at most MaxGPTArray bytes),
// and a partition that does not lie inside the disk is reported as an
// error rather than returned.
package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Limits on what a table may make the reader do.
const (
	// MaxLogical bounds the logical partitions (EBRs) followed.
	MaxLogical = 64
	// MaxGPTArray bounds the GPT partition entry array's size in bytes.
	MaxGPTArray = 1 << 20
	// MaxGPTEntries bounds the entries a GPT may declare.
	MaxGPTEntries = 1024
)

// Scheme is the kind of partition table.
type Scheme int

const (
	// None: sector 0 holds no partition table.
	None Scheme = iota
	// MBR is the PC partition table.
	MBR
	// GPT is the GUID partition table.
	GPT
)

func (s Scheme) String() string {
	switch s {
	case MBR:
		return "MBR"
	case GPT:
		return "GPT"
	}
	return "no partition table"
}

// Partition is one partition, in bytes.
type Partition struct {
	// Number is Linux's partition number (vda1 is 1).
	Number int
	// Offset and Size locate the partition on the disk, in bytes.
	Offset, Size uint64
	// Type is the MBR type byte ("0x83") or the GPT type GUID.
	Type string
	// Name is the GPT partition name (empty for MBR).
	Name string
}

// End is the first byte after the partition.
func (p Partition) End() uint64 { return p.Offset + p.Size }

// Table is a disk's partitions, in number order.
type Table struct {
	Scheme     Scheme
	Partitions []Partition
	// Backup reports that the GPT came from the backup header (the
	// primary one was damaged).
	Backup bool
}

// Find returns partition n.
func (t *Table) Find(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// Numbers lists the partition numbers, for messages ("1, 2, 5").
func (t *Table) Numbers() string {
	var b bytes.Buffer
	for i, p := range t.Partitions {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, p.Number)
	}
	return b.String()
}

// Summary describes the table in a few words: "MBR with 2 partitions".
func (t *Table) Summary() string {
	if t.Scheme == None {
		return t.Scheme.String()
	}
	s := fmt.Sprintf("%v with %d partition", t.Scheme, len(t.Partitions))
	if len(t.Partitions) != 1 {
		s += "s"
	}
	if t.Backup {
		s += " (from the backup GPT header: the primary is damaged)"
	}
	return s
}

// Errors.
var (
	ErrSectorSize = errors.New("partition: the block size must be a power of two from 512 to 64 KiB")
	ErrCorrupt    = errors.New("partition: corrupt partition table")
)

// Read reads the partition table of a disk of size bytes, read through r,
// whose logical block size (the unit of GPT's and the MBR's LBAs) is
// block bytes (512 for most disks).
func Read(r io.ReaderAt, size uint64, block uint32) (*Table, error) {
	if block < 512 || block > 1<<16 || block&(block-1) != 0 {
		return nil, ErrSectorSize
	}
	rd := reader{r: r, size: size, block: uint64(block)}
	s0 := make([]byte, block)
	if err := rd.read(s0, 0); err != nil {
		return nil, err
	}
	if !isMBR(s0) {
		return &Table{Scheme: None}, nil
	}
	for i := 0; i < 4; i++ {
		if s0[446+16*i+4] == 0xEE {
			return rd.gpt()
		}
	}
	return rd.mbr(s0)
}

// isMBR reports whether a first sector holds an MBR: the 0x55AA
// signature and boot indicators that are 0x00 or 0x80 (a file system's
// boot sector also ends in 0x55AA, but its code in the table's place is
// unlikely to pass this).
func isMBR(s []byte) bool {
	if s[510] != 0x55 || s[511] != 0xAA {
		return false
	}
	for i := 0; i < 4; i++ {
		if b := s[446+16*i]; b != 0 && b != 0x80 {
			return false
		}
	}
	return true
}

// reader reads whole blocks of a disk.
type reader struct {
	r     io.ReaderAt
	size  uint64
	block uint64
}

// blocks is the disk's size in logical blocks.
func (rd *reader) blocks() uint64 { return rd.size / rd.block }

// read reads len(p) bytes at LBA lba.
func (rd *reader) read(p []byte, lba uint64) error {
	if lba > rd.blocks() || uint64(len(p)) > rd.size-lba*rd.block {
		return fmt.Errorf("%w: LBA %d is beyond the end of the disk", ErrCorrupt, lba)
	}
	n, err := rd.r.ReadAt(p, int64(lba*rd.block))
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("partition: reading LBA %d: %w", lba, err)
}

// inside checks that the partition [start, start+count) blocks lies on
// the disk and converts it to bytes.
func (rd *reader) inside(num int, start, count uint64) (uint64, uint64, error) {
	if count == 0 || start > rd.blocks() || count > rd.blocks()-start {
		return 0, 0, fmt.Errorf("%w: partition %d (blocks %d+%d) does not lie inside the %d-block disk", ErrCorrupt, num, start, count, rd.blocks())
	}
	return start * rd.block, count * rd.block, nil
}

// MBR partition types that hold logical partitions.
func extended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// mbr reads the primary entries of sector 0 and the logical partitions of
// its extended partition.
func (rd *reader) mbr(s0 []byte) (*Table, error) {
	t := &Table{Scheme: MBR}
	var extStart, extCount uint64
	for i := 0; i < 4; i++ {
		e := s0[446+16*i:]
		typ := e[4]
		start := uint64(binary.LittleEndian.Uint32(e[8:]))
		count := uint64(binary.LittleEndian.Uint32(e[12:]))
		if typ == 0 || count == 0 {
			continue
		}
		off, size, err := rd.inside(i+1, start, count)
		if err != nil {
			return nil, err
		}
		if extended(typ) {
			if extCount != 0 {
				return nil, fmt.Errorf("%w: two extended partitions", ErrCorrupt)
			}
			extStart, extCount = start, count
		}
		t.Partitions = append(t.Partitions, Partition{Number: i + 1, Offset: off, Size: size, Type: fmt.Sprintf("0x%02x", typ)})
	}
	if extCount == 0 {
		return t, nil
	}
	// The EBR chain: each EBR's first entry is a logical partition
	// relative to the EBR, its second points at the next EBR relative
	// to the extended partition's start. Every link must move forward
	// inside the extended partition, so the chain cannot loop.
	ebr := make([]byte, rd.block)
	at := extStart
	n := 5
	for links := 0; ; links++ {
		if links >= MaxLogical {
			return nil, fmt.Errorf("%w: an EBR chain longer than %d links", ErrCorrupt, MaxLogical)
		}
		if err := rd.read(ebr, at); err != nil {
			return nil, err
		}
		if ebr[510] != 0x55 || ebr[511] != 0xAA {
			return nil, fmt.Errorf("%w: the EBR at LBA %d has no signature", ErrCorrupt, at)
		}
		e := ebr[446:]
		typ := e[4]
		rel := uint64(binary.LittleEndian.Uint32(e[8:]))
		count := uint64(binary.LittleEndian.Uint32(e[12:]))
		if typ != 0 && count != 0 {
			start := at + rel
			if rel == 0 || start+count > extStart+extCount {
				return nil, fmt.Errorf("%w: logical partition %d (blocks %d+%d) is not inside its extended partition", ErrCorrupt, n, start, count)
			}
			off, size, err := rd.inside(n, start, count)
			if err != nil {
				return nil, err
			}
			t.Partitions = append(t.Partitions, Partition{Number: n, Offset: off, Size: size, Type: fmt.Sprintf("0x%02x", typ)})
			n++
		}
		e = ebr[446+16:]
		next := uint64(binary.LittleEndian.Uint32(e[8:]))
		if e[4] == 0 || binary.LittleEndian.Uint32(e[12:]) == 0 {
			return t, nil
		}
		if !extended(e[4]) || extStart+next <= at || next >= extCount {
			return nil, fmt.Errorf("%w: the EBR at LBA %d links to LBA %d", ErrCorrupt, at, extStart+next)
		}
		at = extStart + next
	}
}

// GPT header layout (UEFI 2.10 table 5.21).
const (
	gptSignature   = "EFI PART"
	gptHeaderMin   = 92
	gptEntryMin    = 128
	gptOffHdrSize  = 12
	gptOffHdrCRC   = 16
	gptOffMyLBA    = 24
	gptOffFirst    = 40
	gptOffLast     = 48
	gptOffEntryLBA = 72
	gptOffEntries  = 80
	gptOffEntSize  = 84
	gptOffEntCRC   = 88
)

// gpt reads the primary GPT, or the backup when the primary fails its
// checks.
func (rd *reader) gpt() (*Table, error) {
	t, err := rd.gptAt(1)
	if err == nil {
		return t, nil
	}
	if rd.blocks() < 2 {
		return nil, err
	}
	t, berr := rd.gptAt(rd.blocks() - 1)
	if berr != nil {
		return nil, fmt.Errorf("%w (backup header: %v)", err, berr)
	}
	t.Backup = true
	return t, nil
}

// gptAt reads the GPT whose header is at LBA lba.
func (rd *reader) gptAt(lba uint64) (*Table, error) {
	le := binary.LittleEndian
	h := make([]byte, rd.block)
	if err := rd.read(h, lba); err != nil {
		return nil, err
	}
	if string(h[:8]) != gptSignature {
		return nil, fmt.Errorf("%w: protective MBR but no GPT header at LBA %d", ErrCorrupt, lba)
	}
	hsize := le.Uint32(h[gptOffHdrSize:])
	if hsize < gptHeaderMin || uint64(hsize) > rd.block {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrCorrupt, hsize)
	}
	want := le.Uint32(h[gptOffHdrCRC:])
	hc := append([]byte(nil), h[:hsize]...)
	le.PutUint32(hc[gptOffHdrCRC:], 0)
	if got := crc32.ChecksumIEEE(hc); got != want {
		return nil, fmt.Errorf("%w: GPT header at LBA %d fails its CRC32 (%#08x, header says %#08x)", ErrCorrupt, lba, got, want)
	}
	if le.Uint64(h[gptOffMyLBA:]) != lba {
		return nil, fmt.Errorf("%w: GPT header at LBA %d says it is at LBA %d", ErrCorrupt, lba, le.Uint64(h[gptOffMyLBA:]))
	}
	first, last := le.Uint64(h[gptOffFirst:]), le.Uint64(h[gptOffLast:])
	if first > last || last >= rd.blocks() {
		return nil, fmt.Errorf("%w: GPT usable blocks %d-%d on a %d-block disk", ErrCorrupt, first, last, rd.blocks())
	}
	count, esize := le.Uint32(h[gptOffEntries:]), le.Uint32(h[gptOffEntSize:])
	if esize < gptEntryMin || esize&(esize-1) != 0 || count > MaxGPTEntries || uint64(count)*uint64(esize) > MaxGPTArray {
		return nil, fmt.Errorf("%w: GPT array of %d entries of %d bytes", ErrCorrupt, count, esize)
	}
	asize := uint64(count) * uint64(esize)
	arr := make([]byte, (asize+rd.block-1)/rd.block*rd.block)
	if err := rd.read(arr, le.Uint64(h[gptOffEntryLBA:])); err != nil {
		return nil, err
	}
	arr = arr[:asize]
	if got, want := crc32.ChecksumIEEE(arr), le.Uint32(h[gptOffEntCRC:]); got != want {
		return nil, fmt.Errorf("%w: GPT partition array fails its CRC32 (%#08x, header says %#08x)", ErrCorrupt, got, want)
	}
	t := &Table{Scheme: GPT}
	for i := uint32(0); i < count; i++ {
		e := arr[uint64(i)*uint64(esize):]
		var zero [16]byte
		if bytes.Equal(e[:16], zero[:]) {
			continue
		}
		start, end := le.Uint64(e[32:]), le.Uint64(e[40:])
		num := int(i) + 1
		if start < first || end > last || end < start {
			return nil, fmt.Errorf("%w: GPT partition %d (blocks %d-%d) outside the usable blocks %d-%d", ErrCorrupt, num, start, end, first, last)
		}
		off, size, err := rd.inside(num, start, end-start+1)
		if err != nil {
			return nil, err
		}
		t.Partitions = append(t.Partitions, Partition{Number: num, Offset: off, Size: size, Type: guid(e[:16]), Name: gptName(e[56:128])})
	}
	return t, nil
}

// guid formats a GPT GUID (its first three fields little-endian).
func guid(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

// gptName decodes a partition name: UTF-16LE, NUL-terminated.
func gptName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
