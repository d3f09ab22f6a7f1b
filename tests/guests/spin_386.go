package main

// spin is the entry point of the spin guest (spin_386.s).
func spin()

// Lines spin prints.
var (
	spinStart = "spin start\n"
	spinRound = "spin round "
	spinDone  = "spin done\n"
)
