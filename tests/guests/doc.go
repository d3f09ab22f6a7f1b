// Guests are juice's test guests: tiny multiboot v1 kernels written in Go
// assembly for GOARCH=386, built by the Go toolchain alone (no binutils,
// no C compiler).
//
// Every guest is one assembly entry point in this package, NAME_386.s
// (with its strings in NAME_386.go), linked on its own:
//
//	GOOS=linux GOARCH=386 CGO_ENABLED=0 go build -ldflags "-E main.NAME -T 0x100000"
//
// The Go runtime is linked in but never runs: the linker's entry point is
// the guest's TEXT symbol. tests/guests/mkguest then rewrites the linked
// ELF into a multiboot v1 ELF32 (a multiboot header in the first 8 KiB,
// the original loadable segments from 1 MiB up) that juice's loader
// boots; `make guests` writes them all to build/guests/NAME.elf.
//
// Conventions (guest.h, lib_386.s):
//   - A guest starts as multiboot leaves it: 32-bit protected mode,
//     paging off, EAX = 0x2BADB002, EBX = the multiboot information. It
//     first disables interrupts and moves ESP to the boot stack (SETUP).
//   - It reports on COM1 (port 0x3f8), one line per marker, and ends by
//     writing its status to the isa-debug-exit port 0xf4: 0 is a pass.
//     Guest lines reach juice's console as "[vmname] text".
//   - Code that runs in 64-bit mode is written with instructions whose
//     32-bit encoding means the same in 64-bit mode (no absolute memory
//     operands, which are RIP-relative there; no one-byte INC/DEC, which
//     are REX prefixes there); 16-bit code is written as BYTE sequences.
//   - Low memory: the loader puts the multiboot information just above
//     0x1000; the real-mode part of `modes` is copied to 0x8000 and uses a
//     stack below 0x7000. Everything else lives in the guest's own data
//     and bss.
//
// The guests (see each file's comment): hello, modes, cpuid, mmio, timer,
// hypercall, triplefault, outside, spin, bench, hostile, hog, ipi.
package main

// main is never called: each guest's entry point is its own assembly
// function (the linker's -E flag). It exists because the package must be
// a command to be linked.
func main() {}
