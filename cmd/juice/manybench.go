package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// `juice bench --vms N`: N tiny JeOS VMs (jeos.BuildTiny: Debian's
// kernel, PVH, with jeosinit alone as its initramfs) in one bundle under
// one juice, all started together; each prints its ready marker and
// powers off. Against it, the same VM alone under the same juice and
// machine. Per run: the time from juice starting the first VM to the
// last marker (the host's clock, as the lines arrive), hence VMs booted
// per minute, and juice's memory report (cmd/juice-kernel/memreport.go):
// its footprint before the VMs and at the peak, hence its own memory per
// VM beyond guest RAM and that memory's parts.

// Defaults of the many-VM bench.
const (
	// manyBenchVMs is the VM count.
	manyBenchVMs = 32
	// manyBenchVMMem is each VM's RAM: the smallest that Debian's kernel
	// boots to user space in reliably with 32 VMs taking turns (its
	// image alone spans 16 to 74 MiB of guest-physical memory, so 32 MiB
	// cannot work; at 82 MiB it runs out of memory unpacking the
	// initramfs; at 84 MiB 2 of 32 VMs did; 88 MiB booted 128 of 128).
	manyBenchVMMem = "88M"
	// manyBenchJuiceMem is what juice's machine gets beyond the VMs'
	// RAM: juice, its heap, and the bundle (the 63 MiB vmlinux, once).
	manyBenchJuiceMem = 256 << 20
	// manyBenchMaxVMs bounds --vms.
	manyBenchMaxVMs = 256
	// manyBenchPerVMTime is added to the time limit per VM.
	manyBenchPerVMTime = 45 * time.Second
)

// manyBenchCmdline is each VM's command line: quiet, so that the guests'
// boot messages (an exit per byte on COM1) do not dominate the run.
const manyBenchCmdline = "console=ttyS0 quiet " + jeos.PoweroffArg

// manyBenchConfig is what `juice bench --vms` measures.
type manyBenchConfig struct {
	runs    int
	vms     int
	juice   string // juice's image
	mem     string // juice's machine; "" sizes it for the VMs
	vmMem   string
	jeosDir string
	timeout time.Duration // per VM booted alone; more for N
}

// manyMachineMem is juice's machine for n VMs of vmMem each: their RAM
// plus manyBenchJuiceMem, in MiB rounded up to 64 MiB, as QEMU's -m.
func manyMachineMem(n int, vmMem string) (string, error) {
	b, err := bundle.Memory(vmMem).Bytes()
	if err != nil {
		return "", err
	}
	total := uint64(n)*b + manyBenchJuiceMem
	mib := (total + 64<<20 - 1) >> 26 << 6
	return fmt.Sprintf("%dM", mib), nil
}

// manyVMName is VM i's name.
func manyVMName(i int) string { return fmt.Sprintf("vm%d", i) }

// manyBundle builds the bundle of n tiny VMs.
func manyBundle(dir string, img jeos.Image, n int, vmMem string) (string, error) {
	var vms []launch.VMSpec
	for i := 0; i < n; i++ {
		vms = append(vms, launch.VMSpec{Name: manyVMName(i), Kernel: img.Vmlinux, Cmdline: manyBenchCmdline,
			Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}}, Memory: vmMem})
	}
	b, err := launch.BuildBundle(vms)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return launch.WriteBundle(dir, b)
}

// memReportRE and memPeakRE are juice's memory report
// (cmd/juice-kernel/memreport.go).
var (
	memReportRE = regexp.MustCompile(`^juice: memory: ([0-9]+) VMs, guest RAM ([0-9]+) KiB; in use before the VMs ([0-9]+) KiB \(runtime ([0-9]+) KiB\), at the peak ([0-9]+) KiB \(runtime ([0-9]+) KiB\)`)
	memPeakRE   = regexp.MustCompile(`^juice: memory at the peak: runtime heap objects ([0-9]+) KiB, heap free and unused ([0-9]+) KiB, goroutine stacks ([0-9]+) KiB`)
)

// juiceMem is juice's memory report, in KiB.
type juiceMem struct {
	vms                        int
	guest, before, beforeRT    float64
	peak, peakRT               float64
	heapObjects, heapSlack     float64
	stacks                     float64
	haveRuntimeAccount, parsed bool
}

// parseJuiceMem finds juice's memory report in its console lines.
func parseJuiceMem(texts []string) juiceMem {
	var m juiceMem
	f := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	for _, t := range texts {
		if g := memReportRE.FindStringSubmatch(t); g != nil {
			m.vms, _ = strconv.Atoi(g[1])
			m.guest, m.before, m.beforeRT, m.peak, m.peakRT = f(g[2]), f(g[3]), f(g[4]), f(g[5]), f(g[6])
			m.parsed = true
		}
		if g := memPeakRE.FindStringSubmatch(t); g != nil {
			m.heapObjects, m.heapSlack, m.stacks = f(g[1]), f(g[2]), f(g[3])
			m.haveRuntimeAccount = true
		}
	}
	return m
}

