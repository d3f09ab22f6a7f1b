package main

import (
	"log"
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
