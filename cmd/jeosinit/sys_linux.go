package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// errAlreadyLoaded is what loadModule returns for a module the kernel
// already has (EEXIST); it counts as loaded.
var errAlreadyLoaded = unix.EEXIST

// hostSystem is the system of a real Linux guest.
func hostSystem() *system {
	return &system{
		pid:        os.Getpid(),
		readFile:   os.ReadFile,
		glob:       filepath.Glob,
		command:    runCommand,
		mountBasic: mountBasic,
		releaseTTY: releaseTTY,
		loadModule: loadModule,
		sync:       unix.Sync,
		reboot:     reboot,
		execShell: func(path string) error {
			return unix.Exec(path, []string{path}, os.Environ())
		},
		idle: func() {
			for {
				// As pid 1, reap orphans; with none, sleep.
				if _, err := unix.Wait4(-1, nil, 0, nil); err != nil {
					time.Sleep(time.Hour)
				}
			}
		},
		now:      time.Now,
		sleep:    time.Sleep,
		self:     os.Args[0],
		spawn:    spawn,
		ttyShell: ttyShell,
		stdout:   consoleOut(),
		stderr:   os.Stderr,
	}
}

// spawn starts this program again (/proc/self/exe: jeosinit, or u-root's
// busybox, which picks jeosinit by argv[0]) with argv, in a new session
// without a controlling terminal, standard input /dev/null and output to
// the console (/dev/null without one: never jeosinit's own output, which
// may be a pipe from u-root's init that should close when jeosinit
// exits); it does not wait.
func spawn(argv []string) error {
	if len(argv) == 0 {
		return errors.New("no arguments")
	}
	c := exec.Command("/proc/self/exe")
	c.Args = argv
	if out, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		defer out.Close()
		c.Stdout, c.Stderr = out, out
	} // else /dev/null

	c.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	return c.Process.Release()
}

// ttyShell runs shell with tty as its standard input, output and error
// and its controlling terminal, in a session of its own (setsid and
// TIOCSCTTY in the child: the caller must not own tty, hence O_NOCTTY),
// and waits for it. When it ends, the kernel hangs tty up; the next open
// gets a fresh one.
func ttyShell(tty, shell string) error {
	f, err := os.OpenFile(tty, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	c := exec.Command(shell)
	c.Stdin, c.Stdout, c.Stderr = f, f, f
	c.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return c.Run()
}

// consoleOut is where the marker goes: /dev/console itself when it opens.
// u-root's init hands its commands a pipe that it copies to the consoles
// from a goroutine of its own, so a marker written there may still be in
// flight when jeosinit powers the machine off; the console's tty buffer
// is drained before that (reboot).
func consoleOut() *os.File {
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		return f
	}
	return os.Stdout
}

// mountBasic mounts proc, sysfs and devtmpfs, creating the mount points;
// one already mounted is fine.
func mountBasic() error {
	var errs []error
	for _, m := range []struct {
		fs, dir string
		flags   uintptr
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", unix.MS_NOSUID},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		err := unix.Mount(m.fs, m.dir, m.fs, m.flags, "")
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err))
		}
	}
	return errors.Join(errs...)
}

// loadModule loads one kernel module file with finit_module(2).
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return errAlreadyLoaded
		}
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}

// reboot calls reboot(2) for a power-off or a restart, after waiting
// (tcdrain: TCSBRK with a non-zero argument) for the console to send what
// was written to it: the serial driver transmits from its interrupt, and
// a power-off would cut the last line short.
func reboot(a action) error {
	for _, fd := range []int{1, 2} {
		drain(fd)
	}
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		drain(int(f.Fd()))
		f.Close()
	}
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	if a == actPoweroff {
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	return unix.Reboot(cmd)
}

// releaseTTY gives up the controlling terminal with TIOCNOTTY, which,
// unlike a session leader's exit, does not hang the terminal up. A
// session leader that lets go sends SIGHUP to the terminal's foreground
// process group (its own), so SIGHUP is ignored first. Without a
// controlling terminal there is nothing to do.
func releaseTTY() error {
	signal.Ignore(unix.SIGHUP)
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENOENT) {
			return nil // no controlling terminal (or no /dev/tty)
		}
		return fmt.Errorf("open /dev/tty: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.TIOCNOTTY, 0); err != nil {
		return fmt.Errorf("TIOCNOTTY: %w", err)
	}
	return nil
}

// drain waits, at most a second, until terminal fd has sent its output:
// tcdrain (which the Go runtime's preemption signals may interrupt), then
// polling the output queue. A non-terminal returns at once.
func drain(fd int) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		err := unix.IoctlSetInt(fd, unix.TCSBRK, 1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		n, err := unix.IoctlGetInt(fd, unix.TIOCOUTQ)
		if err != nil || n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
