// Package boot holds juice's machine entry point: the 32-bit code that both
// boot protocols jump to (PVH and multiboot2), the switch to long mode and the
// hand-off to the kernel's 64-bit entry (juice/kernel.entry64).
//
// The entry runs with no stack, paging off and no idea where it was loaded
// beyond the fixed link address. Go assembly is 64-bit assembly, so the
// 32-bit part is written only with instructions whose encoding is the same
// in both modes (no REX prefixes, no absolute memory operands, which Go
// turns into RIP-relative ones). Symbol addresses are computed at run time
// from a CALL/POP of the instruction pointer (see entry_amd64.s).
//
// The kernel ELF is linked with -T TextStart; the post-link tool
// (boot/image) checks that the first loaded page, holding the ELF header,
// sits at ImageBase, since the entry reads its own address from e_entry
// there before it has a stack.
package boot

// TextStart is the link address of .text (the -T flag).
const TextStart = 0x200000

// ImageBase is where the first PT_LOAD, which holds the ELF header, lands.
const ImageBase = TextStart - 0x1000

// BootStackSize is the size of the stack the entry code runs the kernel's
// pre-runtime start-up on.
const BootStackSize = 64 << 10

// entry32 is the 32-bit protected-mode entry point of both boot protocols
// (ELF e_entry and the PVH note). It never returns.
func entry32()

// entry64 is the first 64-bit code: it loads the data segments, enables
// SSE and jumps to the kernel. It never returns.
func entry64()

// Saved by entry32 before it touches EAX/EBX: the loader's hand-off
// registers and the time-stamp counter at entry.
var (
	entryEAX uint32
	entryEBX uint32
	entryTSC uint64
	// longModeTSC is the TSC on reaching 64-bit code.
	longModeTSC uint64
)

// LongModeTSC returns the time-stamp counter read when entry64 starts.
//
//go:nosplit
func LongModeTSC() uint64 { return longModeTSC }

// EntryRegs returns EAX and EBX as the boot loader left them: the magic
// value and the boot-information pointer.
//
//go:nosplit
func EntryRegs() (eax, ebx uint32) { return entryEAX, entryEBX }

// EntryTSC returns the time-stamp counter read by the first instructions of
// entry32.
//
//go:nosplit
func EntryTSC() uint64 { return entryTSC }

// BootPDPT returns the physical address of the boot page tables' PDPT, so
// that the kernel can extend the boot identity map beyond 4 GiB with 1 GiB
// pages before it builds its own tables.
func BootPDPT() uint64
