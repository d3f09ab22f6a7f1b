// Package cpu wraps the x86-64 instructions juice needs that Go cannot
// express: port I/O, model-specific registers, control registers, CPUID,
// the time-stamp counter, the hardware random-number instructions and the
// interrupt flag. Every routine is a leaf written in Go assembly
// (cpu_amd64.s), is //go:nosplit-safe (NOSPLIT, no frame), allocates nothing
// and may be called from interrupt, syscall and exit context.
//
// Privileged routines (port I/O, MSRs, control registers, HLT, CLI/STI,
// descriptor tables) fault when run as a normal Linux process: host tests
// must not call them. CPUID, RDTSC, RDRAND and RDSEED work anywhere.
package cpu

// CPUID executes CPUID with EAX=leaf and ECX=sub and returns EAX..EDX.
func CPUID(leaf, sub uint32) (a, b, c, d uint32)

// RDTSC returns the time-stamp counter.
func RDTSC() uint64

// RDRAND64 executes RDRAND; ok is the carry flag (false: no value now).
func RDRAND64() (v uint64, ok bool)

// RDSEED64 executes RDSEED; ok is the carry flag (false: no value now).
func RDSEED64() (v uint64, ok bool)

// RDMSR reads model-specific register msr (ring 0 only).
func RDMSR(msr uint32) uint64

// WRMSR writes v to model-specific register msr (ring 0 only).
func WRMSR(msr uint32, v uint64)

// Inb reads a byte from an I/O port (ring 0 or IOPL 3 only).
func Inb(port uint16) uint8

// Outb writes a byte to an I/O port.
func Outb(port uint16, v uint8)

// Inw reads a 16-bit word from an I/O port.
func Inw(port uint16) uint16

// Outw writes a 16-bit word to an I/O port.
func Outw(port uint16, v uint16)

// Inl reads a 32-bit word from an I/O port.
func Inl(port uint16) uint32

// Outl writes a 32-bit word to an I/O port.
func Outl(port uint16, v uint32)

// Halt executes HLT: the CPU sleeps until the next interrupt (ring 0).
func Halt()

// HaltForever disables interrupts and halts in a loop; it never returns.
func HaltForever()

// Cli clears the interrupt flag.
func Cli()

// Sti sets the interrupt flag.
func Sti()

// StiHalt executes STI; HLT back to back, so that an interrupt pending at
// the STI is taken only once the CPU sleeps, then CLI: the idle wait.
func StiHalt()

// Pause executes PAUSE (spin-wait hint).
func Pause()

// Flags returns RFLAGS.
func Flags() uint64

// ReadCR0 returns CR0.
func ReadCR0() uint64

// WriteCR0 loads CR0.
func WriteCR0(v uint64)

// ReadCR2 returns CR2, the faulting address of the last page fault.
func ReadCR2() uint64

// ReadCR3 returns CR3, the page-table root.
func ReadCR3() uint64

// WriteCR3 loads CR3, flushing non-global TLB entries.
func WriteCR3(v uint64)

// ReadCR4 returns CR4.
func ReadCR4() uint64

// WriteCR4 loads CR4.
func WriteCR4(v uint64)

// Invlpg invalidates the TLB entry for the page holding virtual address va.
func Invlpg(va uintptr)

// Xgetbv reads extended control register xcr.
func Xgetbv(xcr uint32) uint64

// Xsetbv writes extended control register xcr.
func Xsetbv(xcr uint32, v uint64)
