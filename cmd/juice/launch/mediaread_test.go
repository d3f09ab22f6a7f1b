package launch

// Small readers for what the media builders write, so that the tests
// parse the images back independently of the tools that made them:
// ISO 9660 with Rock Ridge names, the El Torito boot catalog, MBR and GPT
// partition tables, and FAT12/16/32 with long names.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"unicode/utf16"
)

// isoImage is an ISO 9660 image in memory.
type isoImage struct {
	data []byte
}

const isoBlock = 2048

// isoEntry is one directory record.
type isoEntry struct {
	name   string // Rock Ridge name if present, else the ISO name without ";1"
	extent uint32 // first block
	size   uint32
	dir    bool
}

// openISO reads path and checks its primary volume descriptor.
func openISO(path string) (*isoImage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 18*isoBlock {
		return nil, fmt.Errorf("ISO only %d bytes", len(data))
	}
	pvd := data[16*isoBlock:]
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return nil, fmt.Errorf("no primary volume descriptor at block 16")
	}
	return &isoImage{data: data}, nil
}

// block returns n bytes from block b.
func (iso *isoImage) block(b uint32, n uint32) ([]byte, error) {
	off := uint64(b) * isoBlock
	if off+uint64(n) > uint64(len(iso.data)) {
		return nil, fmt.Errorf("extent %d+%d past the image's end", b, n)
	}
	return iso.data[off : off+uint64(n)], nil
}

// parseRecord decodes the directory record at rec.
func parseRecord(rec []byte) isoEntry {
	e := isoEntry{
		extent: binary.LittleEndian.Uint32(rec[2:]),
		size:   binary.LittleEndian.Uint32(rec[10:]),
		dir:    rec[25]&2 != 0,
	}
	nameLen := int(rec[32])
	e.name = strings.TrimSuffix(string(rec[33:33+nameLen]), ";1")
	// The System Use area follows the name, padded to an even offset.
	su := 33 + nameLen
	if su%2 == 1 {
		su++
	}
	var rr []byte
	for su+4 <= len(rec) {
		sig, l := string(rec[su:su+2]), int(rec[su+2])
		if l < 4 || su+l > len(rec) {
			break
		}
		if sig == "NM" && l > 5 {
			rr = append(rr, rec[su+5:su+l]...)
		}
		su += l
	}
	if rr != nil {
		e.name = string(rr)
	}
	return e
}

// readDir lists the directory at e (without "." and "..").
func (iso *isoImage) readDir(e isoEntry) ([]isoEntry, error) {
	data, err := iso.block(e.extent, e.size)
	if err != nil {
		return nil, err
	}
	var out []isoEntry
	for off := 0; off < len(data); {
		l := int(data[off])
		if l == 0 {
			// Records do not cross blocks: skip to the next one.
			off = (off/isoBlock + 1) * isoBlock
			continue
		}
		if off+l > len(data) || l < 34 {
			return nil, fmt.Errorf("bad directory record at %d", off)
		}
		rec := data[off : off+l]
		if !(rec[32] == 1 && (rec[33] == 0 || rec[33] == 1)) {
			out = append(out, parseRecord(rec))
		}
		off += l
	}
	return out, nil
}

// lookup finds the file or directory at the absolute path p.
func (iso *isoImage) lookup(p string) (isoEntry, error) {
	pvd := iso.data[16*isoBlock:]
	cur := parseRecord(pvd[156 : 156+34])
	cur.dir = true
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		entries, err := iso.readDir(cur)
		if err != nil {
			return cur, err
		}
		found := false
		for _, e := range entries {
			if e.name == part {
				cur, found = e, true
				break
			}
		}
		if !found {
			return cur, fmt.Errorf("%s: no %q", p, part)
		}
	}
	return cur, nil
}

// readFile returns the content of the file at p.
func (iso *isoImage) readFile(p string) ([]byte, error) {
	e, err := iso.lookup(p)
	if err != nil {
		return nil, err
	}
	if e.dir {
		return nil, fmt.Errorf("%s is a directory", p)
	}
	return iso.block(e.extent, e.size)
}

