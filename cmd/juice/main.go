// Command juice is the host-side tool for the juice hypervisor: it boots
// juice under QEMU (`juice run`), builds boot media (`juice image iso`) and
// measures boot figures (`juice bench`). The work is done by package
// juice/cmd/juice/launch, which the integration tests share.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"juice/cmd/juice/launch"
)

// defaultKernel is the image `make build` produces, relative to the
// repository root.
const defaultKernel = "build/juice.elf"

// usage is the text of `juice help`.
const usage = `juice: host tool for the juice hypervisor

Usage:
  juice run   [flags]        boot juice under QEMU, serial console on this terminal
  juice image iso [flags] -o FILE
                             build a GRUB ISO (BIOS and UEFI; CD or USB stick)
  juice image usb            (not yet)
  juice bench [--runs N]     median boot figures over N self-test boots
  juice jeos                 (not yet: see issue 5)
  juice help                 this text

juice run flags:
  --kernel FILE    kernel image (default build/juice.elf)
  --boot PATH      pvh (QEMU -kernel, default), grub-bios (GRUB ISO under
                   SeaBIOS) or grub-efi (GRUB ISO under OVMF)
  --mem SIZE       guest RAM (default 256M)
  --cpus N         virtual CPUs (default 1)
  --append ARGS    juice's command line
  --selftest       add "juice.mode=selftest juice.panic=poweroff"
  --timeout D      kill QEMU after D (e.g. 90s, 2m; plain number = seconds;
                   0 = never, the default)
  --cpu VENDOR     amd (QEMU TCG -cpu max: AMD-V with NPT, default) or
                   intel (Bochs, VT-x: not yet supported)

On a terminal the QEMU monitor shares the console: Ctrl-A x quits QEMU.
The exit status is juice's: the value it wrote to the isa-debug-exit port
or announced in "juice: power off, status N"; 124 on timeout, 125 when the
guest reset or triple-faulted, 126 when QEMU failed, 127 when QEMU could not
be started, 130 when interrupted, 2 for usage errors.
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
		fmt.Fprintln(stderr, "juice jeos: not yet: see issue 5")
		return 2
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
	kernel := fs.String("kernel", defaultKernel, "kernel image")
	boot := fs.String("boot", string(launch.BootPVH), "boot path: pvh, grub-bios or grub-efi")
	mem := fs.String("mem", "256M", "guest RAM")
	cpus := fs.Int("cpus", 1, "virtual CPUs")
	appendArgs := fs.String("append", "", "juice's command line")
	selftest := fs.Bool("selftest", false, "run the self-test and power off")
	cpu := fs.String("cpu", "amd", "amd (QEMU, AMD-V) or intel (Bochs, VT-x)")
	var timeout seconds
	fs.Var(&timeout, "timeout", "kill QEMU after this long (0: never)")
	if rc := parseFlags(fs, args); rc != 0 {
		return max(rc, 0)
	}
	switch *cpu {
	case "amd":
	case "intel":
		fmt.Fprintln(stderr, "juice run: --cpu intel (Bochs, VT-x) is not yet supported")
		return 2
	default:
		fmt.Fprintf(stderr, "juice run: unknown --cpu %q (want amd or intel)\n", *cpu)
		return 2
	}
	b, err := launch.ParseBoot(*boot)
	if err != nil {
		fmt.Fprintln(stderr, "juice run:", err)
		return 2
	}
	cmdline := *appendArgs
	if *selftest {
		cmdline = strings.TrimSpace(cmdline + " " + launch.SelftestArgs)
	}
	cfg := launch.Config{
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

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && st.Mode()&os.ModeDevice != 0
}

// cmdImage implements `juice image iso|usb`.
func cmdImage(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "juice image: want iso or usb")
		return 2
	}
	switch args[0] {
	case "usb":
		fmt.Fprintln(stderr, "juice image usb: not yet (the ISO from `juice image iso` is a hybrid image: it also boots when written to a USB stick)")
		return 2
	case "iso":
	default:
		fmt.Fprintf(stderr, "juice image: unknown image %q (want iso or usb)\n", args[0])
		return 2
	}
	fs := newFlagSet("image iso", stderr)
	kernel := fs.String("kernel", defaultKernel, "kernel image")
	appendArgs := fs.String("append", "", "juice's command line")
	out := fs.String("o", "", "output ISO file (required)")
	if rc := parseFlags(fs, args[1:]); rc != 0 {
		return max(rc, 0)
	}
	if *out == "" {
		fmt.Fprintln(stderr, "juice image iso: -o FILE is required")
		return 2
	}
	if _, err := os.Stat(*kernel); err != nil {
		fmt.Fprintln(stderr, "juice image iso:", err)
		return 1
	}
	if err := launch.BuildISO(context.Background(), *kernel, *appendArgs, *out); err != nil {
		fmt.Fprintln(stderr, "juice image iso:", err)
		return 1
	}
	fmt.Fprintf(stdout, "juice image iso: wrote %s (GRUB, multiboot2 %s %s)\n", *out, filepath.Base(*kernel), *appendArgs)
	return 0
}
