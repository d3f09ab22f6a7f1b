package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// jeosBenchConfig is what `juice bench --jeos` measures.
type jeosBenchConfig struct {
	runs    int
	juice   string // juice's image
	mem     string // juice's machine
	vmMem   string // the guest's RAM, under juice and directly
	jeosDir string
	kernels []string // "bzimage", "pvh"
	timeout time.Duration
}

// jeosBenchCmdline is the guest's command line in both runs: the plain one
// a user gives, plus the JeOS init's request to power off after its
// marker.
const jeosBenchCmdline = "console=ttyS0 " + jeos.PoweroffArg

// jeosRun is one boot's figures.
type jeosRun struct {
	toMarker   time.Duration // QEMU start to the guest's marker line
	fromEntry  time.Duration // juice's first line to the marker (juice runs only)
	uptime     float64       // the guest's /proc/uptime in the marker
	exitsLine  string        // juice's "exits by reason" text
	exits      uint64
	guestTimes string
}

var readyUptimeRE = regexp.MustCompile(jeos.ReadyMarker + ` uptime=([0-9.]+)`)

// jeosBoot boots cfg and times the JeOS marker. name is the VM's name
// under juice ("" for a direct boot).
func jeosBoot(ctx context.Context, cfg launch.Config, name string) (jeosRun, string, bool) {
	var r jeosRun
	start := time.Now()
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		return r, err.Error(), false
	}
	entry := make(chan time.Time, 1)
	if name != "" {
		go func() {
			if _, err := m.Console.Wait(ctx, 0, launch.HasPrefix("juice: booted by")); err == nil {
				entry <- time.Now()
			}
		}()
	}
	marker := jeos.ReadyMarker
	l, werr := m.Console.Wait(ctx, 0, func(t string) bool {
		return strings.Contains(t, marker) && (name == "" || strings.HasPrefix(t, launch.GuestLinePrefix(name)))
	})
	at := time.Now()
	res := m.Wait()
	if res.Outcome == launch.Killed {
		return r, "", true
	}
	if werr != nil {
		var seen []string
		for _, t := range m.Console.Texts() {
			if strings.Contains(t, "JEOS") {
				seen = append(seen, t)
			}
		}
		return r, fmt.Sprintf("no %s line (%v): %v; lines naming JEOS: %q", marker, werr, res, seen), false
	}
	// Under juice the run must end with juice's power-off, status 0 (the
	// VM's); a direct boot ends with QEMU's own exit, code 0, when the
	// guest powers off.
	if name != "" && (!res.Exited() || res.Status != 0) || name == "" && res.QEMUCode != 0 {
		return r, fmt.Sprintf("the run did not end with status 0: %v", res), false
	}
	r.toMarker = at.Sub(start)
	select {
	case e := <-entry:
		r.fromEntry = at.Sub(e)
	default:
	}
	if mm := readyUptimeRE.FindStringSubmatch(l.Text); mm != nil {
		r.uptime, _ = strconv.ParseFloat(mm[1], 64)
	}
	if name != "" {
		r.exits, _ = launch.VMExits(m.Console.Texts(), name)
		for _, t := range m.Console.Texts() {
			if s, ok := strings.CutPrefix(t, "juice: vm "+name+": exits by reason (count, time handling them; HLT's is idle time): "); ok {
				r.exitsLine = s
			}
			if s, ok := strings.CutPrefix(t, "juice: vm "+name+": time in guest entry "); ok {
				r.guestTimes = s
			}
		}
	}
	return r, "", false
}

// cmdBenchJeOS implements `juice bench --jeos`: alternating boots of the
// JeOS guest (Debian's kernel, the u-root initramfs, console=ttyS0) under
// juice nested in QEMU TCG and directly on the same QEMU, for the bzImage
// and for the PVH vmlinux; it prints the median time from QEMU's start to
// the guest's user-space marker both ways and their ratio, juice's time
// from its own entry to the marker, and the guest's exits by reason.
func cmdBenchJeOS(c jeosBenchConfig, stdout, stderr io.Writer) int {
	img, err := jeos.Build(jeos.Options{Dir: c.jeosDir, Log: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "juice-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "juice bench --jeos: %d runs each, %s (%s), initramfs %s, command line %q; VM %s; QEMU TCG -cpu max q35; juice -m %s\n",
		c.runs, img.Package, img.Version, img.Initrd, jeosBenchCmdline, c.vmMem, c.mem)
	status := 0
	for _, kind := range c.kernels {
		kernel := img.Kernel
		if kind == "pvh" {
			if img.Vmlinux == "" {
				fmt.Fprintln(stdout, "  pvh: no vmlinux was made; skipped")
				continue
			}
			kernel = img.Vmlinux
		}
		b, err := launch.BuildBundle([]launch.VMSpec{{Name: "jeos", Kernel: kernel, Cmdline: jeosBenchCmdline,
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
		var nested, direct, entry, upN, upD []float64
		var last jeosRun
		for i := 1; i <= c.runs; i++ {
			n, problem, killed := jeosBoot(ctx, launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem,
				Initrd: bundle, Timeout: c.timeout}, "jeos")
			if killed {
				return launch.ExitKilled
			}
			if problem != "" {
				fmt.Fprintf(stdout, "  %s run %d/%d under juice: FAILED: %s\n", kind, i, c.runs, problem)
				status = 1
				continue
			}
			d, problem, killed := jeosBoot(ctx, launch.Config{Kernel: kernel, Boot: launch.BootPVH, Mem: c.vmMem,
				Initrd: img.Initrd, Append: jeosBenchCmdline, NoDebugExit: true, Timeout: c.timeout}, "")
			if killed {
				return launch.ExitKilled
			}
			if problem != "" {
				fmt.Fprintf(stdout, "  %s run %d/%d direct: FAILED: %s\n", kind, i, c.runs, problem)
				status = 1
				continue
			}
			fmt.Fprintf(stdout, "  %s run %d/%d: under juice %.2f s to the marker (%.2f s from juice's entry, guest uptime %.2f s, %d exits); direct %.2f s (guest uptime %.2f s)\n",
				kind, i, c.runs, n.toMarker.Seconds(), n.fromEntry.Seconds(), n.uptime, n.exits, d.toMarker.Seconds(), d.uptime)
			nested = append(nested, n.toMarker.Seconds())
			entry = append(entry, n.fromEntry.Seconds())
			direct = append(direct, d.toMarker.Seconds())
			upN = append(upN, n.uptime)
			upD = append(upD, d.uptime)
			last = n
		}
		if len(nested) == 0 {
			continue
		}
		mn, _ := launch.Median(nested)
		md, _ := launch.Median(direct)
		me, _ := launch.Median(entry)
		un, _ := launch.Median(upN)
		ud, _ := launch.Median(upD)
		fmt.Fprintf(stdout, "  %s: QEMU start to user-space marker, median of %d: under juice %.2f s, direct %.2f s, ratio %.2fx; juice's entry to the marker %.2f s; guest uptime at the marker %.2f s vs %.2f s (%.2fx)\n",
			kind, len(nested), mn, md, mn/md, me, un, ud, un/ud)
		fmt.Fprintf(stdout, "  %s: exits of the last boot under juice (count, time juice spent handling them): %s\n", kind, last.exitsLine)
		fmt.Fprintf(stdout, "  %s: time in guest entry %s\n", kind, last.guestTimes)
	}
	return status
}
