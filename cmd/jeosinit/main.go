// Command jeosinit is the init program of juice's JeOS guest (the small
// Linux guest that `juice jeos` builds). It runs inside the guest, built
// with CGO_ENABLED=0 for linux/amd64.
//
// In the default image it is u-root's uinit: u-root's /init mounts the
// pseudo file systems, runs jeosinit, and drops into the shell on the
// console when jeosinit returns. It also works as the only program of an
// initramfs (/init, pid 1): then it mounts proc, sysfs and devtmpfs itself
// (Debian's kernel does not automount devtmpfs) and, when done, runs
// /bin/sh or, without one, waits forever.
//
// It loads the kernel modules listed, one file name a line and in order,
// in /lib/modules/juice/order with finit_module(2) (a missing list or
// module is reported and skipped, never fatal), then prints exactly one
// line on standard output:
//
//	JEOS-READY uptime=<seconds from /proc/uptime> modules=<loaded>/<listed>
//
// Kernel command-line options: jeos.poweroff syncs and powers off right
// after that line (benchmarks use it); jeos.verbose logs each module.
// jeos.ip=ADDR/PREFIX gives eth0 that address and brings it and lo up
// (with /bbin/ip) before the marker. jeos.exec=COMMAND (quote it:
// jeos.exec="a; b") runs COMMAND with /bin/sh -c after the marker, its
// output on the console, then prints
//
//	JEOS-EXEC status=<exit status>
//
// and carries on (powering off after it when jeos.poweroff is given).
//
// When the guest has a virtio console (/dev/hvc0 once the modules are
// loaded), jeosinit also keeps a shell on it, besides the one u-root's
// init runs on the kernel's console: right after the marker it starts
// itself as "jeosinit getty /dev/hvc0" in a session of its own, which
// runs /bin/sh with hvc0 as its controlling terminal and its standard
// input, output and error, and starts another when it ends (see getty).
// It does not when hvc0 is the kernel's console already (console=hvc0:
// u-root's shell is there) or with jeos.poweroff (nobody will type).
//
// jeosinit is also the guest's poweroff and reboot: it syncs and calls
// reboot(2) when its name (argv[0]) or its first argument is "poweroff"
// or "reboot". The image puts /bin/poweroff and /bin/reboot on PATH as
// two-line scripts that run "jeosinit poweroff" and "jeosinit reboot".
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Paths inside the guest.
const (
	// moduleDir holds the modules and their order file.
	moduleDir = "/lib/modules/juice"
	// orderFile lists the modules to load, in order.
	orderFile = moduleDir + "/order"
	// shell is what a pid-1 jeosinit runs after the marker, and what
	// runs jeos.exec.
	shell = "/bin/sh"
	// ipTool configures the network for jeos.ip (u-root's ip).
	ipTool = "/bbin/ip"
	// netIface is the interface jeos.ip configures.
	netIface = "eth0"
	// hvcTTY is the virtio console's terminal, where getty keeps a shell.
	hvcTTY = "/dev/hvc0"
	// hvcName is its name on the kernel command line (console=hvc0).
	hvcName = "hvc0"
)

// action is what one run of jeosinit does.
type action int

// The actions.
const (
	actInit     action = iota // load modules, print the marker
	actPoweroff               // sync and power off
	actReboot                 // sync and restart
	actGetty                  // keep a shell on a terminal
)

// String names the action as on the command line.
func (a action) String() string {
	switch a {
	case actPoweroff:
		return "poweroff"
	case actReboot:
		return "reboot"
	case actGetty:
		return "getty"
	}
	return "init"
}

// system is jeosinit's access to the kernel, a seam so that the init
// sequence can be tested on a host.
type system struct {
	pid        int
	readFile   func(path string) ([]byte, error)
	mountBasic func() error                           // proc, sysfs, devtmpfs (pid 1 only)
	releaseTTY func() error                           // give up the controlling terminal without hanging it up
	loadModule func(path string) error                // open + finit_module; nil error or errAlreadyLoaded count as loaded
	sync       func()                                 // sync(2)
	reboot     func(a action) error                   // reboot(2); returns only on failure
	execShell  func(path string) error                // execve; returns only on failure
	idle       func()                                 // never returns (pid 1 with nothing to run)
	now        func() time.Time                       // for jeos.verbose timings
	glob       func(pattern string) ([]string, error) // filepath.Glob over /sys and /dev; nil: no devices
	stdout     io.Writer                              // the marker
	stderr     io.Writer                              // messages
	sleep      func(d time.Duration)                  // time.Sleep (getty's pauses)
	self       string                                 // argv[0], for starting jeosinit again

	// spawn starts jeosinit again, with argv, in a session of its own
	// and without waiting for it: standard input empty, output and
	// errors to the console.
	spawn func(argv []string) error
	// ttyShell runs the shell (a path) in a session of its own with tty
	// as its controlling terminal and standard input, output and error,
	// and waits for it to end; its error is as command's.
	ttyShell func(tty, shell string) error

	// command runs argv[0] (a path) with argv, standard input empty and
	// output to stdout and stderr, and waits for it; a non-zero exit is
	// an error that exitStatus reads.
	command func(argv []string, stdout, stderr io.Writer) error
}

