package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// defaultMediaBoots are the boot paths `juice bench --media` times: PVH
// (no firmware, no loader) as the reference, then every boot medium under
// SeaBIOS and OVMF.
var defaultMediaBoots = []launch.Boot{
	launch.BootPVH,
	launch.BootISOBIOS, launch.BootISOEFI,
	launch.BootISOStickBIOS, launch.BootISOStickEFI,
	launch.BootUSBBIOS, launch.BootUSBEFI,
	launch.BootPXEBIOS, launch.BootPXEEFI,
	launch.BootIPXEBIOS, launch.BootIPXEEFI,
}

// mediaBenchCmdline is the guest's command line: earlyprintk makes the
// kernel's first line appear when the kernel starts rather than when its
// serial driver registers, so "the guest's first line" marks the guest
// kernel's start; the JeOS init powers off after its marker.
const mediaBenchCmdline = "console=ttyS0 earlyprintk=ttyS0 " + jeos.PoweroffArg

// mediaBenchVM is the VM's name in the bench's bundle.
const mediaBenchVM = "jeos"

// mediaBenchConfig is what `juice bench --media` measures.
type mediaBenchConfig struct {
	runs    int
	juice   string
	mem     string
	vmMem   string
	jeosDir string
	boots   []launch.Boot
	timeout time.Duration
}

// stampedLine is a console line with the time it arrived.
type stampedLine struct {
	at   time.Time
	text string // cleaned (launch.Clean), juice's timestamp kept
}

// lineStamper is an io.Writer that splits console output into lines and
// notes when each arrived.
type lineStamper struct {
	mu      sync.Mutex
	partial []byte
	lines   []stampedLine
}

// Write records the complete lines in p.
func (s *lineStamper) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range p {
		if b == '\n' {
			s.lines = append(s.lines, stampedLine{at: now, text: launch.Clean(string(s.partial))})
			s.partial = s.partial[:0]
			continue
		}
		s.partial = append(s.partial, b)
	}
	return len(p), nil
}

// snapshot returns the lines so far.
func (s *lineStamper) snapshot() []stampedLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stampedLine(nil), s.lines...)
}

// mediaRun is one boot's figures, in seconds from QEMU's start (-1 where
// the line never came).
type mediaRun struct {
	grub       float64 // GRUB's "Booting `juice'": firmware and GRUB's start-up
	juice      float64 // juice's first line ("juice: booted by")
	vmStart    float64 // juice's "juice: vm NAME: starting"
	vmStartOwn float64 // juice's own timestamp on that line: seconds since its entry
	guest      float64 // the guest's first console line
	marker     float64 // the guest's ready marker
}

// juiceStampRE is juice's log-line timestamp.
var juiceStampRE = regexp.MustCompile(`\[ *([0-9]+\.[0-9]{6})\] `)

// mediaStages finds the boot's milestones in lines (arrival times
// relative to start); vm is the VM's name, grub whether a GRUB line is
// expected.
func mediaStages(lines []stampedLine, start time.Time, vm string, grub bool) (mediaRun, error) {
	r := mediaRun{grub: -1, juice: -1, vmStart: -1, vmStartOwn: -1, guest: -1, marker: -1}
	type step struct {
		what  string
		match func(string) bool
		at    *float64
	}
	steps := []step{
		{"juice's first line", func(t string) bool { return strings.Contains(t, "juice: booted by ") }, &r.juice},
		{"the VM's start", func(t string) bool { return strings.Contains(t, "juice: vm "+vm+": starting") }, &r.vmStart},
		{"the guest's first line", func(t string) bool { return strings.HasPrefix(t, launch.GuestLinePrefix(vm)) }, &r.guest},
		{"the guest's marker", func(t string) bool {
			return strings.HasPrefix(t, launch.GuestLinePrefix(vm)) && strings.Contains(t, jeos.ReadyMarker)
		}, &r.marker},
	}
	if grub {
		steps = append([]step{{"GRUB's boot line", func(t string) bool { return strings.Contains(t, "Booting `"+launch.GRUBEntry+"'") }, &r.grub}}, steps...)
	}
	i := 0
	for _, s := range steps {
		for ; i < len(lines); i++ {
			if text, _ := launch.StripTimestamp(lines[i].text); s.match(text) {
				*s.at = lines[i].at.Sub(start).Seconds()
				if s.at == &r.vmStart {
					if m := juiceStampRE.FindStringSubmatch(lines[i].text); m != nil {
						r.vmStartOwn, _ = strconv.ParseFloat(m[1], 64)
					}
				}
				break
			}
		}
		if i == len(lines) {
			return r, fmt.Errorf("no %s", s.what)
		}
		// The guest's first line may be its marker line.
		if s.at != &r.guest {
			i++
		}
	}
	return r, nil
}

// mediaBoot boots cfg once and returns its figures; killed reports an
// interrupt.
func mediaBoot(ctx context.Context, cfg launch.Config) (r mediaRun, problem string, killed bool) {
	stamps := &lineStamper{}
	cfg.Echo = stamps
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		return r, err.Error(), false
	}
	start := time.Now() // Start returns as soon as QEMU is running
	res := m.Wait()
	if res.Outcome == launch.Killed {
		return r, "", true
	}
	r, err = mediaStages(stamps.snapshot(), start, mediaBenchVM, cfg.Boot.Medium() != launch.MediumKernel)
	if err != nil {
		return r, fmt.Sprintf("%v (%v)", err, res), false
	}
	if !res.Exited() || res.Status != 0 {
		return r, fmt.Sprintf("the run did not end with status 0: %v", res), false
	}
	return r, "", false
}