// elToritoEntry is a bootable entry of the boot catalog.
type elToritoEntry struct {
	platform byte // 0 x86 BIOS, 0xef UEFI
	lba      uint32
	sectors  uint16 // 512-byte sectors the firmware loads
}

// elTorito returns the boot catalog's bootable entries.
func (iso *isoImage) elTorito() ([]elToritoEntry, error) {
	br := iso.data[17*isoBlock:]
	if br[0] != 0 || string(br[1:6]) != "CD001" || !strings.HasPrefix(string(br[7:]), "EL TORITO SPECIFICATION") {
		return nil, fmt.Errorf("no El Torito boot record at block 17")
	}
	cat, err := iso.block(binary.LittleEndian.Uint32(br[0x47:]), isoBlock)
	if err != nil {
		return nil, err
	}
	if cat[0] != 1 || cat[30] != 0x55 || cat[31] != 0xaa {
		return nil, fmt.Errorf("bad validation entry in the boot catalog")
	}
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(cat[i:])
	}
	if sum != 0 {
		return nil, fmt.Errorf("boot catalog validation checksum %#x", sum)
	}
	entry := func(e []byte, platform byte) elToritoEntry {
		return elToritoEntry{platform: platform, sectors: binary.LittleEndian.Uint16(e[6:]), lba: binary.LittleEndian.Uint32(e[8:])}
	}
	var out []elToritoEntry
	if cat[32] == 0x88 {
		out = append(out, entry(cat[32:64], cat[1]))
	}
	for off := 64; off+32 <= len(cat); {
		h := cat[off:]
		if h[0] != 0x90 && h[0] != 0x91 {
			break
		}
		n := int(binary.LittleEndian.Uint16(h[2:]))
		for i := 1; i <= n && off+32*(i+1) <= len(cat); i++ {
			if e := cat[off+32*i:]; e[0] == 0x88 {
				out = append(out, entry(e, h[1]))
			}
		}
		off += 32 * (n + 1)
		if h[0] == 0x91 {
			break
		}
	}
	return out, nil
}

// mbrPartition is one MBR partition table entry.
type mbrPartition struct {
	status, typ    byte
	start, sectors uint32
}

// readMBR returns the four partition entries of a disk's first sector.
func readMBR(disk []byte) ([4]mbrPartition, error) {
	var p [4]mbrPartition
	if len(disk) < 512 || disk[510] != 0x55 || disk[511] != 0xaa {
		return p, fmt.Errorf("no MBR boot signature")
	}
	for i := range p {
		e := disk[0x1be+16*i:]
		p[i] = mbrPartition{status: e[0], typ: e[4], start: binary.LittleEndian.Uint32(e[8:]), sectors: binary.LittleEndian.Uint32(e[12:])}
	}
	return p, nil
}

// gptPartition is one used GPT entry.
type gptPartition struct {
	typeGUID    [16]byte
	first, last uint64
}

// espGUID is the EFI system partition's type GUID in its on-disk byte
// order (C12A7328-F81F-11D2-BA4B-00A0C93EC93B).
var espGUID = [16]byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// readGPT returns the used entries of the GPT whose header is at LBA 1.
func readGPT(disk []byte) ([]gptPartition, error) {
	if len(disk) < 1024 || string(disk[512:520]) != "EFI PART" {
		return nil, fmt.Errorf("no GPT header at LBA 1")
	}
	h := disk[512:]
	start := binary.LittleEndian.Uint64(h[72:])
	n := binary.LittleEndian.Uint32(h[80:])
	size := binary.LittleEndian.Uint32(h[84:])
	if size < 128 || n > 1024 || start*512+uint64(n)*uint64(size) > uint64(len(disk)) {
		return nil, fmt.Errorf("bad GPT entry array")
	}
	var out []gptPartition
	for i := uint32(0); i < n; i++ {
		e := disk[start*512+uint64(i)*uint64(size):]
		var p gptPartition
		copy(p.typeGUID[:], e[:16])
		if p.typeGUID == [16]byte{} {
			continue
		}
		p.first, p.last = binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		out = append(out, p)
	}
	return out, nil
}