func main() {
	sys := hostSystem()
	os.Exit(run(sys, os.Args))
}

// run is jeosinit with argv and returns its exit status.
func run(sys *system, argv []string) int {
	a, args := chooseAction(argv)
	switch a {
	case actPoweroff, actReboot:
		sys.sync()
		err := sys.reboot(a)
		fmt.Fprintf(sys.stderr, "%s: %v\n", a, err)
		return 1
	case actGetty:
		if len(args) != 1 || !strings.HasPrefix(args[0], "/dev/") {
			fmt.Fprintf(sys.stderr, "usage: jeosinit getty /dev/TTY (not %q)\n", args)
			return 2
		}
		return getty(sys, args[0], 0)
	}
	return initGuest(sys)
}

// chooseAction picks the action from the program name or, failing that,
// the first argument (u-root's busybox replaces argv[0] with the name of
// the command it runs, so /bin/poweroff is "jeosinit poweroff"), and
// returns the arguments after the one that named it.
func chooseAction(argv []string) (action, []string) {
	for i, s := range argv {
		if i > 1 {
			break
		}
		a := actInit
		switch filepath.Base(s) {
		case "poweroff":
			a = actPoweroff
		case "reboot":
			a = actReboot
		case "getty":
			a = actGetty
		}
		if a != actInit {
			return a, argv[i+1:]
		}
	}
	return actInit, nil
}

// initGuest mounts (as pid 1), loads the modules, prints the marker and
// powers off when asked; it returns 0 unless it is pid 1, where it does
// not return.
func initGuest(sys *system) int {
	pid1 := sys.pid == 1
	if pid1 {
		if err := sys.mountBasic(); err != nil {
			fmt.Fprintf(sys.stderr, "jeosinit: %v\n", err)
		}
	}
	var opts options
	if b, err := sys.readFile("/proc/cmdline"); err != nil {
		fmt.Fprintf(sys.stderr, "jeosinit: %v\n", err)
	} else {
		opts = parseOptions(string(b))
	}

	var mods []string
	if b, err := sys.readFile(orderFile); err != nil {
		fmt.Fprintf(sys.stderr, "jeosinit: no module list, loading none: %v\n", err)
	} else {
		mods = parseOrder(string(b))
	}
	loaded := 0
	for _, m := range mods {
		start := sys.now()
		err := sys.loadModule(moduleFile(m))
		switch {
		case err == nil || err == errAlreadyLoaded:
			loaded++
			if opts.verbose {
				fmt.Fprintf(sys.stderr, "jeosinit: %s loaded in %v\n", m, sys.now().Sub(start).Round(time.Microsecond))
			}
		default:
			fmt.Fprintf(sys.stderr, "jeosinit: %s: %v (skipped)\n", m, err)
		}
	}

	devs := devices(sys)

	uptime := "unknown"
	if b, err := sys.readFile("/proc/uptime"); err != nil {
		fmt.Fprintf(sys.stderr, "jeosinit: %v\n", err)
	} else if u, err := parseUptime(string(b)); err != nil {
		fmt.Fprintf(sys.stderr, "jeosinit: /proc/uptime: %v\n", err)
	} else {
		uptime = u
	}
	if opts.ip != "" {
		configureNet(sys, opts.ip)
	}
	fmt.Fprintln(sys.stdout, marker(uptime, loaded, len(mods))+" devices="+devs)

	if !opts.poweroff && !opts.hvcConsole && exists(sys, hvcTTY) {
		// Started after the marker, so that it does not delay it.
		argv := []string{sys.self, "getty", hvcTTY}
		if err := sys.spawn(argv); err != nil {
			fmt.Fprintf(sys.stderr, "jeosinit: no shell on %s: %v\n", hvcTTY, err)
		}
	}

	if opts.exec != "" {
		// The command's output and ours go to the console in turn.
		err := sys.command([]string{shell, "-c", opts.exec}, sys.stdout, sys.stdout)
		if err != nil && exitStatus(err) < 0 {
			fmt.Fprintf(sys.stderr, "jeosinit: jeos.exec: %v\n", err)
		}
		fmt.Fprintf(sys.stdout, "JEOS-EXEC status=%d\n", exitStatus(err))
	}

	if opts.poweroff {
		sys.sync()
		err := sys.reboot(actPoweroff)
		fmt.Fprintf(sys.stderr, "jeosinit: power off: %v\n", err)
	}
	if !pid1 {
		// u-root's init started us as a session leader owning the
		// console. A session leader's exit hangs the terminal up, and
		// the shell init starts next would find its console dead; so
		// let go of it first.
		if err := sys.releaseTTY(); err != nil {
			fmt.Fprintf(sys.stderr, "jeosinit: releasing the console: %v\n", err)
		}
		return 0
	}
	// pid 1 must never exit: the kernel would panic.
	err := sys.execShell(shell)
	fmt.Fprintf(sys.stderr, "jeosinit: %s: %v; idling\n", shell, err)
	sys.idle()
	return 0
}

