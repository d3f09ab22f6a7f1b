// Command juice is the host-side tool for the juice hypervisor: it boots
// juice under QEMU, or Bochs for VT-x (`juice run`), builds boot media (`juice image iso`) and
// measures boot and VM-exit figures (`juice bench`, `juice bench --vm`).
// The work is done by package juice/cmd/juice/launch, which the
// integration tests share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
)

// defaultKernel is the image `make build` produces, relative to the
// repository root.
const defaultKernel = "build/juice.elf"

// usage is the text of `juice help`.
const usage = `juice: host tool for the juice hypervisor

Usage:
  juice run   [flags]        boot juice under QEMU (Bochs with --cpu intel),
                             serial console on this terminal
  juice image iso [flags] -o FILE
                             build a hybrid GRUB ISO (BIOS and UEFI; a CD,
                             or written raw to a USB stick)
  juice image usb [flags] [--size SIZE] -o FILE
                             build a USB stick image (BIOS and UEFI; its
                             FAT32 partition holds grub.cfg and the bundle)
  juice image pxe [flags] -o DIR
                             build a PXE tree (TFTP root: GRUB network images
                             for BIOS and UEFI, an iPXE script)
  juice bench [--runs N] [--juice FILE]
                             median boot figures over N self-test boots
  juice bench --vm [--runs N] [--juice FILE] [--guest FILE]
                             VM-exit costs: the bench guest (default
                             build/guests/bench.elf) N times under juice and
                             N times on plain QEMU; median TSC ticks per
                             CPUID, port read, MMIO read and hypercall, the
                             ratio, and juice's exits per second
  juice bench --media [--runs N] [--boots iso-bios,usb-efi,...]
                             the JeOS guest under juice from each boot
                             medium: seconds to GRUB, juice, the guest's
                             start and its user-space marker
  juice bench --vms N [--vm-mem 88M] [--runs R]
                             N tiny JeOS VMs (juice jeos --tiny) booted
                             together in one juice, against one alone:
                             VMs booted per minute, juice's own memory per
                             VM beyond guest RAM and its parts
  juice bench --scale [--runs R] [--scale-mib 16]
                             two parallel jobs in a JeOS guest with 1 and
                             2 vCPUs on a 2-CPU juice, and directly on
                             QEMU with 1 and 2 CPUs: guest-timed seconds
                             and speed-ups (QEMU's multi-threaded TCG)
  juice jeos [--out DIR] [--kernel-package NAME] [--force] [--tiny] [-q]
                             build the JeOS guest (Debian kernel + u-root
                             initramfs) into DIR (default build/jeos),
                             cached; prints the kernel, vmlinux and
                             initrd (-q: no progress lines); --tiny also
                             builds DIR/tiny.cpio (jeosinit alone, for
                             many small VMs) and prints it as the initrd
  juice help                 this text

juice run flags, the guests (without --kernel or --bundle juice runs no VM):
  --kernel FILE    run FILE as one VM: a multiboot v1 (ELF32 or a.out
                   kludge) or PVH kernel
  --append ARGS    the guest's command line
  --initrd 'FILE [ARGS]'
                   a boot module for the guest; repeat for more. The guest
                   sees its name as "BASENAME ARGS"
  --vm-mem SIZE    the guest's RAM (default 32M)
  --vm-cpus N      the guest's vCPUs (default 1)
  --name NAME      the VM's name (default: the kernel's file name without
                   its extension; [a-z0-9-], at most 32)
  --bundle FILE    run several VMs: a manifest.json, whose file names are
                   relative to it, or a ready bundle archive (newc cpio):
                   {"vms":[{"name":"a","kernel":"a.elf","cmdline":"...",
                     "modules":[{"file":"m","cmdline":"..."}],
                     "memory":"16M","vcpus":1}, ...]}
juice run flags, juice and the emulated machine:
  --juice FILE     juice's image (default build/juice.elf)
  --juice-append ARGS
                   juice's command line
  --boot PATH      pvh (QEMU -kernel, default), or GRUB from the media
                   juice image builds, under SeaBIOS (-bios) or OVMF
                   (-efi): iso-bios, iso-efi (the ISO as a CD; also
                   grub-bios, grub-efi), iso-usb-bios, iso-usb-efi (the ISO
                   as a USB stick), usb-bios, usb-efi (the USB image),
                   pxe-bios, pxe-efi (the PXE tree over QEMU's TFTP),
                   ipxe-bios, ipxe-efi (the same through juice.ipxe); Bochs
                   boots only grub-bios (its default)
  --mem SIZE       the machine's RAM (default 256M)
  --cpus N         the machine's CPUs (default 1)
  --selftest       add "juice.mode=selftest juice.panic=poweroff"
  --timeout D      kill the emulator after D (e.g. 90s, 2m; plain number =
                   seconds; 0 = never, the default)
  --cpu VENDOR     amd (QEMU TCG -cpu max: AMD-V with NPT, default) or
                   intel (Bochs, model corei7_skylake_x: VT-x with EPT;
                   a GRUB ISO under Bochs's BIOS, console output only,
                   much slower: a self-test takes about a minute)

The VMs reach juice as a bundle (a newc cpio with manifest.json), its first
boot module: QEMU -initrd for pvh, /boot/bundle.cpio loaded by a module2
line of /boot/grub/grub.cfg on the boot media. juice image takes the same
guest flags and --juice, --juice-append.

On a terminal the QEMU monitor shares the console: Ctrl-A x quits QEMU.
The exit status is juice's: the value it wrote to the isa-debug-exit port
or announced in "juice: power off, status N", which is the first VM's exit
status when juice runs VMs; 124 on timeout, 125 when the machine reset or
triple-faulted (or, under Bochs, shut down without that line), 126 when
the emulator failed, 127 when it could not be started, 130 when
interrupted, 2 for usage errors.
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Main runs the juice command with args (without the program name) and
// returns the exit status. `juice run` is interactive (the QEMU monitor
// on the console, QEMU reading stdin) when stdin is a terminal; nil means
// not interactive.
func Main(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run":
		return cmdRun(args[1:], stdin != nil && isTerminal(stdin), stdout, stderr)
	case "image":
		return cmdImage(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "jeos":
		return cmdJeos(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "juice: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// seconds is a flag.Value for a duration that also accepts a plain
// number of seconds.
type seconds time.Duration

// String formats the duration.
func (s *seconds) String() string { return time.Duration(*s).String() }

// Set parses "90", "90s", "1m30s".
func (s *seconds) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return errors.New("negative duration")
		}
		*s = seconds(time.Duration(n * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return errors.New("negative duration")
	}
	*s = seconds(d)
	return nil
}

// newFlagSet returns a flag set for subcommand name that reports errors to
// stderr and does not exit.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("juice "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, rejects stray arguments, and returns the exit
// status to use on failure (0 when parsing succeeded).
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return -1
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return 0
}

// cmdRun implements `juice run`; interactive gives QEMU this process's
// standard input and the monitor.
func cmdRun(args []string, interactive bool, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	guests := addGuestFlags(fs)
	kernel := fs.String("juice", defaultKernel, "juice's image")
	juiceArgs := fs.String("juice-append", "", "juice's command line")
	boot := fs.String("boot", string(launch.BootPVH), "boot path: pvh, iso-bios, iso-efi, iso-usb-bios, iso-usb-efi, usb-bios, usb-efi, pxe-bios, pxe-efi, ipxe-bios, ipxe-efi (grub-bios, grub-efi)")
	mem := fs.String("mem", "256M", "the machine's RAM")
	cpus := fs.Int("cpus", 1, "the machine's CPUs")
	selftest := fs.Bool("selftest", false, "run the self-test and power off")
	cpu := fs.String("cpu", "amd", "amd (QEMU, AMD-V) or intel (Bochs, VT-x)")
	var timeout seconds
	fs.Var(&timeout, "timeout", "kill the emulator after this long (0: never)")
	if rc := parseFlags(fs, args); rc != 0 {
		return max(rc, 0)
	}
	emulator := launch.EmulatorQEMU
	switch *cpu {
	case "amd":
	case "intel":
		emulator = launch.EmulatorBochs
	default:
		fmt.Fprintf(stderr, "juice run: unknown --cpu %q (want amd or intel)\n", *cpu)
		return 2
	}
	b, err := launch.ParseBoot(*boot)
	if err != nil {
		fmt.Fprintln(stderr, "juice run:", err)
		return 2
	}
	if emulator == launch.EmulatorBochs {
		if flagSet(fs, "boot") && b != launch.BootGRUBBIOS {
			fmt.Fprintf(stderr, "juice run: --cpu intel runs Bochs, which boots only --boot %s, not %s\n", launch.BootGRUBBIOS, b)
			return 2
		}
		b = launch.BootGRUBBIOS
		// Bochs's console is a file: there is nothing to type into.
		interactive = false
	}
	if err := guests.check(fs); err != nil {
		fmt.Fprintln(stderr, "juice run:", err)
		return 2
	}
	cmdline := *juiceArgs
	if *selftest {
		cmdline = strings.TrimSpace(cmdline + " " + launch.SelftestArgs)
	}
	cfg := launch.Config{
		Emulator:    emulator,
		Kernel:      *kernel,
		Boot:        b,
		Mem:         *mem,
		CPUs:        *cpus,
		Append:      cmdline,
		Timeout:     time.Duration(timeout),
		Interactive: interactive,
		Echo:        stdout,
		EchoStderr:  stderr,
	}
	if guests.any() {
		dir, err := os.MkdirTemp("", "juice-run-")
		if err != nil {
			fmt.Fprintln(stderr, "juice run:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if cfg.Initrd, err = guests.write(dir); err != nil {
			fmt.Fprintln(stderr, "juice run:", err)
			return 2
		}
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	m, err := launch.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "juice run:", err)
		if errors.Is(err, launch.ErrNoEmulator) {
			return launch.ExitNoQEMU
		}
		return 2
	}
	r := m.Wait()
	// The guest's last line may lack a newline; keep the note apart.
	if raw := m.Console.Raw(); len(raw) > 0 && raw[len(raw)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	fmt.Fprintln(stderr, "juice run:", r)
	return r.ExitCode()
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// stringList is a repeatable string flag.
type stringList []string

// String joins the values.
func (l *stringList) String() string { return strings.Join(*l, ", ") }

// Set appends a value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// guestFlags are the flags of `juice run` and `juice image iso` that
// describe the VMs: one from --kernel and its companions, or several from
// --bundle.
type guestFlags struct {
	kernel, appendArgs, name, vmMem, bundle *string
	vmCPUs                                  *int
	initrd                                  stringList
}

// addGuestFlags defines the guest flags on fs.
func addGuestFlags(fs *flag.FlagSet) *guestFlags {
	g := &guestFlags{
		kernel:     fs.String("kernel", "", "guest kernel, run as one VM"),
		appendArgs: fs.String("append", "", "the guest's command line"),
		name:       fs.String("name", "", "the VM's name (default: from the kernel's file name)"),
		vmMem:      fs.String("vm-mem", launch.DefaultVMMemory, "the guest's RAM"),
		vmCPUs:     fs.Int("vm-cpus", 1, "the guest's vCPUs"),
		bundle:     fs.String("bundle", "", "manifest.json or bundle archive with several VMs"),
	}
	fs.Var(&g.initrd, "initrd", "'FILE [ARGS]': a boot module for the guest (repeatable)")
	return g
}

// any reports whether the flags name any VM.
func (g *guestFlags) any() bool { return *g.kernel != "" || *g.bundle != "" }

// check rejects flag combinations that make no sense: the single-VM
// flags without --kernel, or next to --bundle.
func (g *guestFlags) check(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	single := []string{"append", "initrd", "name", "vm-mem", "vm-cpus"}
	switch {
	case *g.bundle != "" && set["kernel"]:
		return errors.New("--kernel and --bundle exclude each other (list the VM in the manifest)")
	case *g.bundle != "":
		for _, f := range single {
			if set[f] {
				return fmt.Errorf("--%s describes the --kernel VM; with --bundle, set it in the manifest", f)
			}
		}
	case *g.kernel == "":
		for _, f := range single {
			if set[f] {
				hint := ""
				if f == "append" {
					hint = " (juice's own command line is --juice-append)"
				}
				return fmt.Errorf("--%s needs --kernel%s", f, hint)
			}
		}
	}
	return nil
}

// write builds the bundle the flags describe and writes it into dir,
// returning its path.
func (g *guestFlags) write(dir string) (string, error) {
	var data []byte
	var err error
	if *g.bundle != "" {
		data, err = launch.LoadBundle(*g.bundle)
	} else {
		vm := launch.VMSpec{Name: *g.name, Kernel: *g.kernel, Cmdline: *g.appendArgs, Memory: *g.vmMem, VCPUs: *g.vmCPUs}
		for _, m := range g.initrd {
			vm.Modules = append(vm.Modules, launch.ParseModule(m))
		}
		data, err = launch.BuildBundle([]launch.VMSpec{vm})
	}
	if err != nil {
		return "", err
	}
	return launch.WriteBundle(dir, data)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && st.Mode()&os.ModeDevice != 0
}

// cmdJeos implements `juice jeos`: it builds (or finds cached) the JeOS
// guest and prints its files.
func cmdJeos(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("jeos", stderr)
	out := fs.String("out", jeos.DefaultDir, "build (cache) directory")
	pkg := fs.String("kernel-package", jeos.DefaultKernelPackage, "Debian kernel package or metapackage")
	force := fs.Bool("force", false, "rebuild everything")
	quiet := fs.Bool("q", false, "no progress lines")
	tiny := fs.Bool("tiny", false, "also build the tiny initramfs (jeosinit alone, "+jeos.TinyInitrdFile+") and show it as the initrd")
	if rc := parseFlags(fs, args); rc != 0 {
		return max(rc, 0)
	}
	var log io.Writer = stderr
	if *quiet {
		log = nil
	}
	start := time.Now()
	build := jeos.Build
	if *tiny {
		build = jeos.BuildTiny
	}
	img, err := build(jeos.Options{Dir: *out, KernelPackage: *pkg, Force: *force, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "juice jeos:", err)
		return 1
	}
	how := fmt.Sprintf("built in %.1fs", time.Since(start).Seconds())
	if img.Cached {
		how = "up to date"
	}
	fmt.Fprintf(stdout, "juice jeos: %s %s (Linux %s), %d modules, %s\n", img.Package, img.Version, img.Release, len(img.Modules), how)
	show := func(what, path, note string) {
		if path == "" {
			return
		}
		size := int64(-1)
		if st, err := os.Stat(path); err == nil {
			size = st.Size()
		}
		fmt.Fprintf(stdout, "  %-8s %-28s %10d bytes%s\n", what, path, size, note)
	}
	show("kernel", img.Kernel, "  bzImage")
	pvh := "  ELF, no PVH note"
	if img.PVHEntry != 0 {
		pvh = fmt.Sprintf("  ELF, PVH entry %#x", img.PVHEntry)
	}
	show("vmlinux", img.Vmlinux, pvh)
	show("initrd", img.Initrd, "  newc cpio")
	for _, n := range img.Notes {
		fmt.Fprintln(stdout, "  note:", n)
	}
	return 0
}
