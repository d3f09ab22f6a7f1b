package devices

import "sync"

// ScratchBase is the guest-physical address juice gives every VM's
// Scratch device: in the hole below 4 GiB where a PC has device memory,
// away from the LAPIC, IOAPIC and HPET windows (0xfec00000-0xfeefffff).
const ScratchBase = 0xd0000000

// ScratchSize is the size of Scratch's register window (one page).
const ScratchSize = 0x1000

// ScratchID is what Scratch's ID register reads: "juic" in little-endian
// byte order (bytes 'c', 'i', 'u', 'j' at offsets 0-3).
const ScratchID = 0x6a756963

// Scratch's registers, as offsets from its base. Every register is a
// little-endian run of bytes: an access of 1, 2, 4 or 8 bytes at any
// offset reads or writes the bytes it covers, so a narrow or unaligned
// access sees the matching byte lanes, and one that spans two registers
// reads each register's bytes and writes each register's bytes.
const (
	// ScratchRegID is the 4-byte read-only ID register (ScratchID).
	// Writes are ignored.
	ScratchRegID = 0x000
	// ScratchRegAdd is the 8-byte write-only "sum" register: each write
	// adds the written bytes, placed at their lanes (a 1-byte write at
	// ScratchRegAdd+1 adds value<<8), to the sum (mod 2^64). It reads 0.
	ScratchRegAdd = 0x008
	// ScratchRegData is the start of the read/write scratch area:
	// ScratchDataLen bytes that read back what was written.
	ScratchRegData = 0x010
	// ScratchRegSum is the 8-byte read-only sum the ScratchRegAdd writes
	// built up. Writes are ignored.
	ScratchRegSum = 0x050
	// ScratchRegCount is the 8-byte read-only access counter: the number
	// of accesses (reads and writes, of any register or none) the device
	// served before this read. Writes are ignored.
	ScratchRegCount = 0x058
)

// ScratchDataLen is the size of the scratch area at ScratchRegData.
const ScratchDataLen = 64

// Scratch is an MMIO test device: a page of registers (see the
// ScratchReg* offsets) that lets a guest check that juice's MMIO path,
// instruction emulator included, reads and writes device memory with the
// right sizes, byte lanes and side effects. Everything outside the
// registers reads 0 and ignores writes. It implements vmm.MMIODevice
// (offsets from its base); Read and Write are allocation-free and safe for
// concurrent use. The zero value is ready to use: register it on the MMIO
// bus at ScratchBase with ScratchSize bytes.
type Scratch struct {
	mu    sync.Mutex
	data  [ScratchDataLen]byte
	sum   uint64
	count uint64
}

// Read returns the size (1, 2, 4 or 8) bytes at offset off, little
// endian; other sizes read 0. Every call counts as one access.
func (s *Scratch) Read(off uint64, size uint8) uint64 {
	s.mu.Lock()
	count := s.count
	s.count++
	var v uint64
	if validSize(size) && off < ScratchSize {
		for i := uint8(0); i < size; i++ {
			v |= uint64(s.byteAt(off+uint64(i), count)) << (8 * i)
		}
	}
	s.mu.Unlock()
	return v
}

// Write writes the low size (1, 2, 4 or 8) bytes of value at offset off,
// little endian; other sizes are ignored. Every call counts as one access.
func (s *Scratch) Write(off uint64, size uint8, value uint64) {
	s.mu.Lock()
	s.count++
	if validSize(size) && off < ScratchSize {
		var add uint64
		for i := uint8(0); i < size; i++ {
			o := off + uint64(i)
			b := byte(value >> (8 * i))
			switch {
			case o >= ScratchRegAdd && o < ScratchRegAdd+8:
				add |= uint64(b) << (8 * (o - ScratchRegAdd))
			case o >= ScratchRegData && o < ScratchRegData+ScratchDataLen:
				s.data[o-ScratchRegData] = b
			}
		}
		s.sum += add
	}
	s.mu.Unlock()
}

// byteAt returns the byte at offset o of the register window, with count
// as the access counter's value. s.mu is held.
func (s *Scratch) byteAt(o, count uint64) byte {
	switch {
	case o < ScratchRegID+4:
		return byte(uint64(ScratchID) >> (8 * (o - ScratchRegID)))
	case o >= ScratchRegData && o < ScratchRegData+ScratchDataLen:
		return s.data[o-ScratchRegData]
	case o >= ScratchRegSum && o < ScratchRegSum+8:
		return byte(s.sum >> (8 * (o - ScratchRegSum)))
	case o >= ScratchRegCount && o < ScratchRegCount+8:
		return byte(count >> (8 * (o - ScratchRegCount)))
	}
	return 0
}

// Sum returns the sum register's value.
func (s *Scratch) Sum() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// Accesses returns how many reads and writes the device has served.
func (s *Scratch) Accesses() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// validSize reports whether size is an access size the MMIO bus passes.
func validSize(size uint8) bool {
	return size == 1 || size == 2 || size == 4 || size == 8
}
