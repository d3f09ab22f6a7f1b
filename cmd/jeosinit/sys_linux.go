package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
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
		now:    time.Now,
		stdout: os.Stdout,
		stderr: os.Stderr,
	}
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

// reboot calls reboot(2) for a power-off or a restart.
func reboot(a action) error {
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