// fatFS is a FAT12/16/32 file system in memory.
type fatFS struct {
	data           []byte
	bytesPerSector uint32
	clusterSize    uint32
	fatStart       uint32 // byte offset
	rootStart      uint32 // byte offset of the FAT12/16 root directory
	rootSize       uint32
	dataStart      uint32 // byte offset of cluster 2
	rootCluster    uint32 // FAT32
	bits           int    // 12, 16 or 32
	clusters       uint32
}

// openFAT parses the boot sector of the file system in data.
func openFAT(data []byte) (*fatFS, error) {
	if len(data) < 512 || data[510] != 0x55 || data[511] != 0xaa {
		return nil, fmt.Errorf("no boot sector signature")
	}
	le := binary.LittleEndian
	f := &fatFS{data: data, bytesPerSector: uint32(le.Uint16(data[11:]))}
	spc := uint32(data[13])
	reserved := uint32(le.Uint16(data[14:]))
	nFATs := uint32(data[16])
	rootEnts := uint32(le.Uint16(data[17:]))
	total := uint32(le.Uint16(data[19:]))
	if total == 0 {
		total = le.Uint32(data[32:])
	}
	fatSize := uint32(le.Uint16(data[22:]))
	if fatSize == 0 {
		fatSize = le.Uint32(data[36:])
		f.rootCluster = le.Uint32(data[44:])
	}
	if f.bytesPerSector == 0 || spc == 0 || nFATs == 0 || fatSize == 0 {
		return nil, fmt.Errorf("bad BPB")
	}
	if uint64(total)*uint64(f.bytesPerSector) > uint64(len(data)) {
		return nil, fmt.Errorf("file system of %d sectors larger than its %d bytes", total, len(data))
	}
	f.clusterSize = spc * f.bytesPerSector
	f.fatStart = reserved * f.bytesPerSector
	f.rootStart = f.fatStart + nFATs*fatSize*f.bytesPerSector
	f.rootSize = rootEnts * 32
	f.dataStart = f.rootStart + (f.rootSize+f.bytesPerSector-1)/f.bytesPerSector*f.bytesPerSector
	f.clusters = (total*f.bytesPerSector - f.dataStart) / f.clusterSize
	switch {
	case f.clusters < 4085:
		f.bits = 12
	case f.clusters < 65525:
		f.bits = 16
	default:
		f.bits = 32
	}
	return f, nil
}

// next returns the FAT entry of cluster c.
func (f *fatFS) next(c uint32) uint32 {
	le := binary.LittleEndian
	switch f.bits {
	case 12:
		v := uint32(le.Uint16(f.data[f.fatStart+c+c/2:]))
		if c&1 == 1 {
			return v >> 4
		}
		return v & 0xfff
	case 16:
		return uint32(le.Uint16(f.data[f.fatStart+2*c:]))
	}
	return le.Uint32(f.data[f.fatStart+4*c:]) & 0x0fffffff
}

// chain reads the cluster chain from c; size < 0 reads all of it.
func (f *fatFS) chain(c uint32, size int64) ([]byte, error) {
	var out []byte
	end := uint32(0xff8) << (f.bits - 12)
	if f.bits == 32 {
		end = 0x0ffffff8
	}
	for n := uint32(0); c >= 2 && c < end; n++ {
		if n > f.clusters || c-2 >= f.clusters {
			return nil, fmt.Errorf("bad cluster chain at %d", c)
		}
		off := f.dataStart + (c-2)*f.clusterSize
		out = append(out, f.data[off:off+f.clusterSize]...)
		if size >= 0 && int64(len(out)) >= size {
			break
		}
		c = f.next(c)
	}
	if size >= 0 {
		if int64(len(out)) < size {
			return nil, fmt.Errorf("cluster chain of %d bytes for a %d-byte file", len(out), size)
		}
		out = out[:size]
	}
	return out, nil
}

