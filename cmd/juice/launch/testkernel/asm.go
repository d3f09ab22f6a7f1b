package testkernel

import (
	"encoding/binary"
	"fmt"
)

// asm is a minimal assembler for hand-encoded 32-bit x86: bytes plus
// labels with absolute (abs32) and relative (rel8, rel32) references
// resolved in finish.
type asm struct {
	base   uint32 // address of the first byte
	buf    []byte
	labels map[string]uint32
	fixups []fixup
}

// fixup is a reference to a label to patch in finish.
type fixup struct {
	at    int    // offset in buf of the field
	label string // target
	kind  int    // fixAbs32, fixRel8 or fixRel32
}

// Fixup kinds.
const (
	fixAbs32 = iota
	fixRel8
	fixRel32
)

// newAsm returns an assembler whose output is loaded at base.
func newAsm(base uint32) *asm {
	return &asm{base: base, labels: map[string]uint32{}}
}

// emit appends bytes.
func (a *asm) emit(b ...byte) *asm {
	a.buf = append(a.buf, b...)
	return a
}

// u16 appends a little-endian 16-bit immediate.
func (a *asm) u16(v uint16) *asm {
	a.buf = binary.LittleEndian.AppendUint16(a.buf, v)
	return a
}

// u32 appends a little-endian 32-bit immediate.
func (a *asm) u32(v uint32) *asm {
	a.buf = binary.LittleEndian.AppendUint32(a.buf, v)
	return a
}

// abs32 appends the 32-bit address of label.
func (a *asm) abs32(label string) *asm {
	a.fixups = append(a.fixups, fixup{len(a.buf), label, fixAbs32})
	return a.u32(0)
}

// rel8 appends an 8-bit displacement to label from the end of the field
// (the end of a short jump).
func (a *asm) rel8(label string) *asm {
	a.fixups = append(a.fixups, fixup{len(a.buf), label, fixRel8})
	return a.emit(0)
}

// rel32 appends a 32-bit displacement to label from the end of the field
// (the end of a near call).
func (a *asm) rel32(label string) *asm {
	a.fixups = append(a.fixups, fixup{len(a.buf), label, fixRel32})
	return a.u32(0)
}

// label defines name at the current position.
func (a *asm) label(name string) { a.labelAt(name, a.base+uint32(len(a.buf))) }

// labelAt defines name at an absolute address.
func (a *asm) labelAt(name string, addr uint32) { a.labels[name] = addr }

// align pads with zero bytes to a multiple of n.
func (a *asm) align(n int) {
	for (int(a.base)+len(a.buf))%n != 0 {
		a.buf = append(a.buf, 0)
	}
}

// finish resolves the references and returns the bytes.
func (a *asm) finish() ([]byte, error) {
	for _, f := range a.fixups {
		target, ok := a.labels[f.label]
		if !ok {
			return nil, fmt.Errorf("testkernel: undefined label %q", f.label)
		}
		switch f.kind {
		case fixAbs32:
			binary.LittleEndian.PutUint32(a.buf[f.at:], target)
		case fixRel32:
			next := a.base + uint32(f.at) + 4
			binary.LittleEndian.PutUint32(a.buf[f.at:], target-next)
		case fixRel8:
			next := int64(a.base) + int64(f.at) + 1
			d := int64(target) - next
			if d < -128 || d > 127 {
				return nil, fmt.Errorf("testkernel: jump to %q out of rel8 range (%d)", f.label, d)
			}
			a.buf[f.at] = byte(int8(d))
		}
	}
	return a.buf, nil
}
