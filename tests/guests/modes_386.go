package main

// modes is the entry point of the modes guest (modes_386.s), in 32-bit
// protected mode.
func modes()

// realmode is the 16-bit code modes copies to 0x8000 and runs, first in
// 16-bit protected mode, then in real mode.
func realmode()

// backto32 is where realmode returns to 32-bit protected mode.
func backto32()

// long64 is modes' 64-bit code.
func long64()

// savedSP holds modes' ESP while it runs in real mode.
var savedSP uint32

// pageTables is room for modes' PML4, PDPT and page directory plus the
// slack to align them to 4 KiB.
var pageTables [4*4096 - 1]byte

// Lines modes prints. realMode is copied into the 16-bit code (see
// modes_386.s), the others are printed by ·write or by long64's loop.
var (
	modesProtected = "modes: protected mode\n"
	modesBack      = "modes: protected mode again\n"
	modesLong      = "modes: long mode\n"
	modesNotLong   = "modes: NOT in 64-bit mode\n"
)