// configureNet gives eth0 the jeos.ip address and brings eth0 and lo up;
// what fails is reported and the rest still tried.
func configureNet(sys *system, addr string) {
	a, err := parseAddr(addr)
	if err != nil {
		fmt.Fprintf(sys.stderr, "jeosinit: %v\n", err)
		return
	}
	for _, args := range [][]string{
		{"addr", "add", a, "dev", netIface},
		{"link", "set", "dev", netIface, "up"},
		{"link", "set", "dev", "lo", "up"},
	} {
		argv := append([]string{ipTool}, args...)
		if err := sys.command(argv, sys.stderr, sys.stderr); err != nil {
			fmt.Fprintf(sys.stderr, "jeosinit: %s: %v\n", strings.Join(argv, " "), err)
		}
	}
}

// runCommand is the system's command on a real machine: os/exec, whose
// output goes straight to stdout and stderr when they are files.
func runCommand(argv []string, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = stdout, stderr
	return c.Run()
}

// exitStatus is a command's exit status from command's error: 0 for
// none, the status for a command that exited, -1 for one that could not
// run or was killed by a signal.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var e interface{ ExitCode() int }
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	return -1
}

// moduleFile is the path of a module named in the order file.
func moduleFile(entry string) string {
	return filepath.Join(moduleDir, entry)
}

// devices waits (at most two seconds) until every virtio device the
// kernel found has a driver, then names what the drivers made of them:
// block devices (vda...), network interfaces (eth0...), the hardware RNG
// ("hwrng:" and its current source) and virtio console ports (vport...),
// comma-separated; "none" when there are none.
func devices(sys *system) string {
	if sys.glob == nil {
		return "none"
	}
	for i := 0; i < 100; i++ {
		all, _ := sys.glob("/sys/bus/virtio/devices/virtio*")
		bound, _ := sys.glob("/sys/bus/virtio/devices/virtio*/driver")
		if len(bound) >= len(all) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out []string
	for _, pat := range []string{"/sys/class/block/vd*", "/sys/class/net/eth*", "/sys/class/virtio-ports/vport*"} {
		m, _ := sys.glob(pat)
		for _, p := range m {
			name := filepath.Base(p)
			if strings.HasPrefix(name, "vd") && strings.ContainsAny(name[2:], "0123456789") {
				continue // a partition
			}
			out = append(out, name)
		}
	}
	if b, err := sys.readFile("/sys/class/misc/hw_random/rng_current"); err == nil {
		if cur := strings.TrimSpace(string(b)); cur != "" && cur != "none" {
			out = append(out, "hwrng:"+cur)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// exists reports whether a file is there (by the system's glob).
func exists(sys *system, name string) bool {
	if sys.glob == nil {
		return false
	}
	m, err := sys.glob(name)
	return err == nil && len(m) > 0
}

// Pauses between getty's shells.
const (
	gettyPause    = time.Second      // after a shell that ran a while
	gettyMaxPause = time.Minute      // at most, after shells that keep failing
	gettyQuick    = 10 * time.Second // a shell ending sooner failed (or was left at once)
)

// getty keeps a shell on tty, as a getty keeps a login there: it runs
// one (sys.ttyShell), waits for it to end, pauses and starts the next.
// The pause is gettyPause after a shell that ran at least gettyQuick and
// doubles, up to gettyMaxPause, while shells end sooner, so that a
// terminal that cannot work does not keep the guest busy. It returns
// after max shells; 0 means never.
func getty(sys *system, tty string, max int) int {
	pause := gettyPause
	for n := 1; max == 0 || n <= max; n++ {
		start := sys.now()
		err := sys.ttyShell(tty, shell)
		if exitStatus(err) < 0 {
			fmt.Fprintf(sys.stderr, "jeosinit: shell on %s: %v\n", tty, err)
		}
		if sys.now().Sub(start) >= gettyQuick {
			pause = gettyPause
		} else {
			pause = min(2*pause, gettyMaxPause)
		}
		if max == 0 || n < max {
			sys.sleep(pause)
		}
	}
	return 0
}

// marker is the line jeosinit prints when the guest is ready.
func marker(uptime string, loaded, listed int) string {
	return fmt.Sprintf("JEOS-READY uptime=%s modules=%d/%d", uptime, loaded, listed)
}
