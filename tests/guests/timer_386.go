package main

// timer is the entry point of the timer guest (timer_386.s).
func timer()

// tick is timer's handler for vector 0x30.
func tick()

// unexpected is timer's handler for every other vector.
func unexpected()

// setgate points the IDT gate at DI to the handler at AX.
func setgate()

// idt is timer's interrupt descriptor table: 256 32-bit interrupt gates.
var idt [256 * 8]byte

// ticks counts calls of tick.
var ticks uint32

// Lines timer prints.
var (
	timerArm        = "timer: one-shot timer, vector 0x30, 1000 us\n"
	timerTick       = "timer: tick\n"
	timerDone       = "timer: done\n"
	timerNoTick     = "timer: FAIL: woke up without a tick\n"
	timerUnexpected = "timer: FAIL: unexpected interrupt or exception\n"
)