// perVM is juice's own memory per VM beyond guest RAM, and its parts in
// the runtime and in other frames (KiB).
func (m juiceMem) perVM() (own, runtime, other float64) {
	if m.vms == 0 {
		return 0, 0, 0
	}
	n := float64(m.vms)
	own = (m.peak - m.before - m.guest) / n
	runtime = (m.peakRT - m.beforeRT) / n
	return own, runtime, own - runtime
}

// manyRun is one run's figures.
type manyRun struct {
	toLast  time.Duration // juice starting its first VM to the last marker
	fromRun time.Duration // QEMU's start to the last marker
	uptimes []float64     // each guest's uptime at its marker
	mem     juiceMem
}

// perMinute is the run's VMs booted per minute.
func (r manyRun) perMinute(n int) float64 {
	if r.toLast <= 0 {
		return 0
	}
	return float64(n) / r.toLast.Minutes()
}

// manyBoot runs one bundle of n VMs and times their markers.
func manyBoot(ctx context.Context, cfg launch.Config, n int) (manyRun, string, bool) {
	var r manyRun
	start := time.Now()
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		return r, err.Error(), false
	}
	first := launch.HasPrefix("juice: vm " + manyVMName(0) + ": starting")
	var started time.Time
	marked := map[string]time.Time{}
	uptimes := map[string]float64{}
	j := newMarkerJoiner()
	next := 0
	for len(marked) < n {
		l, err := m.Console.Wait(ctx, next, func(string) bool { return true })
		if err != nil {
			break
		}
		at := time.Now()
		next = l.Index + 1
		if started.IsZero() && first(l.Text) {
			started = at
		}
		if name, up, ok := j.add(l.Text); ok {
			if _, seen := marked[name]; !seen {
				marked[name], uptimes[name] = at, up
			}
		}
	}
	res := m.Wait()
	if res.Outcome == launch.Killed {
		return r, "", true
	}
	texts := m.Console.Texts()
	if len(marked) < n {
		var missing []string
		for i := 0; i < n; i++ {
			if _, ok := marked[manyVMName(i)]; !ok {
				missing = append(missing, manyVMName(i))
			}
		}
		return r, fmt.Sprintf("%d of %d VMs printed no %s (%s): %v%s%s%s", len(missing), n, jeos.ReadyMarker,
			strings.Join(missing, " "), res, vmEnds(texts, missing), tail(texts), saveConsole(m)), false
	}
	if !res.Exited() || res.Status != 0 {
		return r, fmt.Sprintf("juice did not end with status 0: %v%s%s", res, tail(texts), saveConsole(m)), false
	}
	var last time.Time
	for _, at := range marked {
		if at.After(last) {
			last = at
		}
	}
	for i := 0; i < n; i++ {
		r.uptimes = append(r.uptimes, uptimes[manyVMName(i)])
	}
	r.toLast, r.fromRun = last.Sub(started), last.Sub(start)
	r.mem = parseJuiceMem(texts)
	return r, "", false
}

// markerJoiner finds the guests' ready markers in juice's console lines
// although juice may have broken them: a guest's partial line is shown
// after 30 ms of quiet, and when another VM's line comes first the rest
// continues on a new line of its own ("[vm4] JEOS-RE", ..., "[vm4] ADY
// uptime=..."). With 32 VMs taking turns on one CPU that happens to
// markers. It keeps each VM's recent text, its lines' pieces run
// together, and looks for the whole marker there.
type markerJoiner struct {
	tail map[string]string
}

// markerJoinRE is the marker with its uptime, complete.
var markerJoinRE = regexp.MustCompile(jeos.ReadyMarker + ` uptime=([0-9.]+) modules=`)

// guestPrefixRE is a VM's line prefix ("[name] "; juice's own lines start
// with a timestamp, which has spaces and a dot).
var guestPrefixRE = regexp.MustCompile(`^\[([a-z0-9-]+)\] `)

// newMarkerJoiner returns an empty joiner.
func newMarkerJoiner() *markerJoiner { return &markerJoiner{tail: map[string]string{}} }

