package ahci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Identity is what IDENTIFY DEVICE (ACS-3 section 7.12, table 45) says
// about an ATA device, as far as the driver needs it.
type Identity struct {
	// Model, Serial and Firmware are the device's strings, trimmed, with
	// anything but printable ASCII replaced by '?'.
	Model, Serial, Firmware string
	// Sectors is the capacity in logical blocks (words 100-103, 48-bit).
	Sectors uint64
	// LogicalSize is the logical block size in bytes (512 unless words
	// 106 and 117-118 say otherwise); PhysicalSize the physical one.
	LogicalSize, PhysicalSize uint32
	// WriteCache reports a volatile write cache (word 82 bit 5) and
	// WriteCacheOn whether it is enabled (word 85 bit 5).
	WriteCache, WriteCacheOn bool
	// FlushExt and Flush report FLUSH CACHE EXT and FLUSH CACHE (word 83
	// bits 13 and 12).
	FlushExt, Flush bool
}

// IdentifyBytes is the size of IDENTIFY DEVICE's data.
const IdentifyBytes = 512

// Limits on what IDENTIFY may report.
const (
	// MaxLogicalSize is the largest logical block the driver takes.
	MaxLogicalSize = 32 << 10
	// maxSectors caps a 48-bit capacity (2^48 blocks).
	maxSectors = 1 << 48
)

// ErrIdentify is wrapped by every ParseIdentify error.
var ErrIdentify = errors.New("ahci: unusable IDENTIFY DEVICE data")

// ParseIdentify decodes IDENTIFY DEVICE data. It refuses data that is
// not an ATA device's, a failed checksum (word 255 when its signature
// byte is 0xA5), a device without 48-bit addressing (READ/WRITE DMA EXT)
// or DMA, an empty capacity, and a logical block size that is not a
// power of two from 512 to MaxLogicalSize.
func ParseIdentify(b []byte) (Identity, error) {
	var id Identity
	if len(b) < IdentifyBytes {
		return id, fmt.Errorf("%w: %d bytes", ErrIdentify, len(b))
	}
	w := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	if w(0)&(1<<15) != 0 {
		return id, fmt.Errorf("%w: word 0 is %#04x, not an ATA device", ErrIdentify, w(0))
	}
	if b[510] == 0xA5 {
		var sum byte
		for _, c := range b[:IdentifyBytes] {
			sum += c
		}
		if sum != 0 {
			return id, fmt.Errorf("%w: checksum %#02x, want 0", ErrIdentify, sum)
		}
	}
	id.Serial = ataString(b[20:40])
	id.Firmware = ataString(b[46:54])
	id.Model = ataString(b[54:94])
	if w(49)&(1<<8) == 0 {
		return id, fmt.Errorf("%w: no DMA (word 49 %#04x)", ErrIdentify, w(49))
	}
	// Words 82-84 and 85-87 are valid when bits 15:14 of 83 (and 86's
	// companion 87) read 01.
	valid83 := w(83)&0xC000 == 0x4000
	valid87 := w(87)&0xC000 == 0x4000
	if !valid83 || w(83)&(1<<10) == 0 {
		return id, fmt.Errorf("%w: no 48-bit addressing (word 83 %#04x)", ErrIdentify, w(83))
	}
	id.WriteCache = w(82)&(1<<5) != 0
	id.FlushExt = w(83)&(1<<13) != 0
	id.Flush = w(83)&(1<<12) != 0
	if valid87 {
		id.WriteCacheOn = w(85)&(1<<5) != 0
	}
	id.Sectors = uint64(w(100)) | uint64(w(101))<<16 | uint64(w(102))<<32 | uint64(w(103))<<48
	if id.Sectors == 0 || id.Sectors > maxSectors {
		return id, fmt.Errorf("%w: capacity of %d logical blocks", ErrIdentify, id.Sectors)
	}
	id.LogicalSize, id.PhysicalSize = 512, 512
	if w106 := w(106); w106&0xC000 == 0x4000 {
		if w106&(1<<12) != 0 {
			words := uint32(w(117)) | uint32(w(118))<<16
			if words > MaxLogicalSize/2 || words < 256 || words&(words-1) != 0 {
				return id, fmt.Errorf("%w: logical block of %d words", ErrIdentify, words)
			}
			id.LogicalSize = 2 * words
		}
		id.PhysicalSize = id.LogicalSize
		if w106&(1<<13) != 0 {
			if shift := w106 & 0xF; shift <= 8 {
				id.PhysicalSize = id.LogicalSize << shift
			}
		}
	}
	return id, nil
}

// ataString decodes an ATA string: byte pairs swapped, space padded.
func ataString(b []byte) string {
	s := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		s[i], s[i+1] = b[i+1], b[i]
	}
	for i, c := range s {
		switch {
		case c == 0:
			s[i] = ' '
		case c < 0x20 || c > 0x7E:
			s[i] = '?'
		}
	}
	return strings.TrimSpace(string(s))
}
