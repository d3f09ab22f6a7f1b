package main

import (
	"context"
	"fmt"
	"io"
	"juice/cmd/juice/jeos"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/launch"
)

// benchTail is how many console lines a failed bench run shows.
const benchTail = 20

// cmdBench implements `juice bench`: N self-test boots by PVH, medians of
// the figures juice prints, and the image size; with --vm, the VM-exit
// figures of the bench guest instead (cmdBenchVM).
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", stderr)
	runs := fs.Int("runs", 5, "number of boots")
	kernel := fs.String("juice", defaultKernel, "juice's image")
	mem := fs.String("mem", "", "the machine's RAM (default 64M; 256M with --vm)")
	vm := fs.Bool("vm", false, "measure VM exits with the bench guest, under juice and on plain QEMU")
	guest := fs.String("guest", defaultBenchGuest, "with --vm: the bench guest")
	blkMode := fs.Bool("blk", false, "virtio-blk throughput of the JeOS guest under juice and on QEMU's own virtio-blk")
	netMode := fs.Bool("net", false, "guest-to-guest TCP throughput of two JeOS guests on juice's switch and on QEMU's own virtio-net")
	netMiB := fs.Int("net-mib", netBenchMiB, "with --net: MiB the sender streams to the receiver")
	netImage := fs.String("net-guest", "", "with --net: 'VMLINUX INITRD' to boot instead of building JeOS (a PVH kernel and the JeOS initramfs or one like it)")
	jeosMode := fs.Bool("jeos", false, "time the JeOS guest's boot to user space under juice and directly on QEMU")
	kinds := fs.String("kernels", "bzimage,pvh", "with --jeos: which kernel images to boot (bzimage, pvh)")
	jeosDir := fs.String("jeos-dir", jeos.DefaultDir, "with --jeos: the JeOS build directory")
	mediaMode := fs.Bool("media", false, "time the JeOS guest's boot under juice from each boot medium (firmware, GRUB, juice, guest)")
	mediaBoots := fs.String("boots", "all", "with --media: the boot paths, comma-separated")
	manyVMs := fs.Int("vms", 0, fmt.Sprintf("boot N tiny JeOS VMs together and one alone: VMs booted per minute, juice's memory per VM (the issue's N: %d)", manyBenchVMs))
	vmMem := fs.String("vm-mem", manyBenchVMMem, "with --vms: each VM's RAM")
	scaleMode := fs.Bool("scale", false, "a parallel workload in a JeOS guest with 1 and 2 vCPUs on a 2-CPU juice, and directly on QEMU with 1 and 2 CPUs")
	scaleMiB := fs.Int("scale-mib", scaleBenchMiB, "with --scale: MiB each of the two jobs hashes")
	timeout := seconds(120 * time.Second)
	fs.Var(&timeout, "timeout", "time limit per boot")
	if rc := parseFlags(fs, args); rc != 0 {
		return max(rc, 0)
	}
	if *runs < 1 {
		fmt.Fprintln(stderr, "juice bench: --runs must be at least 1")
		return 2
	}
	if *blkMode {
		if *mem == "" {
			*mem = "512M"
		}
		return cmdBenchBlk(jeosBenchConfig{runs: *runs, juice: *kernel, mem: *mem, vmMem: "256M", jeosDir: *jeosDir,
			timeout: time.Duration(timeout)}, stdout, stderr)
	}
	if *netMode {
		if *mem == "" {
			*mem = "768M"
		}
		if *netMiB < 1 {
			fmt.Fprintln(stderr, "juice bench: --net-mib must be at least 1")
			return 2
		}
		return cmdBenchNet(jeosBenchConfig{runs: *runs, juice: *kernel, mem: *mem, vmMem: "256M", jeosDir: *jeosDir,
			timeout: time.Duration(timeout)}, *netMiB, *netImage, stdout, stderr)
	}
	if *scaleMode {
		if *mem == "" {
			*mem = scaleJuiceMem
		}
		if *scaleMiB < 1 {
			fmt.Fprintln(stderr, "juice bench: --scale-mib must be at least 1")
			return 2
		}
		limit := time.Duration(timeout)
		if !flagSet(fs, "timeout") {
			limit = scaleTimeout
		}
		return cmdBenchScale(jeosBenchConfig{runs: *runs, juice: *kernel, mem: *mem, vmMem: scaleVMMem, jeosDir: *jeosDir,
			timeout: limit}, *scaleMiB, stdout, stderr)
	}
	if *manyVMs != 0 {
		if *manyVMs < 1 || *manyVMs > manyBenchMaxVMs {
			fmt.Fprintf(stderr, "juice bench: --vms must be 1 to %d\n", manyBenchMaxVMs)
			return 2
		}
		return cmdBenchMany(manyBenchConfig{runs: *runs, vms: *manyVMs, juice: *kernel, mem: *mem, vmMem: *vmMem,
			jeosDir: *jeosDir, timeout: time.Duration(timeout)}, stdout, stderr)
	}
	if *mediaMode {
		return benchMedia(fs, *runs, *kernel, *mem, *jeosDir, *mediaBoots, time.Duration(timeout), stdout, stderr)
	}
	if *jeosMode {
		if *mem == "" {
			*mem = "512M"
		}
		var ks []string
		for _, k := range strings.Split(*kinds, ",") {
			switch k = strings.TrimSpace(k); k {
			case "bzimage", "pvh":
				ks = append(ks, k)
			default:
				fmt.Fprintf(stderr, "juice bench: unknown kernel kind %q (want bzimage or pvh)\n", k)
				return 2
			}
		}
		return cmdBenchJeOS(jeosBenchConfig{runs: *runs, juice: *kernel, mem: *mem, vmMem: "256M", jeosDir: *jeosDir,
			kernels: ks, timeout: time.Duration(timeout)}, stdout, stderr)
	}
	if *vm {
		if *mem == "" {
			*mem = "256M"
		}
		return cmdBenchVM(vmBenchConfig{runs: *runs, juice: *kernel, guest: *guest, mem: *mem,
			timeout: time.Duration(timeout)}, stdout, stderr)
	}
	if *mem == "" {
		*mem = "64M"
	}
	st, err := os.Stat(*kernel)
	if err != nil {
		fmt.Fprintln(stderr, "juice bench:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "juice bench: %d self-test boots of %s by PVH under QEMU TCG (-m %s)\n", *runs, *kernel, *mem)
	var toMain, toDone, footprint, wall []float64
	failed := 0
	for i := 1; i <= *runs; i++ {
		cfg := launch.Config{
			Kernel:  *kernel,
			Boot:    launch.BootPVH,
			Mem:     *mem,
			Append:  launch.SelftestArgs,
			Timeout: time.Duration(timeout),
		}
		start := time.Now()
		m, err := launch.Start(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "juice bench:", err)
			return 1
		}
		r := m.Wait()
		elapsed := time.Since(start)
		if r.Outcome == launch.Killed {
			fmt.Fprintln(stderr, "juice bench: interrupted")
			return launch.ExitKilled
		}
		f, perr := launch.ParseFigures(m.Console.Texts())
		problem := ""
		switch {
		case !r.Exited() || r.Status != 0:
			problem = r.String()
		case perr != nil:
			problem = perr.Error()
		case f.Failed != 0:
			problem = fmt.Sprintf("%d self-test checks failed", f.Failed)
		}
		if problem != "" {
			failed++
			fmt.Fprintf(stdout, "  run %d/%d: FAILED: %s\n", i, *runs, problem)
			lines := m.Console.Lines()
			fmt.Fprintf(stderr, "  last console lines of run %d:\n", i)
			for _, l := range lines[max(0, len(lines)-benchTail):] {
				fmt.Fprintf(stderr, "    %s\n", launch.Clean(l))
			}
			if s := strings.TrimSpace(r.Stderr); s != "" {
				fmt.Fprintf(stderr, "  QEMU stderr: %s\n", s)
			}
			continue
		}
		toMain = append(toMain, f.EntryToMainMs)
		toDone = append(toDone, f.SelftestMs)
		footprint = append(footprint, f.FootprintKiB)
		wall = append(wall, float64(elapsed.Microseconds())/1000)
		fmt.Fprintf(stdout, "  run %d/%d: entry to main %.3f ms, entry to self-test end %.3f ms, footprint %.0f KiB, QEMU wall %.0f ms\n",
			i, *runs, f.EntryToMainMs, f.SelftestMs, f.FootprintKiB, wall[len(wall)-1])
	}

	if len(toMain) > 0 {
		fmt.Fprintf(stdout, "medians over %d good runs:\n", len(toMain))
		printMedian(stdout, "entry to Go main", toMain, "ms")
		printMedian(stdout, "entry to end of self-test", toDone, "ms")
		printMedian(stdout, "memory footprint after boot", footprint, "KiB")
		printMedian(stdout, "QEMU wall time, start to exit", wall, "ms")
	}
	fmt.Fprintf(stdout, "kernel image size: %d bytes (%.2f MiB) %s\n", st.Size(), float64(st.Size())/(1<<20), *kernel)
	if failed > 0 {
		fmt.Fprintf(stdout, "juice bench: %d of %d runs failed\n", failed, *runs)
		return 1
	}
	return 0
}

// printMedian prints one "name: median (min … max)" line.
func printMedian(w io.Writer, name string, xs []float64, unit string) {
	med, err := launch.Median(xs)
	if err != nil {
		return
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	fmt.Fprintf(w, "  %-30s %10.3f %s  (min %.3f, max %.3f)\n", name+":", med, unit, lo, hi)
}
