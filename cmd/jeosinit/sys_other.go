//go:build !linux

package main

import (
	"errors"
	"os"
	"path/filepath"
	"time"
)

// errNotLinux is every system call's result off Linux: jeosinit is a
// Linux guest program; this file only lets the package build elsewhere.
var errNotLinux = errors.New("jeosinit runs only on Linux")

// errAlreadyLoaded is what loadModule returns for a module the kernel
// already has.
var errAlreadyLoaded = errors.New("module already loaded")

// hostSystem is a system whose kernel calls all fail.
func hostSystem() *system {
	return &system{
		pid:        os.Getpid(),
		readFile:   os.ReadFile,
		glob:       filepath.Glob,
		command:    runCommand,
		mountBasic: func() error { return errNotLinux },
		releaseTTY: func() error { return nil },
		loadModule: func(string) error { return errNotLinux },
		sync:       func() {},
		reboot:     func(action) error { return errNotLinux },
		execShell:  func(string) error { return errNotLinux },
		idle:       func() { select {} },
		now:        time.Now,
		sleep:      time.Sleep,
		self:       os.Args[0],
		spawn:      func([]string) error { return errNotLinux },
		ttyShell:   func(string, string) error { return errNotLinux },
		stdout:     os.Stdout,
		stderr:     os.Stderr,
	}
}
