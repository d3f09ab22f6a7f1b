package main

// triplefault is the entry point of the triplefault guest
// (triplefault_386.s).
func triplefault()

// emptyIDTR is an IDT register operand with limit 0 and base 0: no gate
// is valid.
var emptyIDTR [8]byte

// Lines triplefault prints.
var (
	triplefaultStart = "triplefault: empty IDT, INT3\n"
	triplefaultInt3  = "triplefault: FAIL: survived INT3, dividing by zero\n"
	triplefaultDiv   = "triplefault: FAIL: survived a divide error\n"
)
