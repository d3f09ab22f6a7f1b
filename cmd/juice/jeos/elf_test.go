package jeos

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Helpers that make small, valid ELF files for the tests.

// elfHeader writes an ELF64 little-endian x86-64 header.
func elfHeader(b *bytes.Buffer, typ uint16, phoff uint64, phnum uint16, shoff uint64, shnum, shstrndx uint16) {
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	w := func(v any) { binary.Write(b, le, v) }
	w(typ)
	w(uint16(62)) // EM_X86_64
	w(uint32(1))
	w(uint64(0)) // entry
	w(phoff)
	w(shoff)
	w(uint32(0))  // flags
	w(uint16(64)) // ehsize
	w(uint16(56)) // phentsize
	w(phnum)
	w(uint16(64)) // shentsize
	w(shnum)
	w(shstrndx)
}

// fakeKo returns a relocatable ELF whose .modinfo says it depends on
// deps (as the kernel writes it: "depends=a,b").
func fakeKo(name string, deps ...string) []byte {
	modinfo := []byte("license=GPL\x00depends=" + strings.Join(deps, ",") + "\x00retpoline=Y\x00name=" + name + "\x00vermagic=6.1.0-test SMP mod_unload modversions \x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	modOff := uint64(64)
	strOff := modOff + uint64(len(modinfo))
	shoff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	elfHeader(&b, 1, 0, 0, shoff, 3, 2)
	b.Write(modinfo)
	b.Write(shstr)
	for uint64(b.Len()) < shoff {
		b.WriteByte(0)
	}
	sh := func(name, typ uint32, off, size uint64) {
		le := binary.LittleEndian
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0)) // link
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, uint64(0)) // entsize
	}
	sh(0, 0, 0, 0)
	sh(1, 1, modOff, uint64(len(modinfo))) // .modinfo, PROGBITS
	sh(10, 3, strOff, uint64(len(shstr)))  // .shstrtab, STRTAB
	return b.Bytes()
}

// fakeNote is one ELF note with 4-byte alignment.
func fakeNote(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	binary.Write(&b, le, uint32(len(name)+1))
	binary.Write(&b, le, uint32(len(desc)))
	binary.Write(&b, le, typ)
	b.WriteString(name + "\x00")
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(desc)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// fakeVmlinux returns an executable ELF with one PT_NOTE segment holding
// notes, followed by size bytes of x86-like filler with many E8/E9
// (call/jmp) opcodes, so that the XZ x86 BCJ filter has work to do.
func fakeVmlinux(notes []byte, size int) []byte {
	var b bytes.Buffer
	elfHeader(&b, 2, 64, 1, 0, 0, 0)
	le := binary.LittleEndian
	noteOff := uint64(64 + 56)
	binary.Write(&b, le, uint32(4)) // PT_NOTE
	binary.Write(&b, le, uint32(4)) // PF_R
	binary.Write(&b, le, noteOff)
	binary.Write(&b, le, uint64(0x1000000)) // vaddr
	binary.Write(&b, le, uint64(0x1000000)) // paddr
	binary.Write(&b, le, uint64(len(notes)))
	binary.Write(&b, le, uint64(len(notes)))
	binary.Write(&b, le, uint64(4))
	b.Write(notes)
	x := uint32(12345)
	for i := 0; i < size; i++ {
		x = x*1103515245 + 12345
		switch {
		case i%37 == 0:
			b.WriteByte(0xe8)
		case i%53 == 0:
			b.WriteByte(0xe9)
		case i%7 == 0:
			b.WriteByte(0)
		default:
			b.WriteByte(byte(x >> 24 & 0x0f))
		}
	}
	return b.Bytes()
}

// xenEntryNote is the PVH entry note Linux puts in vmlinux.
func xenEntryNote(entry uint64) []byte {
	d := make([]byte, 8)
	binary.LittleEndian.PutUint64(d, entry)
	return fakeNote("Xen", xenElfnotePhys32Entry, d)
}

// fakeDynELF returns a shared object (ET_DYN) that needs the libraries
// named (DT_NEEDED in .dynamic, names in .dynstr) and, when interp is not
// "", names that loader in a PT_INTERP segment, as a program does.
func fakeDynELF(interp string, needed ...string) []byte {
	le := binary.LittleEndian
	dynstr := []byte{0}
	var dynamic bytes.Buffer
	for _, n := range needed {
		binary.Write(&dynamic, le, uint64(1)) // DT_NEEDED
		binary.Write(&dynamic, le, uint64(len(dynstr)))
		dynstr = append(append(dynstr, n...), 0)
	}
	binary.Write(&dynamic, le, uint64(0)) // DT_NULL
	binary.Write(&dynamic, le, uint64(0))
	shstr := []byte("\x00.interp\x00.dynstr\x00.dynamic\x00.shstrtab\x00")
	interpData := []byte(interp + "\x00")

	phnum := uint16(0)
	if interp != "" {
		phnum = 1
	}
	interpOff := uint64(64) + 56*uint64(phnum)
	strOff := interpOff + uint64(len(interpData))
	dynOff := (strOff + uint64(len(dynstr)) + 7) &^ 7
	shstrOff := dynOff + uint64(dynamic.Len())
	shoff := (shstrOff + uint64(len(shstr)) + 7) &^ 7

	var b bytes.Buffer
	elfHeader(&b, 3, 64, phnum, shoff, 5, 4)
	if interp != "" {
		binary.Write(&b, le, uint32(3)) // PT_INTERP
		binary.Write(&b, le, uint32(4)) // PF_R
		binary.Write(&b, le, interpOff)
		binary.Write(&b, le, interpOff) // vaddr
		binary.Write(&b, le, interpOff) // paddr
		binary.Write(&b, le, uint64(len(interpData)))
		binary.Write(&b, le, uint64(len(interpData)))
		binary.Write(&b, le, uint64(1))
	}
	pad := func(to uint64) {
		for uint64(b.Len()) < to {
			b.WriteByte(0)
		}
	}
	b.Write(interpData)
	b.Write(dynstr)
	pad(dynOff)
	b.Write(dynamic.Bytes())
	b.Write(shstr)
	pad(shoff)
	sh := func(name, typ uint32, off, size uint64, link uint32, entsize uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, link)
		binary.Write(&b, le, uint32(0)) // info
		binary.Write(&b, le, uint64(1)) // addralign
		binary.Write(&b, le, entsize)
	}
	sh(0, 0, 0, 0, 0, 0)
	sh(1, 1, interpOff, uint64(len(interpData)), 0, 0) // .interp, PROGBITS
	sh(9, 3, strOff, uint64(len(dynstr)), 0, 0)        // .dynstr, STRTAB
	sh(17, 6, dynOff, uint64(dynamic.Len()), 2, 16)    // .dynamic, DYNAMIC, strings in .dynstr
	sh(26, 3, shstrOff, uint64(len(shstr)), 0, 0)      // .shstrtab
	return b.Bytes()
}