// add takes the next console line (text); when it completes a VM's
// marker it returns the VM's name and the marker's uptime.
func (j *markerJoiner) add(text string) (name string, uptime float64, ok bool) {
	g := guestPrefixRE.FindStringSubmatch(text)
	if g == nil {
		return "", 0, false
	}
	name = g[1]
	t := j.tail[name] + text[len(g[0]):]
	if m := markerJoinRE.FindStringSubmatchIndex(t); m != nil {
		uptime, _ = strconv.ParseFloat(t[m[2]:m[3]], 64)
		j.tail[name] = t[m[1]:]
		return name, uptime, true
	}
	if len(t) > 256 {
		t = t[len(t)-256:]
	}
	j.tail[name] = t
	return "", 0, false
}

// saveConsole writes a failed run's whole console, as it came, to a
// file that outlives the bench and returns a line naming it.
func saveConsole(m *launch.Machine) string {
	f, err := os.CreateTemp("", "juice-bench-vms-*.log")
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Write(m.Console.Raw()); err != nil {
		return ""
	}
	return "\n    the whole console: " + f.Name()
}

// vmEnds is, for the VMs named, juice's line on how each ended.
func vmEnds(texts, names []string) string {
	var b strings.Builder
	for _, name := range names {
		for _, t := range texts {
			if s, ok := strings.CutPrefix(t, "juice: vm "+name+": "); ok &&
				(strings.HasPrefix(s, "stopped") || strings.HasPrefix(s, "exited") || strings.HasPrefix(s, "fault") || strings.HasPrefix(s, "shut down")) {
				b.WriteString("\n    " + t)
			}
		}
	}
	return b.String()
}

// manyRow is one table row: a name and the two columns (one VM, N VMs);
// ratio says whether to print N's over one's.
type manyRow struct {
	name   string
	one, n float64
	format string
	ratio  bool
}

// manyTable formats the table.
func manyTable(n int, rows []manyRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-52s %12s %12s %9s\n", "", "1 VM", fmt.Sprintf("%d VMs", n), "ratio")
	for _, r := range rows {
		ratio := ""
		if r.ratio && r.one != 0 {
			ratio = fmt.Sprintf("%.2fx", r.n/r.one)
		}
		fmt.Fprintf(&b, "  %-52s %12s %12s %9s\n", r.name, fmt.Sprintf(r.format, r.one), fmt.Sprintf(r.format, r.n), ratio)
	}
	return b.String()
}

// median of xs, 0 for none.
func median0(xs []float64) float64 {
	m, err := launch.Median(xs)
	if err != nil {
		return 0
	}
	return m
}

// manySummary is the medians over the good runs of one kind.
type manySummary struct {
	toLast, fromRun, perMin, uptime float64
	own, runtime, other             float64
	before, peak                    float64
	heapObjects, heapSlack, stacks  float64
	mem                             bool // every run had a memory report
}

// summarize takes the medians of runs of n VMs.
func summarize(runs []manyRun, n int) manySummary {
	var s manySummary
	var toLast, fromRun, perMin, up, own, rt, other, before, peak, objs, slack, stacks []float64
	s.mem = len(runs) > 0
	for _, r := range runs {
		toLast = append(toLast, r.toLast.Seconds())
		fromRun = append(fromRun, r.fromRun.Seconds())
		perMin = append(perMin, r.perMinute(n))
		up = append(up, median0(r.uptimes))
		if !r.mem.parsed || r.mem.vms != n {
			s.mem = false
			continue
		}
		o, t, x := r.mem.perVM()
		own, rt, other = append(own, o), append(rt, t), append(other, x)
		before, peak = append(before, r.mem.before), append(peak, r.mem.peak)
		objs, slack, stacks = append(objs, r.mem.heapObjects), append(slack, r.mem.heapSlack), append(stacks, r.mem.stacks)
	}
	s.toLast, s.fromRun, s.perMin, s.uptime = median0(toLast), median0(fromRun), median0(perMin), median0(up)
	s.own, s.runtime, s.other = median0(own), median0(rt), median0(other)
	s.before, s.peak = median0(before), median0(peak)
	s.heapObjects, s.heapSlack, s.stacks = median0(objs), median0(slack), median0(stacks)
	return s
}

