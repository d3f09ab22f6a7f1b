package main

// hypercall is the entry point of the hypercall guest (hypercall_386.s).
func hypercall()

// Lines hypercall prints.
var (
	hypercallVersion = "hypercall: version "
	hypercallBad     = "hypercall: FAIL: version is not 1\n"
	hypercallExit    = "hypercall: exit with status 7\n"
	hypercallAlive   = "hypercall: FAIL: still running after the exit hypercall\n"
)