// fatEntry is one directory entry.
type fatEntry struct {
	name    string // the long name if there is one
	short   string // NAME.EXT
	cluster uint32
	size    uint32
	dir     bool
}

// readDir lists a directory's entries (without "." and "..").
func (f *fatFS) readDir(data []byte) []fatEntry {
	var out []fatEntry
	var long []uint16
	for off := 0; off+32 <= len(data); off += 32 {
		e := data[off : off+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xe5 {
			long = nil
			continue
		}
		if e[11] == 0x0f {
			var part []uint16
			for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
				for i := r[0]; i < r[1]; i += 2 {
					part = append(part, binary.LittleEndian.Uint16(e[i:]))
				}
			}
			long = append(part, long...) // entries come last part first
			continue
		}
		if e[11]&0x08 != 0 { // volume label
			long = nil
			continue
		}
		base, ext := strings.TrimRight(string(e[0:8]), " "), strings.TrimRight(string(e[8:11]), " ")
		// Windows NT's case bits: an 8.3 name in lower case has no long
		// name, only these.
		if e[12]&0x08 != 0 {
			base = strings.ToLower(base)
		}
		if e[12]&0x10 != 0 {
			ext = strings.ToLower(ext)
		}
		short := base
		if ext != "" {
			short += "." + ext
		}
		name := short
		if long != nil {
			if i := indexOf(long, 0); i >= 0 {
				long = long[:i]
			}
			name = string(utf16.Decode(long))
		}
		long = nil
		if short == "." || short == ".." {
			continue
		}
		out = append(out, fatEntry{name: name, short: short,
			cluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:])),
			size:    binary.LittleEndian.Uint32(e[28:]), dir: e[11]&0x10 != 0})
	}
	return out
}

// indexOf returns the index of v in s, or -1.
func indexOf(s []uint16, v uint16) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// lookup finds the entry at the absolute path p (names compared without
// regard to case, as FAT does).
func (f *fatFS) lookup(p string) (fatEntry, error) {
	var dir []byte
	var err error
	if f.bits == 32 {
		dir, err = f.chain(f.rootCluster, -1)
		if err != nil {
			return fatEntry{}, err
		}
	} else {
		dir = f.data[f.rootStart : f.rootStart+f.rootSize]
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, part := range parts {
		var hit *fatEntry
		for _, e := range f.readDir(dir) {
			if strings.EqualFold(e.name, part) || strings.EqualFold(e.short, part) {
				hit = &e
				break
			}
		}
		if hit == nil {
			return fatEntry{}, fmt.Errorf("%s: no %q", p, part)
		}
		if i == len(parts)-1 {
			return *hit, nil
		}
		if !hit.dir {
			return fatEntry{}, fmt.Errorf("%s: %q is not a directory", p, part)
		}
		if dir, err = f.chain(hit.cluster, -1); err != nil {
			return fatEntry{}, err
		}
	}
	return fatEntry{}, fmt.Errorf("empty path")
}

// readFile returns the content of the file at p and its stored name.
func (f *fatFS) readFile(p string) ([]byte, string, error) {
	e, err := f.lookup(p)
	if err != nil {
		return nil, "", err
	}
	if e.dir {
		return nil, "", fmt.Errorf("%s is a directory", p)
	}
	if e.size == 0 {
		return []byte{}, e.name, nil
	}
	b, err := f.chain(e.cluster, int64(e.size))
	return b, e.name, err
}

// isPE64 reports whether b is a PE image for x86-64 (an EFI application).
func isPE64(b []byte) bool {
	if len(b) < 0x40 || !bytes.HasPrefix(b, []byte("MZ")) {
		return false
	}
	off := binary.LittleEndian.Uint32(b[0x3c:])
	return uint64(off)+6 <= uint64(len(b)) && string(b[off:off+4]) == "PE\x00\x00" &&
		binary.LittleEndian.Uint16(b[off+4:]) == 0x8664
}