// benchMedia runs `juice bench --media` with the flags of fs: --runs
// defaults to 1 here (each boot takes tens of seconds), --mem to 512M,
// --timeout to 5 minutes.
func benchMedia(fs *flag.FlagSet, runs int, kernel, mem, jeosDir, boots string, timeout time.Duration, stdout, stderr io.Writer) int {
	if !flagSet(fs, "runs") {
		runs = 1
	}
	if mem == "" {
		mem = "512M"
	}
	if !flagSet(fs, "timeout") {
		timeout = 5 * time.Minute
	}
	bs, err := parseMediaBoots(boots)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 2
	}
	return cmdBenchMedia(mediaBenchConfig{runs: runs, juice: kernel, mem: mem, vmMem: "256M", jeosDir: jeosDir,
		boots: bs, timeout: timeout}, stdout, stderr)
}

// parseMediaBoots parses --boots: a comma-separated list of boot paths,
// or "all".
func parseMediaBoots(s string) ([]launch.Boot, error) {
	if s == "" || s == "all" {
		return defaultMediaBoots, nil
	}
	var out []launch.Boot
	for _, f := range strings.Split(s, ",") {
		b, err := launch.ParseBoot(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// cmdBenchMedia implements `juice bench --media`: the JeOS guest (the
// bzImage) booted under juice from each boot medium, N times each; per
// medium the median time from QEMU's start to GRUB's boot line (firmware
// and GRUB), to juice's first line (GRUB loading juice and the bundle),
// from juice's first line to the VM's start and to the guest kernel's
// first line (what juice adds), and to the guest's user-space marker.
func cmdBenchMedia(c mediaBenchConfig, stdout, stderr io.Writer) int {
	img, err := jeos.Build(jeos.Options{Dir: c.jeosDir, Log: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	if _, err := os.Stat(c.juice); err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := launch.BuildBundle([]launch.VMSpec{{Name: mediaBenchVM, Kernel: img.Kernel, Cmdline: mediaBenchCmdline,
		Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}}, Memory: c.vmMem}})
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	bundle, err := launch.WriteBundle(dir, b)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	size := int64(0)
	if st, err := os.Stat(bundle); err == nil {
		size = st.Size()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "juice bench --media: %d run(s) per boot path; juice %s; VM %s: %s (bzImage) + initramfs, command line %q, bundle %.1f MiB; QEMU TCG -cpu max q35 -m %s\n",
		c.runs, c.juice, c.vmMem, img.Version, mediaBenchCmdline, float64(size)/(1<<20), c.mem)
	fmt.Fprintln(stdout, "  seconds from QEMU's start (medians): GRUB = GRUB's \"Booting `juice'\" line (firmware and GRUB's start-up); juice = juice's first line (GRUB loaded juice and the bundle); +VM = juice's first line to its VM's start (juice's own clock: from its entry); +guest = juice's first line to the guest kernel's first line; marker = the guest's JEOS-READY")
	fmt.Fprintf(stdout, "  %-13s %7s %7s %7s %12s %7s %7s\n", "boot", "GRUB", "juice", "+VM", "(own clock)", "+guest", "marker")
	status := 0
	for _, boot := range c.boots {
		if missing := boot.MissingTools(); len(missing) > 0 {
			fmt.Fprintf(stdout, "  %-13s skipped: %s not found\n", boot, strings.Join(missing, ", "))
			status = 1
			continue
		}
		var grub, juice, vm, own, guest, marker []float64
		for i := 1; i <= c.runs; i++ {
			r, problem, killed := mediaBoot(ctx, launch.Config{Kernel: c.juice, Boot: boot, Mem: c.mem, Initrd: bundle, Timeout: c.timeout})
			if killed {
				return launch.ExitKilled
			}
			if problem != "" {
				fmt.Fprintf(stdout, "  %-13s run %d/%d FAILED: %s\n", boot, i, c.runs, problem)
				status = 1
				continue
			}
			if c.runs > 1 {
				fmt.Fprintf(stdout, "  %-13s %7s %7.2f %7.2f %12.2f %7.2f %7.2f  (run %d/%d)\n", boot, secs(r.grub), r.juice,
					r.vmStart-r.juice, r.vmStartOwn, r.guest-r.juice, r.marker, i, c.runs)
			}
			grub, juice, vm = append(grub, r.grub), append(juice, r.juice), append(vm, r.vmStart-r.juice)
			own, guest, marker = append(own, r.vmStartOwn), append(guest, r.guest-r.juice), append(marker, r.marker)
		}
		if len(juice) == 0 {
			continue
		}
		med := func(xs []float64) float64 {
			m, _ := launch.Median(xs)
			return m
		}
		note := ""
		if c.runs > 1 {
			note = fmt.Sprintf("  median of %d", len(juice))
		}
		fmt.Fprintf(stdout, "  %-13s %7s %7.2f %7.2f %12.2f %7.2f %7.2f%s\n", boot, secs(med(grub)), med(juice),
			med(vm), med(own), med(guest), med(marker), note)
	}
	return status
}

// secs formats a time in seconds, "-" for none.
func secs(s float64) string {
	if s < 0 {
		return "-"
	}
	return strconv.FormatFloat(s, 'f', 2, 64)
}
