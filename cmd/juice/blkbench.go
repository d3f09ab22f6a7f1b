package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// blkBenchMiB is how much the guest reads and writes.
const blkBenchMiB = 64

// blkBenchExec is the guest's command: read the whole disk, then write it.
var blkBenchExec = fmt.Sprintf("dd if=/dev/vda of=/dev/null bs=1048576 count=%d && dd if=/dev/zero of=/dev/vda bs=1048576 count=%d && sync", blkBenchMiB, blkBenchMiB)

// ddRE is u-root dd's summary line.
var ddRE = regexp.MustCompile(`bytes \(.*\) copied, ([0-9.]+) s, ([0-9.]+) MB/s`)

// ddRates returns the MB/s of the guest's two dd runs (read, write).
func ddRates(texts []string) ([]float64, bool) {
	var out []float64
	for _, t := range texts {
		if m := ddRE.FindStringSubmatch(t); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out = append(out, v)
		}
	}
	return out, len(out) == 2
}

// cmdBenchBlk implements `juice bench --blk`: the JeOS guest (PVH) reads
// and then writes a 64 MiB disk with dd, under juice (virtio-blk over
// virtio-pci, juice's RAM disk) and directly on QEMU (QEMU's virtio-blk-pci
// over a raw file), alternately, and prints the guest's MB/s both ways and
// their ratio; then the same guest under juice on juice's host-disk
// back-end (blkhostbench.go) against the RAM disk.
func cmdBenchBlk(c jeosBenchConfig, stdout, stderr io.Writer) int {
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
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, make([]byte, blkBenchMiB<<20), 0o644); err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	cmdline := `console=ttyS0 jeos.exec="` + blkBenchExec + `" ` + jeos.PoweroffArg
	vm := launch.VMSpec{Name: "jeos", Kernel: img.Vmlinux, Cmdline: cmdline,
		Modules: []launch.ModuleSpec{{Path: img.Initrd, Cmdline: "initrd"}}, Memory: c.vmMem,
		Devices: &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{Size: bundle.Memory(fmt.Sprintf("%dM", blkBenchMiB))}}}}
	b, err := launch.BuildBundle([]launch.VMSpec{vm})
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	hostBench, err := newBlkHostBench(dir, vm, blkBenchMiB<<20)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	bundlePath, err := launch.WriteBundle(dir, b)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench --blk: %d runs; the JeOS guest (PVH) reads then writes %d MiB with dd bs=1M: under juice (virtio-blk-pci, RAM disk; and on juice's host-disk back-end, a raw file QEMU gives juice) and directly on QEMU (virtio-blk-pci, raw file); QEMU TCG -cpu max\n", c.runs, blkBenchMiB)
	var jr, jw, qr, qw, hr, hw []float64
	var juiceTexts [][]string // the good runs under juice, for blkPerMiB
	status := 0
	for i := 1; i <= c.runs; i++ {
		m, err := launch.Start(ctx, launch.Config{Kernel: c.juice, Boot: launch.BootPVH, Mem: c.mem, Initrd: bundlePath, Timeout: c.timeout})
		if err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
		res := m.Wait()
		nested, ok1 := ddRates(m.Console.Texts())
		if ok1 {
			juiceTexts = append(juiceTexts, m.Console.Texts())
		}
		m2, err := launch.Start(ctx, launch.Config{Kernel: img.Vmlinux, Boot: launch.BootPVH, Mem: c.vmMem, Initrd: img.Initrd,
			Append: cmdline, NoDebugExit: true, Timeout: c.timeout,
			ExtraArgs: []string{"-drive", "if=none,id=d0,format=raw,file=" + raw, "-device", "virtio-blk-pci,drive=d0"}})
		if err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
		res2 := m2.Wait()
		direct, ok2 := ddRates(m2.Console.Texts())
		if res.Outcome == launch.Killed || res2.Outcome == launch.Killed {
			return launch.ExitKilled
		}
		m3, err := launch.Start(ctx, hostBench.config(c))
		if err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
		res3 := m3.Wait()
		if res3.Outcome == launch.Killed {
			return launch.ExitKilled
		}
		var hostLine string
		if onHost, ok := ddRates(m3.Console.Texts()); ok {
			hostLine = fmt.Sprintf("  run %d/%d: host-disk back-end under juice: read %.1f MB/s, write %.1f\n", i, c.runs, onHost[0], onHost[1])
			hr, hw = append(hr, onHost[0]), append(hw, onHost[1])
		} else {
			hostLine = fmt.Sprintf("  run %d/%d: host-disk back-end: FAILED (%v, %v)\n", i, c.runs, res3, onHost)
			status = 1
		}
		if !ok1 || !ok2 {
			fmt.Fprintf(stdout, "  run %d/%d: FAILED (juice: %v, %v; direct: %v, %v)\n", i, c.runs, res, nested, res2, direct)
			fmt.Fprint(stdout, hostLine)
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "  run %d/%d: read %.1f MB/s under juice, %.1f direct; write %.1f under juice, %.1f direct\n", i, c.runs, nested[0], direct[0], nested[1], direct[1])
		fmt.Fprint(stdout, hostLine)
		jr, jw, qr, qw = append(jr, nested[0]), append(jw, nested[1]), append(qr, direct[0]), append(qw, direct[1])
	}
	if len(jr) > 0 {
		a, _ := launch.Median(jr)
		bq, _ := launch.Median(qr)
		cw, _ := launch.Median(jw)
		d, _ := launch.Median(qw)
		fmt.Fprintf(stdout, "  medians: read %.1f vs %.1f MB/s (%.2fx), write %.1f vs %.1f MB/s (%.2fx) (juice vs QEMU's own virtio-blk; guest-timed)\n", a, bq, a/bq, cw, d, cw/d)
		if len(hr) > 0 {
			e, _ := launch.Median(hr)
			f, _ := launch.Median(hw)
			fmt.Fprintln(stdout, blkHostSummary(a, e, cw, f))
		}
		blkPerMiB(ctx, c, dir, vm, juiceTexts, blkBenchMiB, stdout)
	}
	return status
}
