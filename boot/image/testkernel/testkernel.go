// Package testkernel builds a throwaway kernel-like ELF with the stock Go
// toolchain, linked exactly like the juice kernel
// (-E main.entry32 -T 0x200000 -R 0x1000), for the tests of
// juice/boot/image and cmd/postlink. It is test support only; nothing
// else should import it.
//
// The entry point is 32-bit code written in Go assembly: it writes a
// byte to the isa-debug-exit port 0xf4 that says which boot protocol
// entered it (by the magic in EAX), so a QEMU run exits with status
// (code<<1)|1.
package testkernel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// EntrySymbol is the -E symbol of the test kernel.
const EntrySymbol = "main.entry32"

// Port-0xf4 codes written by the test kernel's entry.
const (
	CodePVH        = 0x11 // no multiboot magic in EAX: entered through PVH
	CodeMultiboot1 = 0x22 // EAX = 0x2BADB002
	CodeMultiboot2 = 0x33 // EAX = 0x36d76289
)

// ExitStatus is the QEMU exit status for a code written to isa-debug-exit.
func ExitStatus(code int) int { return code<<1 | 1 }

const goMod = "module kx\n\ngo 1.26\n"

const mainGo = `package main

import "os"

func entry32()

// big is a large bss array at the end of the image, like Go 1.26's
// crypto/internal/fips140/drbg.memory in the juice kernel: Patch leaves
// it out of the last PT_LOAD.
var big [BigBSS]byte

func main() {
	// Reference entry32 so that the main package keeps it; never reached.
	if len(os.Args) > 1000 {
		entry32()
		big[len(os.Args)] = 1
	}
}
`

// BigBSS is the size of the test kernel's large trailing bss array.
const BigBSS = 4 << 20

// entryAsm is 32-bit code: MOVL/CMPL with eax, MOVW to dx (0x66 prefix),
// OUTL, HLT, short jumps. Their encodings are identical in 32-bit and
// 64-bit mode (no REX prefix, no RIP-relative operands).
const entryAsm = `#include "textflag.h"

TEXT ·entry32(SB),NOSPLIT,$0
	MOVL $0x33, CX
	CMPL AX, $0x36d76289
	JEQ out
	MOVL $0x22, CX
	CMPL AX, $0x2BADB002
	JEQ out
	MOVL $0x11, CX
out:
	MOVL CX, AX
	MOVW $0xf4, DX
	OUTL
	HLT
	JMP out
	// Never executed: keeps main.big (the large bss array) linked.
	LEAL ·big(SB), AX
`

// LDFlags are the linker flags of the juice kernel build, with the test
// kernel's entry symbol.
const LDFlags = "-E " + EntrySymbol + " -T 0x200000 -R 0x1000"

var (
	once    sync.Once
	elfData []byte
	elfErr  error
)

// ELF returns the test kernel's ELF bytes, building it on first use. The
// caller must not modify the returned slice.
func ELF() ([]byte, error) {
	once.Do(func() { elfData, elfErr = build() })
	return elfData, elfErr
}

func build() ([]byte, error) {
	dir, err := os.MkdirTemp("", "juice-testkernel-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, body := range map[string]string{"go.mod": goMod, "main.go": strings.Replace(mainGo, "[BigBSS]", fmt.Sprintf("[%d]", BigBSS), 1), "entry_amd64.s": entryAsm} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			gobin = filepath.Join(root, "bin", "go")
		} else {
			return nil, errors.New("testkernel: no go command in PATH")
		}
	}
	out := filepath.Join(dir, "k.elf")
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags", LDFlags, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1",
		"GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testkernel: go build: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}
