package image

import "fmt"

// Kind classifies why Patch or Verify refused an image. Every validation
// check has its own Kind so that callers and tests can tell failures apart
// without matching message text.
type Kind int

// The validation failures Patch and Verify report.
const (
	KindTruncated     Kind = iota + 1 // a header, table, section or segment extends past the end of the file
	KindNotELF                        // the file does not start with the ELF magic
	KindClass                         // EI_CLASS is not ELFCLASS64
	KindData                          // EI_DATA is not little-endian
	KindIdent                         // EI_VERSION, e_version, EI_OSABI or EI_ABIVERSION unexpected
	KindType                          // e_type is not ET_EXEC
	KindMachine                       // e_machine is not EM_X86_64
	KindFlags                         // e_flags is not 0
	KindHeaderSize                    // e_ehsize, e_phentsize or e_shentsize unexpected
	KindPhdrTable                     // program header table not where the Go linker puts it
	KindShdrTable                     // section header table not where the Go linker puts it
	KindProgHeaders                   // program header types or order differ from the Go linker's
	KindPhdrSegment                   // the PT_PHDR segment does not describe the program headers
	KindPaddr                         // a PT_LOAD has p_paddr != p_vaddr
	KindSegmentSize                   // a PT_LOAD has p_filesz > p_memsz
	KindSegmentRange                  // a PT_LOAD lies outside [1 MiB, 4 GiB)
	KindSegmentOrder                  // PT_LOADs are unsorted or overlap
	KindSegmentAlign                  // a PT_LOAD's alignment is inconsistent
	KindFirstLoad                     // the first PT_LOAD does not start at file offset 0
	KindSections                      // section headers differ from the Go linker's layout
	KindText                          // .text is missing or not where the Go linker puts it
	KindSymtab                        // .symtab or its string table is missing or malformed
	KindEntryRange                    // e_entry is >= 4 GiB or outside executable code
	KindSymbolMissing                 // the entry symbol is not in .symtab
	KindEntryMismatch                 // e_entry differs from the entry symbol's value
	KindNote                          // no usable PT_NOTE covering .note.go.buildid
	KindNoteSize                      // the PT_NOTE is too small for the PVH note and padding
	KindNoteContent                   // the PT_NOTE does not hold the Go build-id note (e.g. already patched)
	KindBootConflict                  // the input already holds a boot header QEMU or GRUB would pick up
	KindNoGap                         // no unused 8-aligned gap for the multiboot headers
	KindGapNotZero                    // the gap for the multiboot headers is not all zero
	KindNotFlat                       // file-backed segments do not map file to memory at one offset (multiboot v1)
	KindVerify                        // the patched image failed re-validation
)

var kindNames = [...]string{
	KindTruncated:     "truncated",
	KindNotELF:        "not-elf",
	KindClass:         "class",
	KindData:          "data",
	KindIdent:         "ident",
	KindType:          "type",
	KindMachine:       "machine",
	KindFlags:         "flags",
	KindHeaderSize:    "header-size",
	KindPhdrTable:     "phdr-table",
	KindShdrTable:     "shdr-table",
	KindProgHeaders:   "prog-headers",
	KindPhdrSegment:   "phdr-segment",
	KindPaddr:         "paddr",
	KindSegmentSize:   "segment-size",
	KindSegmentRange:  "segment-range",
	KindSegmentOrder:  "segment-order",
	KindSegmentAlign:  "segment-align",
	KindFirstLoad:     "first-load",
	KindSections:      "sections",
	KindText:          "text",
	KindSymtab:        "symtab",
	KindEntryRange:    "entry-range",
	KindSymbolMissing: "symbol-missing",
	KindEntryMismatch: "entry-mismatch",
	KindNote:          "note",
	KindNoteSize:      "note-size",
	KindNoteContent:   "note-content",
	KindBootConflict:  "boot-conflict",
	KindNoGap:         "no-gap",
	KindGapNotZero:    "gap-not-zero",
	KindNotFlat:       "not-flat",
	KindVerify:        "verify",
}

// String returns a short name for the kind.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is the error type returned by Patch and Verify. Msg names the
// field, the value found and the value expected.
type Error struct {
	Kind Kind
	Msg  string
}

// Error implements the error interface.
func (e *Error) Error() string { return "postlink: " + e.Msg }

// layoutChanged is appended to messages about checks that only fail when
// the Go linker's output layout differs from what this package understands.
const layoutChanged = ": the Go linker's layout changed"

func errf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

func layoutErrf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...) + layoutChanged}
}
