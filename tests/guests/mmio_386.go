package main

// mmio is the entry point of the mmio guest (mmio_386.s).
func mmio()

// Lines mmio prints.
var (
	mmioStart = "mmio: reading 0xd0000000\n"
	mmioValue = "mmio: FAIL: read "
	mmioWrite = "mmio: FAIL: the read went through; writing\n"
)
