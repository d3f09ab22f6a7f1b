package jeos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// The tiny JeOS variant, for runs of many VMs: the same Debian kernel,
// but an initramfs holding nothing but jeosinit as /init (pid 1: it
// mounts proc, sysfs and devtmpfs itself), an empty module list and the
// /dev/console node the kernel opens for init. No shell, no modules, no
// tools: the guest prints ReadyMarker ("modules=0/0") and, with
// PoweroffArg, powers off; without it jeosinit idles. It is about 2 MiB
// against the default image's 15, which the kernel unpacks into RAM
// before init runs.

// TinyInitrdFile is the tiny initramfs's name in the build directory.
const TinyInitrdFile = "tiny.cpio"

// Files of the tiny variant in the build directory.
const (
	tinyStampFile = "tiny.json"
	tinyInitBin   = ".tiny-jeosinit"
)

// tinyRecipe changes whenever tinyArchive's output for the same
// jeosinit would change.
const tinyRecipe = 1

// tinyStamp records what tiny.cpio was made from.
type tinyStamp struct {
	Inputs string    `json:"inputs"`
	Output fileStamp `json:"output"`
}

// BuildTiny makes the tiny variant in opts.Dir: it builds (or finds
// cached) the default image with Build, for its kernel, then compiles
// jeosinit and writes TinyInitrdFile unless the stamp shows it current.
// The Image it returns is the default one with Initrd set to the tiny
// initramfs and Modules empty; Cached is true when neither step did
// any work.
func BuildTiny(opts Options) (Image, error) {
	img, err := Build(opts)
	if err != nil {
		return Image{}, err
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	src, err := findSource(opts.Source)
	if err != nil {
		return Image{}, err
	}
	unlock, err := lockDir(img.Dir, log)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	inputs, err := tinyInputs(src)
	if err != nil {
		return Image{}, fmt.Errorf("hashing jeosinit's source: %w", err)
	}
	out := filepath.Join(img.Dir, TinyInitrdFile)
	stampPath := filepath.Join(img.Dir, tinyStampFile)
	var old tinyStamp
	cached := false
	if b, err := os.ReadFile(stampPath); err == nil && json.Unmarshal(b, &old) == nil && !opts.Force {
		got, err := statStamp(out)
		cached = err == nil && got == old.Output && old.Inputs == inputs
	}
	if !cached {
		start := time.Now()
		bin := filepath.Join(img.Dir, tinyInitBin)
		defer os.Remove(bin)
		if err := buildGuestInit(src, bin); err != nil {
			return Image{}, err
		}
		init, err := os.ReadFile(bin)
		if err != nil {
			return Image{}, err
		}
		arc, err := tinyArchive(init, img.Release)
		if err != nil {
			return Image{}, err
		}
		if err := writeFile(out, arc, 0o644); err != nil {
			return Image{}, err
		}
		fs, err := statStamp(out)
		if err != nil {
			return Image{}, err
		}
		b, err := json.MarshalIndent(tinyStamp{Inputs: inputs, Output: fs}, "", "  ")
		if err != nil {
			return Image{}, err
		}
		if err := writeFile(stampPath, append(b, '\n'), 0o644); err != nil {
			return Image{}, err
		}
		fmt.Fprintf(log, "jeos: %s built in %.1fs (%d bytes)\n", TinyInitrdFile, time.Since(start).Seconds(), len(arc))
	}
	img.Initrd = out
	img.Modules = nil
	img.Userland = nil
	img.Cached = img.Cached && cached
	return img, nil
}

// tinyInputs hashes what tiny.cpio is made from: the recipe, the Go
// toolchain, juice's go.mod and go.sum, and jeosinit's source (less
// its tests).
func tinyInputs(src string) (string, error) {
	h := sha256.New()
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	fmt.Fprintf(h, "tiny %d\nGOAMD64 %s\ngo %s\n", tinyRecipe, guestGOAMD64, strings.TrimSpace(string(goVersion)))
	for _, f := range []string{goModFile, goSumFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %s %d\n", f, len(b))
		h.Write(b)
	}
	isTest := func(rel string) bool { return strings.HasSuffix(rel, "_test.go") }
	if err := hashTree(h, src, jeosinitDir, isTest); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildGuestInit compiles jeosinit for the guest (linux/amd64, static,
// stripped) into out.
func buildGuestInit(src, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, jeosinitPkg)
	cmd.Dir = src
	cmd.Env = append(envWithout(os.Environ(), "GOOS", "GOARCH", "CGO_ENABLED", "GOAMD64"),
		"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOAMD64="+guestGOAMD64)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building jeosinit: %w%s", err, indentTail(output, 30))
	}
	return nil
}

// tinyArchive is the tiny initramfs: the directories jeosinit mounts
// on, /dev/console (character device 5:1, which the kernel opens as
// init's standard input, output and error), the empty module list, and
// init, the jeosinit binary.
func tinyArchive(init []byte, release string) ([]byte, error) {
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	ino := uint64(0)
	add := func(rec cpio.Record) error {
		ino++
		rec.Ino, rec.NLink = ino, 1
		if rec.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			rec.NLink = 2
		}
		return w.WriteRecord(rec)
	}
	dir := func(name string) cpio.Record {
		return cpio.Record{Info: cpio.Info{Mode: cpio.S_IFDIR | 0o755, Name: name}}
	}
	list := fmt.Sprintf("# No modules: the tiny JeOS image (Linux %s; written by juice jeos --tiny).\n", release)
	recs := []cpio.Record{
		dir("dev"),
		{Info: cpio.Info{Mode: cpio.S_IFCHR | 0o600, Name: "dev/console", Rmajor: 5, Rminor: 1}},
		dir("proc"), dir("sys"), dir("lib"), dir("lib/modules"), dir(guestModuleDir),
		cpio.StaticRecord([]byte(list), cpio.Info{Mode: cpio.S_IFREG | 0o644, Name: guestModuleDir + "/" + guestOrderFile}),
		cpio.StaticRecord(init, cpio.Info{Mode: cpio.S_IFREG | 0o755, Name: "init"}),
	}
	for _, r := range recs {
		if err := add(r); err != nil {
			return nil, err
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
