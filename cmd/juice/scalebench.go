package main

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// `juice bench --scale`: the same parallel workload in a JeOS guest with
// one vCPU and with two, on a juice machine with two CPUs, and the same
// guest directly on QEMU with one and two CPUs; the guest times the
// work itself. The workload is two jobs started together, each hashing
// a fixed amount of zeroes (dd from /dev/zero into md5sum): with one
// vCPU they take turns, with two they can run side by side.
//
// Every machine with two CPUs runs QEMU's multi-threaded TCG (one host
// thread per emulated CPU, launch.Config.MultiTCGThreads): QEMU's
// default with guests under juice, a single thread for all CPUs, can
// show no speed-up at all. QEMU 7.2's multi-threaded TCG now and then
// loses juice's translations after a #VMEXIT (juice triple-faults);
// such runs are counted and reported, not hidden.

// Scale-bench defaults.
const (
	// scaleBenchMiB is what each of the two jobs hashes.
	scaleBenchMiB = 16
	scaleVMMem    = "256M"
	scaleJuiceMem = "768M"
	scaleHostCPUs = 2
	// scaleTimeout bounds one boot and its work unless --timeout says
	// otherwise: the guest boots in about a minute under juice with
	// multi-threaded TCG, and the work on one vCPU takes minutes more.
	scaleTimeout = 6 * time.Minute
)

// scaleCommand is the guest's jeos.exec command for jobs of mib MiB: the
// uptime, the two jobs in parallel, the uptime.
func scaleCommand(mib int) string {
	job := fmt.Sprintf("dd if=/dev/zero bs=1M count=%d status=none | md5sum", mib)
	return "cat /proc/uptime; " + job + " & " + job + " & wait; cat /proc/uptime"
}

// scaleCmdline is the guest's command line.
func scaleCmdline(mib int) string {
	return `console=ttyS0 jeos.exec="` + scaleCommand(mib) + `" ` + jeos.PoweroffArg
}

// md5OnlyRE is md5sum's line for its standard input.
var md5OnlyRE = regexp.MustCompile(`^([0-9a-f]{32})(\s+-)?\s*$`)

// scaleWorkTime finds the work's guest-timed seconds in the guest's
// console lines (prefix removed): the two uptime lines around it, and
// two digests of mib MiB of zeroes between them.
func scaleWorkTime(lines []string, mib int) (float64, error) {
	want := fmt.Sprintf("%x", md5.Sum(make([]byte, mib<<20)))
	var ups []float64
	sums := 0
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if m := uptimeLineRE.FindStringSubmatch(l); m != nil {
			var v float64
			fmt.Sscan(m[1], &v)
			ups = append(ups, v)
		}
		if m := md5OnlyRE.FindStringSubmatch(l); m != nil {
			if m[1] != want {
				return 0, fmt.Errorf("a job's digest is %s, want %s", m[1], want)
			}
			sums++
		}
	}
	switch {
	case len(ups) != 2:
		return 0, fmt.Errorf("%d uptime lines, want 2", len(ups))
	case sums != 2:
		return 0, fmt.Errorf("%d digests, want 2", sums)
	case ups[1] <= ups[0]:
		return 0, fmt.Errorf("the work took %.2f s by the guest's clock", ups[1]-ups[0])
	}
	return ups[1] - ups[0], nil
}

// scaleKind is one of the four configurations.
type scaleKind struct {
	name  string
	juice bool
	vcpus int
}

// scaleKinds are the configurations, in the order each run boots them.
var scaleKinds = []scaleKind{
	{"juice, 1 vCPU", true, 1}, {"juice, 2 vCPUs", true, 2},
	{"QEMU, 1 CPU", false, 1}, {"QEMU, 2 CPUs", false, 2},
}

// scaleConfig is the launch configuration of one kind; bundles maps a
// vCPU count to its bundle.
func scaleConfig(c jeosBenchConfig, k scaleKind, img jeos.Image, mib int, bundles map[int]string) launch.Config {
	if k.juice {
		return launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, CPUs: scaleHostCPUs, MultiTCGThreads: true,
			Initrd: bundles[k.vcpus], Timeout: c.timeout}
	}
	return launch.Config{Kernel: img.Vmlinux, Boot: launch.BootPVH, Mem: c.vmMem, CPUs: k.vcpus, MultiTCGThreads: true,
		Initrd: img.Initrd, Append: scaleCmdline(mib), NoDebugExit: true, Timeout: c.timeout}
}

