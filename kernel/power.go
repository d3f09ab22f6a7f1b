package kernel

import (
	"juice/boot/cmdline"
	"juice/cpu"
	"juice/drivers/acpi"
)

// Power-off and halt. Under QEMU juice leaves through the isa-debug-exit
// port (0xf4) when the machine has one, which carries the exit status out;
// everywhere it then tries ACPI S5 (the DSDT's \_S5 object), then Bochs's
// shutdown port, and halts if the machine is still running.

var (
	acpiTables acpi.Tables
	acpiOK     bool
	emulator   emulatorKind
	crashing   bool
)

type emulatorKind uint8

const (
	emuNone emulatorKind = iota
	emuQEMU
	emuBochs
)

// detectEmulator reads the hypervisor CPUID leaf: QEMU's TCG and KVM
// announce themselves there. Bochs has no leaf; juice treats it as bare
// metal except for its shutdown port, which is harmless elsewhere.
//
//go:nosplit
func detectEmulator() emulatorKind {
	_, _, c, _ := cpu.CPUID(1, 0)
	if c&(1<<31) == 0 {
		return emuNone
	}
	_, b, c2, d := cpu.CPUID(0x40000000, 0)
	// "TCGTCGTCGTCG" or "KVMKVMKVM\0\0\0"
	if (b == 0x54474354 && c2 == 0x43544743 && d == 0x47435447) ||
		(b == 0x4b4d564b && c2 == 0x564b4d56 && d == 0x4d) {
		return emuQEMU
	}
	return emuNone
}

// powerOff stops the machine with status. It does not return. Kernel
// context, also usable before the runtime starts.
//
//go:nosplit
func powerOff(status int64) {
	cpu.Cli()
	drainConsole()
	if emulator == emuQEMU {
		cpu.Outl(0xf4, uint32(status))
	}
	if acpiOK {
		acpiTables.PowerOff(&ports, &physMem)
		for i := 0; i < 1000000; i++ {
			cpu.Pause()
		}
	}
	// Bochs: writing "Shutdown" to port 0x8900 ends the emulator.
	const s = "Shutdown"
	for i := 0; i < len(s); i++ {
		cpu.Outb(0x8900, s[i])
	}
	kputs("juice: power-off failed; halting\n")
	cpu.HaltForever()
}

// drainConsole waits (boundedly) until the UART has sent its last byte,
// so that the final line is not cut off when the machine stops.
//
//go:nosplit
func drainConsole() {
	lsr := uart0.Port() + 5
	for i := 0; i < 1<<16; i++ {
		if cpu.Inb(lsr)&0x40 != 0 { // TEMT
			return
		}
	}
}

// exitGroup is the runtime leaving: main returned or os.Exit was called,
// or it crashed (status 2). Kernel context.
//
//go:nosplit
func exitGroup(status int64) {
	if crashing {
		fatalBegin()
		kputs("the Go runtime exited with status ")
		kputDec(status)
		kputs(" after a CPU exception")
		fatalEnd()
	}
	kputs("juice: power off, status ")
	kputDec(status)
	kputs("\n")
	powerOff(status)
}

// fatalBegin starts a fatal message; fatalEnd finishes it and stops juice
// as the command line asks (halt by default, power off with status 127
// with juice.panic=poweroff). Kernel context.
//
//go:nosplit
func fatalBegin() {
	if !atBOL {
		kputs("\n")
	}
	kputs("juice: fatal: ")
}

//go:nosplit
func fatalEnd() {
	kputs("\n")
	stopOthers()
	if config.Panic == cmdline.PanicPoweroff {
		kputs("juice: power off, status 127\n")
		powerOff(127)
	}
	kputs("juice: halted\n")
	cpu.HaltForever()
}

//go:nosplit
func fatal(msg string) {
	fatalBegin()
	kputs(msg)
	fatalEnd()
}
