package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/launch"
)

// defaultBenchGuest is the bench guest `make guests` builds, relative to
// the repository root.
const defaultBenchGuest = "build/guests/bench.elf"

// benchVMName is the bench guest's VM name under juice.
const benchVMName = "bench"

// benchVMMemory is the bench VM's RAM under juice, and the plain QEMU
// machine's.
const (
	benchVMMemory    = "16M"
	benchPlainMemory = "64M"
)

// vmBenchConfig is what `juice bench --vm` measures.
type vmBenchConfig struct {
	runs         int
	juice, guest string
	mem          string // juice's machine
	timeout      time.Duration
}

// vmBenchRun is one good run: the guest under juice and on plain QEMU.
type vmBenchRun struct {
	juice, plain launch.VMBench
	exits        uint64  // juice's count for the VM
	mhz          float64 // juice's TSC frequency
}

// guestSeconds is the guest's run time under juice, in seconds.
func (r vmBenchRun) guestSeconds() float64 { return r.juice.TotalTicks / (r.mhz * 1e6) }

// exitsPerSecond is the juice run's exit rate over the guest's run time.
func (r vmBenchRun) exitsPerSecond() float64 { return float64(r.exits) / r.guestSeconds() }

// cmdBenchVM implements `juice bench --vm`: runs alternating boots of the
// bench guest under juice (PVH, QEMU TCG -cpu max) and on plain QEMU TCG
// (the guest itself, by QEMU's multiboot loader), and prints per kind of
// operation juice's and plain QEMU's median TSC ticks per operation and
// their ratio, plus juice's exits per second of guest run time.
func cmdBenchVM(c vmBenchConfig, stdout, stderr io.Writer) int {
	for _, f := range []string{c.juice, c.guest} {
		if _, err := os.Stat(f); err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := launch.BuildBundle([]launch.VMSpec{{Name: benchVMName, Kernel: c.guest, Memory: benchVMMemory}})
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	bundle, err := launch.WriteBundle(dir, b)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench --vm: %d runs of %s under juice (%s by PVH, -m %s; VM %s) and on plain QEMU (multiboot, -m %s), alternating; QEMU TCG -cpu max\n",
		c.runs, c.guest, c.juice, c.mem, benchVMMemory, benchPlainMemory)
	var good []vmBenchRun
	failed := 0
	for i := 1; i <= c.runs; i++ {
		var run vmBenchRun
		texts, problem, killed := benchBoot(ctx, launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem,
			Initrd: bundle, Timeout: c.timeout}, stderr, i, "juice")
		if killed {
			fmt.Fprintln(stderr, "juice bench: interrupted")
			return launch.ExitKilled
		}
		if problem == "" {
			run, problem = juiceFigures(texts)
		}
		if problem == "" {
			var plain []string
			plain, problem, killed = benchBoot(ctx, launch.Config{Kernel: c.guest, Boot: launch.BootPVH, Mem: benchPlainMemory,
				Timeout: c.timeout}, stderr, i, "plain QEMU")
			if killed {
				fmt.Fprintln(stderr, "juice bench: interrupted")
				return launch.ExitKilled
			}
			if problem == "" {
				run.plain, problem = plainFigures(plain)
			}
		}
		if problem != "" {
			failed++
			fmt.Fprintf(stdout, "  run %d/%d: FAILED: %s\n", i, c.runs, problem)
			continue
		}
		good = append(good, run)
		fmt.Fprintf(stdout, "  run %d/%d: juice: %s, %d exits in %.1f ms (%.0f exits/s); plain QEMU: %s\n",
			i, c.runs, kindFigures(run.juice), run.exits, run.guestSeconds()*1000, run.exitsPerSecond(), kindFigures(run.plain))
	}
	if len(good) > 0 {
		printVMBenchMedians(stdout, good)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "juice bench: %d of %d runs failed\n", failed, c.runs)
		return 1
	}
	return 0
}