// scaleBoot runs one configuration and returns the work's seconds.
func scaleBoot(ctx context.Context, cfg launch.Config, k scaleKind, mib int) (float64, string, bool) {
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		return 0, err.Error(), false
	}
	res := m.Wait()
	if res.Outcome == launch.Killed {
		return 0, "", true
	}
	texts := m.Console.Texts()
	lines := texts
	if k.juice {
		lines = guestLines(texts, "jeos")
		if !res.Exited() || res.Status != 0 {
			return 0, fmt.Sprintf("juice did not end with status 0: %v%s", res, tail(texts)), false
		}
	} else if res.QEMUCode != 0 {
		return 0, fmt.Sprintf("QEMU did not exit 0: %v%s", res, tail(texts)), false
	}
	secs, err := scaleWorkTime(lines, mib)
	if err != nil {
		return 0, err.Error() + tail(texts), false
	}
	return secs, "", false
}

// scaleTable formats the medians (seconds per kind, 0 for none) as a
// table with the speed-ups and juice's times against QEMU's.
func scaleTable(med map[string]float64) string {
	var b strings.Builder
	row := func(name string, a, c float64, ratio string) {
		f := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", name, f(a), f(c), ratio)
	}
	x := func(a, c float64) string {
		if a == 0 || c == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/c)
	}
	fmt.Fprintf(&b, "  %-34s %10s %10s %10s\n", "", "1 vCPU", "2 vCPUs", "speed-up")
	j1, j2 := med["juice, 1 vCPU"], med["juice, 2 vCPUs"]
	q1, q2 := med["QEMU, 1 CPU"], med["QEMU, 2 CPUs"]
	row("under juice (s, guest-timed)", j1, j2, x(j1, j2))
	row("directly on QEMU (s, guest-timed)", q1, q2, x(q1, q2))
	fmt.Fprintf(&b, "  %-34s %10s %10s\n", "juice over QEMU", x(j1, q1), x(j2, q2))
	return b.String()
}

// cmdBenchScale implements `juice bench --scale`.
func cmdBenchScale(c jeosBenchConfig, mib int, stdout, stderr io.Writer) int {
	img, err := jeos.Build(jeos.Options{Dir: c.jeosDir, Log: stderr})
	if err != nil || img.Vmlinux == "" {
		fmt.Fprintln(stderr, "juice bench: JeOS image:", err, img.Notes)
		return 1
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bundles := map[int]string{}
	for _, n := range []int{1, 2} {
		b, err := launch.BuildBundle([]launch.VMSpec{{Name: "jeos", Kernel: img.Vmlinux, Cmdline: scaleCmdline(mib),
			Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}}, Memory: c.vmMem, VCPUs: n}})
		if err == nil {
			d := filepath.Join(dir, fmt.Sprint(n))
			if err = os.Mkdir(d, 0o755); err == nil {
				bundles[n], err = launch.WriteBundle(d, b)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench --scale: %d runs; a JeOS guest (PVH, %s) runs two jobs at once, each dd of %d MiB of zeroes into md5sum, timed by the guest: with 1 and 2 vCPUs under juice on %d CPUs (-m %s), and directly on QEMU with 1 and 2 CPUs; QEMU TCG -cpu max, multi-threaded (-accel tcg,thread=multi) wherever there are 2 CPUs\n",
		c.runs, c.vmMem, mib, scaleHostCPUs, c.mem)
	times := map[string][]float64{}
	failed := map[string]int{}
	for i := 1; i <= c.runs; i++ {
		var parts []string
		for _, k := range scaleKinds {
			secs, problem, killed := scaleBoot(ctx, scaleConfig(c, k, img, mib, bundles), k, mib)
			if killed {
				return launch.ExitKilled
			}
			if problem != "" {
				failed[k.name]++
				fmt.Fprintf(stdout, "  run %d/%d, %s: FAILED: %s\n", i, c.runs, k.name, problem)
				parts = append(parts, k.name+" failed")
				continue
			}
			times[k.name] = append(times[k.name], secs)
			parts = append(parts, fmt.Sprintf("%s %.2f s", k.name, secs))
		}
		fmt.Fprintf(stdout, "  run %d/%d: %s\n", i, c.runs, strings.Join(parts, "; "))
	}
	med := map[string]float64{}
	for _, k := range scaleKinds {
		med[k.name] = median0(times[k.name])
	}
	fmt.Fprintf(stdout, "  medians:\n%s", scaleTable(med))
	var fails []string
	status := 0
	for _, k := range scaleKinds {
		fails = append(fails, fmt.Sprintf("%s %d of %d", k.name, failed[k.name], c.runs))
		if failed[k.name] == c.runs {
			status = 1
		}
	}
	fmt.Fprintf(stdout, "  failed runs: %s\n", strings.Join(fails, ", "))
	return status
}
