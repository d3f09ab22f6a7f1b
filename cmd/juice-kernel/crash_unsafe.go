package main

import (
	"log"
	"syscall"
	"unsafe"
)

// crash writes through a non-canonical pointer: a general-protection
// fault in Go code, which juice must report with its registers and the
// goroutine's stack trace before it stops (juice.mode=crashtest).
//
//go:noinline
func crash() {
	log.Printf("crashtest: writing through a non-canonical pointer")
	bad := uintptr(1) << 63
	p := (*uint64)(unsafe.Add(unsafe.Pointer(nil), bad))
	*p = 42
	log.Printf("crashtest: survived a #GP: juice did not stop")
}

// badSyscall issues system call 500, which Linux does not have either:
// juice must name it and the caller's PC, then stop (juice.mode=syscalltest).
func badSyscall() {
	log.Printf("syscalltest: calling system call 500")
	syscall.RawSyscall(500, 0, 0, 0)
	log.Printf("syscalltest: survived an unknown system call: juice did not stop")
}

// keep holds what exhaustMemory allocates, so the GC cannot free it.
var keep [][]byte

// exhaustMemory allocates and touches memory until juice runs out
// (juice.mode=oomtest): juice must say so clearly and stop.
func exhaustMemory() {
	log.Printf("oomtest: allocating until memory runs out")
	for i := 0; ; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		keep = append(keep, b)
	}
}