// manyRows are the table's rows.
func manyRows(one, many manySummary) []manyRow {
	rows := []manyRow{
		{"juice starting the first VM to the last marker (s)", one.toLast, many.toLast, "%.2f", true},
		{"QEMU's start to the last marker (s)", one.fromRun, many.fromRun, "%.2f", true},
		{"VMs booted per minute", one.perMin, many.perMin, "%.2f", true},
		{"guest uptime at its marker, median (s)", one.uptime, many.uptime, "%.2f", true},
	}
	if one.mem && many.mem {
		rows = append(rows,
			manyRow{"juice's memory in use before the VMs (KiB)", one.before, many.before, "%.0f", false},
			manyRow{"juice's memory in use at the peak (KiB)", one.peak, many.peak, "%.0f", false},
			manyRow{"juice's own memory per VM beyond guest RAM (KiB)", one.own, many.own, "%.0f", true},
			manyRow{"  of it in the Go runtime (KiB)", one.runtime, many.runtime, "%.0f", true},
			manyRow{"  of it in other frames: VMCB, NPT, maps (KiB)", one.other, many.other, "%.0f", true},
			manyRow{"runtime at the peak: heap objects (KiB)", one.heapObjects, many.heapObjects, "%.0f", false},
			manyRow{"runtime at the peak: heap free and unused (KiB)", one.heapSlack, many.heapSlack, "%.0f", false},
			manyRow{"runtime at the peak: goroutine stacks (KiB)", one.stacks, many.stacks, "%.0f", false},
		)
	}
	return rows
}

// cmdBenchMany implements `juice bench --vms N`.
func cmdBenchMany(c manyBenchConfig, stdout, stderr io.Writer) int {
	img, err := jeos.BuildTiny(jeos.Options{Dir: c.jeosDir, Log: stderr})
	if err != nil || img.Vmlinux == "" {
		fmt.Fprintln(stderr, "juice bench: tiny JeOS image:", err, img.Notes)
		return 1
	}
	if c.mem == "" {
		if c.mem, err = manyMachineMem(c.vms, c.vmMem); err != nil {
			fmt.Fprintln(stderr, "juice bench: --vm-mem:", err)
			return 2
		}
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	oneBundle, err := manyBundle(dir+"/one", img, 1, c.vmMem)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	manyBundlePath, err := manyBundle(dir+"/many", img, c.vms, c.vmMem)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	initrdSize := int64(0)
	if st, err := os.Stat(img.Initrd); err == nil {
		initrdSize = st.Size()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench --vms: %d runs; %d tiny JeOS VMs of %s started together in one juice, against one alone; Debian %s (PVH vmlinux), initramfs %s (jeosinit alone, %.1f MiB), command line %q; juice -m %s; QEMU TCG -cpu max, one CPU\n",
		c.runs, c.vms, c.vmMem, img.Release, img.Initrd, float64(initrdSize)/(1<<20), manyBenchCmdline, c.mem)
	cfg := func(bundle string, n int) launch.Config {
		return launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: bundle,
			Timeout: c.timeout + time.Duration(n)*manyBenchPerVMTime}
	}
	var ones, manys []manyRun
	status := 0
	for i := 1; i <= c.runs; i++ {
		one, problem, killed := manyBoot(ctx, cfg(oneBundle, 1), 1)
		if killed {
			return launch.ExitKilled
		}
		if problem != "" {
			fmt.Fprintf(stdout, "  run %d/%d, one VM: FAILED: %s\n", i, c.runs, problem)
			status = 1
			continue
		}
		many, problem, killed := manyBoot(ctx, cfg(manyBundlePath, c.vms), c.vms)
		if killed {
			return launch.ExitKilled
		}
		if problem != "" {
			fmt.Fprintf(stdout, "  run %d/%d, %d VMs: FAILED: %s\n", i, c.runs, c.vms, problem)
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "  run %d/%d: one VM %.2f s to its marker; %d VMs %.2f s from the first start to the last marker (%.2f VMs/min)\n",
			i, c.runs, one.toLast.Seconds(), c.vms, many.toLast.Seconds(), many.perMinute(c.vms))
		ones, manys = append(ones, one), append(manys, many)
	}
	if len(manys) == 0 {
		return status
	}
	one, many := summarize(ones, 1), summarize(manys, c.vms)
	fmt.Fprintf(stdout, "  medians of %d good runs:\n", len(manys))
	fmt.Fprint(stdout, manyTable(c.vms, manyRows(one, many)))
	if !one.mem || !many.mem {
		fmt.Fprintln(stdout, "  juice printed no memory report (\"juice: memory: ...\"): is memReport called from cmd/juice-kernel's runBundle?")
	} else {
		verdict := "under"
		if many.own >= 1024 {
			verdict = "NOT under"
		}
		fmt.Fprintf(stdout, "  juice's own memory per VM with %d VMs: %.0f KiB, %s the 1 MiB target\n", c.vms, many.own, verdict)
	}
	sorted := append([]float64(nil), manys[len(manys)-1].uptimes...)
	sort.Float64s(sorted)
	fmt.Fprintf(stdout, "  guest uptimes at the marker, last run of %d VMs: min %.2f s, median %.2f s, max %.2f s\n",
		c.vms, sorted[0], median0(sorted), sorted[len(sorted)-1])
	return status
}
