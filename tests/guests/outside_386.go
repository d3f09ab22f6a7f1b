package main

// outside is the entry point of the outside guest (outside_386.s).
func outside()

// Lines outside prints.
var (
	outsideStart = "outside: writing 0x40000000\n"
	outsideRead  = "outside: FAIL: the write went through; reading 0x40000000\n"
	outsideValue = "outside: FAIL: read "
)
