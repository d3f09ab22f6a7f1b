package vmm

import "encoding/binary"

// Read reads the little-endian value of size bytes (1, 2, 4 or 8) at gpa;
// ok is false when the access is not wholly inside RAM or size is bad.
func (m *GuestMemory) Read(gpa uint64, size uint8) (uint64, bool) {
	b, ok := m.Slice(gpa, uint64(size))
	if !ok {
		return 0, false
	}
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.LittleEndian.Uint16(b)), true
	case 4:
		return uint64(binary.LittleEndian.Uint32(b)), true
	case 8:
		return binary.LittleEndian.Uint64(b), true
	}
	return 0, false
}

// Write stores the low size bytes (1, 2, 4 or 8) of v at gpa,
// little-endian; it reports false when the access is not wholly inside
// RAM or size is bad.
func (m *GuestMemory) Write(gpa uint64, size uint8, v uint64) bool {
	b, ok := m.Slice(gpa, uint64(size))
	if !ok {
		return false
	}
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(b, v)
	default:
		return false
	}
	return true
}
