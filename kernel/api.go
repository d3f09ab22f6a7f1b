package kernel

import (
	"fmt"
	"os"
	"strings"

	crand "crypto/rand"
	"juice/boot/cmdline"
	"juice/cpu"
	"juice/svm"
	"juice/vmx"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The kernel's API for Go code running on the runtime (thread context).

// Now returns the monotonic time since juice's entry, in nanoseconds.
func Now() uint64 { return nanotime() }

// stamp formats the console timestamp "[    S.UUUUUU] ".
func stamp(ns uint64) string {
	return fmt.Sprintf("[%5d.%06d] ", ns/1e9, ns%1e9/1000)
}

// LogWriter prefixes every line written through it with the monotonic
// timestamp and writes each line to the console in one write. Use it as
// the log package's output.
type LogWriter struct{}

func (LogWriter) Write(p []byte) (int, error) {
	s := string(p)
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		line := s
		if i >= 0 {
			line, s = s[:i+1], s[i+1:]
		} else {
			s = ""
		}
		b.WriteString(stamp(nanotime()))
		b.WriteString(line)
		if i < 0 {
			b.WriteByte('\n')
		}
	}
	if _, err := os.Stdout.WriteString(b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Logf prints one timestamped console line.
func Logf(format string, args ...any) {
	LogWriter{}.Write([]byte(fmt.Sprintf(format, args...)))
}

// TestMode returns the fault-injection mode the command line asked for:
// "crashtest", "syscalltest", "oomtest", or "" for none.
func TestMode() string {
	switch config.Mode {
	case cmdline.ModeCrashtest, cmdline.ModeSyscalltest, cmdline.ModeOOMtest, cmdline.ModeEntrytest:
		return config.Mode.String()
	}
	return ""
}

// SelftestMode reports whether the command line asked for the self-test
// (juice.mode=smpfailtest runs it too, on the CPUs that started).
func SelftestMode() bool {
	return config.Mode == cmdline.ModeSelftest || config.Mode == cmdline.ModeSMPFailtest
}

// StressMode reports whether the command line asked for the SMP stress
// run (juice.mode=smpstress).
func StressMode() bool { return config.Mode == cmdline.ModeSMPStress }

// SpreadVCPUs reports whether guests' vCPUs should be spread over every
// CPU (the default, or juice.vcpus=spread) or all kept on the boot CPU
// (juice.vcpus=boot).
func SpreadVCPUs() bool { return config.VCPUs != cmdline.VCPUsBoot }

// StressSeconds is how long the stress run should last (juice.stress);
// 0: the caller's default.
func StressSeconds() int { return int(config.StressSeconds) }

// MainStarted records that the Go main function runs, reports the time
// from juice's entry to here and applies juice's collector policy
// (tuneRuntime).
func MainStarted() {
	mainTSC = cpu.RDTSC()
	tuneRuntime()
	ns := ticksToNs(mainTSC - startTSC)
	f, s := Counters()
	Logf("boot: entry to main %d.%03d ms", ns/1e6, ns%1e6/1e3)
	Logf("boot: runtime start-up took %d page faults and %d system calls", f, s)
}

// Counters returns the page faults and system calls served so far.
func Counters() (faults, syscalls uint64) {
	for _, n := range syscallCount {
		syscalls += n
	}
	return pageFaults, syscalls
}

// EntryToMainNs is the time from juice's entry to MainStarted.
func EntryToMainNs() uint64 { return ticksToNs(mainTSC - startTSC) }

// TSCHz and TSCSource describe the calibrated clock.
func TSCHz() uint64     { return tscHz }
func TSCSource() string { return tscSource }
func TimerMode() string {
	if timerDeadlineMode {
		return "TSC-deadline"
	}
	return "one-shot"
}

// UsableRAM is the RAM the boot loader reported usable.
func UsableRAM() uint64 { return memReport.usable }

// FreeRAM is the RAM juice has not handed out.
func FreeRAM() uint64 { return frames.FreeCount() * 4096 }

// Footprint is the memory juice uses after boot: everything out of the
// usable RAM that is no longer free (image, page tables, the runtime's
// committed heap and stacks).
func Footprint() uint64 { return memReport.usable - FreeRAM() }

// RuntimeCommitted is the memory backing the runtime's mappings.
func RuntimeCommitted() uint64 { return space.Committed() }

// Features describes the CPU and its virtualization support.
type Features struct {
	Vendor, Brand string
	VMX           vmx.Caps
	SVM           svm.Caps
}

// ProbeFeatures reads CPUID and, where the CPU has them, the VMX
// capability MSRs and the SVM VM_CR register.
func ProbeFeatures() Features {
	var f Features
	f.Vendor = string(cpuVendor[:])
	f.Brand = strings.TrimSpace(strings.TrimRight(string(cpuBrand[:]), "\x00"))
	_, _, c1, _ := cpu.CPUID(1, 0)
	if vmx.Supported(c1) {
		m := vmx.ReadMSRs(cpu.RDMSR)
		f.VMX = vmx.Decode(c1, &m)
	}
	maxExt, _, _, _ := cpu.CPUID(0x80000000, 0)
	if maxExt >= 0x8000000a {
		_, _, e1, _ := cpu.CPUID(0x80000001, 0)
		if svm.Supported(e1) {
			a, b, _, d := cpu.CPUID(0x8000000a, 0)
			f.SVM = svm.Decode(e1, a, b, d, cpu.RDMSR(svm.MSRVMCR))
		}
	}
	return f
}

// Banner prints who and where juice is.
func Banner(version string) {
	f := ProbeFeatures()
	Logf("juice %s on %s %s", version, strings.TrimSpace(f.Vendor), f.Brand)
	virt := []string{}
	if f.VMX.Present {
		virt = append(virt, f.VMX.String())
	}
	if f.SVM.Present {
		virt = append(virt, f.SVM.String())
	}
	if len(virt) == 0 {
		virt = append(virt, "no hardware virtualization (neither VMX nor SVM)")
	}
	Logf("cpu: %s", strings.Join(virt, "; "))
	Logf("cpu: TSC %d.%03d MHz (from %s), timer %s", tscHz/1e6, tscHz%1e6/1e3, tscSource, TimerMode())
	online, listed := CPUs()
	plural := "s"
	if online == 1 {
		plural = ""
	}
	Logf("memory: %d MiB usable, %d KiB in use after boot, %d CPU%s running (of %d in the MADT)",
		memReport.usable>>20, Footprint()>>10, online, plural, listed)
}

// ConsoleRead moves the bytes waiting in the console UART's receiver into
// b and returns how many; it never blocks (0: nothing waiting). Host
// console input for the VMs is polled through it.
func ConsoleRead(b []byte) int {
	n := 0
	for n < len(b) {
		c, ok := uart0.TryReadByte()
		if !ok {
			break
		}
		b[n] = c
		n++
	}
	return n
}

// Entropy fills p with random bytes from the CPU's entropy source
// (RDSEED, else RDRAND), for the guests' virtio-rng devices. On a CPU
// with neither it falls back to a ChaCha8 stream seeded once from the
// kernel's getrandom. p may be any memory (guest RAM included): unlike
// crypto/rand it makes no system call on p.
func Entropy(p []byte) {
	for len(p) > 0 {
		v, ok := hwRandom()
		if !ok {
			fallbackEntropy(p)
			return
		}
		for i := 0; i < 8 && len(p) > 0; i++ {
			p[0] = byte(v >> (8 * i))
			p = p[1:]
		}
	}
}

var entropyFallback struct {
	sync.Mutex
	r *rand.ChaCha8
}

func fallbackEntropy(p []byte) {
	f := &entropyFallback
	f.Lock()
	defer f.Unlock()
	if f.r == nil {
		var seed [32]byte
		crand.Read(seed[:])
		f.r = rand.NewChaCha8(seed)
	}
	f.r.Read(p)
}

// OnlineCPUs returns the numbers of the CPUs juice runs on.
func OnlineCPUs() []int {
	var out []int
	m := atomic.LoadUint64(&onlineMask)
	for k := 0; k < maxCPUs; k++ {
		if m&(1<<uint(k)) != 0 {
			out = append(out, k)
		}
	}
	return out
}

// PinThread binds the calling thread to CPU n and returns once it runs
// there. The calling goroutine must be locked to its thread
// (runtime.LockOSThread), or the binding lands on whichever thread it
// happens to run on.
func PinThread(n int) error {
	if n < 0 || n >= maxCPUs || atomic.LoadUint64(&onlineMask)&(1<<uint(n)) == 0 {
		return fmt.Errorf("cpu %d is not online", n)
	}
	var s unix.CPUSet
	s.Set(n)
	if err := unix.SchedSetaffinity(0, &s); err != nil {
		return fmt.Errorf("binding to cpu %d: %w", n, err)
	}
	if got := CPU(); got != n {
		return fmt.Errorf("bound to cpu %d but running on cpu %d", n, got)
	}
	return nil
}

// UnpinThread lets the calling thread run on any CPU again.
func UnpinThread() {
	var s unix.CPUSet
	for _, k := range OnlineCPUs() {
		s.Set(k)
	}
	unix.SchedSetaffinity(0, &s)
}
