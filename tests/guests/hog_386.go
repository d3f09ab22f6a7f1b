package main

// hog is the entry point of the hog guest (hog_386.s).
func hog()

// hogStart is the line hog prints before it spins forever.
var hogStart = "hog start\n"
