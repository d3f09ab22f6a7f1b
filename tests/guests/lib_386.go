package main

// Routines shared by the guests (lib_386.s). They run in 32-bit protected
// mode with a stack and keep every register they do not return.

// write prints CX bytes from SI to COM1.
func write()

// puts prints the NUL-terminated string at SI to COM1.
func puts()

// puthex prints EAX as 0x followed by 8 lowercase hex digits.
func puthex()

// exit writes EAX to the isa-debug-exit port, which stops the VM; if it
// does not, it halts forever with interrupts off.
func exit()

// loadgdt installs gdt and reloads every segment register from it: CS
// with the 32-bit code selector, the others with the 32-bit data one.
func loadgdt()

// stack is the boot stack (guest.h's SETUP points ESP at its top).
var stack [8192]byte

// gdt is the descriptor table loadgdt installs. The selectors are named
// in guest.h.
var gdt = [6]uint64{
	0,                  // null descriptor
	0x00CF9A000000FFFF, // 0x08: 32-bit code, base 0, limit 4 GiB
	0x00CF92000000FFFF, // 0x10: 32-bit data, base 0, limit 4 GiB
	0x00009A008000FFFF, // 0x18: 16-bit code, base 0x8000, limit 64 KiB (modes' real-mode code)
	0x000092000000FFFF, // 0x20: 16-bit data, base 0, limit 64 KiB
	0x00AF9A000000FFFF, // 0x28: 64-bit code (L=1)
}

// hexDigits are puthex's digits.
var hexDigits = "0123456789abcdef"

// newline ends a line.
var newline = "\n"

// putdec prints EDX:EAX as an unsigned decimal number.
func putdec()