// benchBoot runs one emulator to its end and returns its console texts;
// problem says why the run does not count (its last console lines then
// go to stderr); killed is true when the user interrupted it.
func benchBoot(ctx context.Context, cfg launch.Config, stderr io.Writer, run int, what string) (texts []string, problem string, killed bool) {
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", what, err), false
	}
	r := m.Wait()
	if r.Outcome == launch.Killed {
		return nil, "", true
	}
	texts = m.Console.Texts()
	if !r.Exited() || r.Status != 0 {
		lines := m.Console.Lines()
		fmt.Fprintf(stderr, "  last console lines of run %d (%s):\n", run, what)
		for _, l := range lines[max(0, len(lines)-benchTail):] {
			fmt.Fprintf(stderr, "    %s\n", launch.Clean(l))
		}
		if s := strings.TrimSpace(r.Stderr); s != "" {
			fmt.Fprintf(stderr, "  QEMU stderr: %s\n", s)
		}
		return texts, fmt.Sprintf("%s: %v", what, r), false
	}
	return texts, "", false
}

// juiceFigures extracts a juice run's figures from its console texts.
func juiceFigures(texts []string) (vmBenchRun, string) {
	var run vmBenchRun
	var err error
	run.juice, err = launch.ParseVMBench(texts, launch.GuestLinePrefix(benchVMName))
	switch {
	case err != nil:
		return run, "juice: " + err.Error()
	case !run.juice.Juice:
		return run, "juice: the guest did not recognise juice"
	case run.juice.TotalTicks <= 0:
		return run, "juice: the guest's total is 0 ticks"
	}
	var ok bool
	if run.exits, ok = launch.VMExits(texts, benchVMName); !ok {
		return run, fmt.Sprintf("juice: no \"juice: vm %s: N exits\" line", benchVMName)
	}
	if run.mhz, ok = launch.TSCMHz(texts); !ok {
		return run, `juice: no "cpu: TSC F MHz" line`
	}
	return run, ""
}

// plainFigures extracts a plain QEMU run's figures.
func plainFigures(texts []string) (launch.VMBench, string) {
	b, err := launch.ParseVMBench(texts, "")
	switch {
	case err != nil:
		return b, "plain QEMU: " + err.Error()
	case b.Juice:
		return b, "plain QEMU: the guest says it runs under juice"
	}
	return b, ""
}

// kindFigures formats "cpuid N, pio N, ... ticks/op" for the kinds b has.
func kindFigures(b launch.VMBench) string {
	var parts []string
	for _, k := range launch.VMBenchKinds {
		if v, ok := b.TicksPerOp[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	return strings.Join(parts, ", ") + " ticks/op"
}

// printVMBenchMedians prints the table of medians over the good runs.
func printVMBenchMedians(w io.Writer, runs []vmBenchRun) {
	fmt.Fprintf(w, "medians over %d good runs, TSC ticks per operation (the guest's loop included):\n", len(runs))
	fmt.Fprintf(w, "  %-10s %12s %12s %12s\n", "kind", "juice", "plain QEMU", "juice/QEMU")
	for _, k := range launch.VMBenchKinds {
		var j, p []float64
		for _, r := range runs {
			if v, ok := r.juice.TicksPerOp[k]; ok {
				j = append(j, v)
			}
			if v, ok := r.plain.TicksPerOp[k]; ok {
				p = append(p, v)
			}
		}
		jm, jerr := launch.Median(j)
		pm, perr := launch.Median(p)
		col := func(v float64, err error) string {
			if err != nil {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		ratio := "-"
		if jerr == nil && perr == nil && pm > 0 {
			ratio = fmt.Sprintf("%.1fx", jm/pm)
		}
		fmt.Fprintf(w, "  %-10s %12s %12s %12s\n", k, col(jm, jerr), col(pm, perr), ratio)
	}
	var rate, exits, ms, mhz []float64
	for _, r := range runs {
		rate = append(rate, r.exitsPerSecond())
		exits = append(exits, float64(r.exits))
		ms = append(ms, r.guestSeconds()*1000)
		mhz = append(mhz, r.mhz)
	}
	printMedian(w, "juice: exits per second", rate, "exits/s")
	printMedian(w, "juice: exits per run", exits, "exits")
	printMedian(w, "juice: guest run time", ms, "ms")
	printMedian(w, "juice: TSC frequency", mhz, "MHz")
}
