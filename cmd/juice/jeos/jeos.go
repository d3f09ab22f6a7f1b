// Package jeos builds juice's default JeOS guest ("just enough OS"): a
// stock Debian kernel plus a small u-root initramfs whose init
// (cmd/jeosinit) loads the virtio and ext4 modules and prints a ready
// marker.
//
// Build resolves Debian's current kernel package (apt-cache), downloads
// it (apt-get download), unpacks only what the guest needs (dpkg-deb),
// writes the bzImage, the decompressed vmlinux ELF (which boots through
// PVH without the slow in-guest XZ decompression) and the kernel config,
// and builds initrd.cpio with u-root in module mode from juice's own
// go.mod (its `tool` directives pin u-root and its commands). The
// initramfs also carries Debian's mke2fs (mkfs.ext4) and e2fsck with the
// shared libraries they load, from UserPackages fetched the same way
// (see userland.go). Everything is cached in one directory with a stamp,
// so a second Build with nothing changed does no work. It needs no root
// (apt-get download works as any user once `apt-get update` has run) and
// no network once the .debs are downloaded and the Go module cache is
// filled (`go mod download`).
//
// The guest prints ReadyMarker when its modules are loaded, and powers
// off right after it when its command line has PoweroffArg.
package jeos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultDir is where Build puts the guest unless told otherwise,
// relative to the working directory (juice's repository root).
const DefaultDir = "build/jeos"

// ReadyMarker starts the line the guest prints on its console when it is
// ready: "JEOS-READY uptime=<seconds> modules=<loaded>/<listed>".
const ReadyMarker = "JEOS-READY"

// PoweroffArg on the guest's command line makes it power off right after
// ReadyMarker.
const PoweroffArg = "jeos.poweroff"

// recipeVersion changes whenever Build's output for the same inputs
// would change; a stamp of another version is rebuilt.
const recipeVersion = 2

// File names in the build directory.
const (
	kernelFile  = "vmlinuz"
	vmlinuxFile = "vmlinux"
	configFile  = "config"
	initrdFile  = "initrd.cpio"
	stampFile   = "stamp.json"
	lockFile    = ".lock"
	debDir      = "deb"
	stageDir    = "initramfs"
	unpackDir   = ".unpack"
)

// Options says what Build makes and where.
type Options struct {
	// Dir is the build (cache) directory; "" means DefaultDir.
	Dir string
	// KernelPackage is the Debian package to take the kernel from: a
	// metapackage (resolved through apt-cache depends) or a kernel image
	// package; "" means DefaultKernelPackage.
	KernelPackage string
	// Force rebuilds everything (the downloaded .debs are reused when
	// they still match apt's checksums).
	Force bool
	// Source is juice's module root (for u-root and cmd/jeosinit); ""
	// means the first directory from the working directory up whose
	// go.mod is module juice.
	Source string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Image is a built JeOS guest. Paths are in Dir.
type Image struct {
	Dir     string // the build directory
	Kernel  string // the bzImage (vmlinuz), as Debian ships it
	Vmlinux string // the decompressed ELF, for PVH; "" when not made (see Notes)
	Config  string // the kernel's build configuration
	Initrd  string // the u-root initramfs (newc cpio, uncompressed)

	PVHEntry uint64   // vmlinux's XEN_ELFNOTE_PHYS32_ENTRY; 0 when it has none
	Package  string   // Debian package, e.g. linux-image-6.1.0-56-amd64
	Version  string   // its version, e.g. 6.1.192-2
	Release  string   // the kernel release, e.g. 6.1.0-56-amd64
	Modules  []string // module files in the initramfs, in load order
	Userland []string // the Debian packages of its programs, "NAME VERSION"
	Notes    []string // things the caller may want to know (skipped parts)
	Cached   bool     // true when nothing had to be rebuilt
}

// stamp records what a build directory holds and what it was made from.
type stamp struct {
	Recipe  int    `json:"recipe"`
	Request string `json:"request"` // the package asked for

	Package  string   `json:"package"`
	Version  string   `json:"version"`
	Release  string   `json:"release"`
	Deb      string   `json:"deb"`
	DebSHA   string   `json:"deb_sha256"`
	PVHEntry uint64   `json:"pvh_entry"`
	Modules  []string `json:"modules"`
	Notes    []string `json:"notes,omitempty"`

	// The userland step's record (see userPart).
	UserRequest  []string `json:"user_request"`
	UserPackages []string `json:"user_packages"`
	UserFiles    []string `json:"user_files"`
	UserTree     string   `json:"user_tree"`

	// InitrdInputs is initrdInputs' hash for the initramfs built.
	InitrdInputs string `json:"initrd_inputs"`
	// Outputs maps each file made (relative to the build directory) to
	// its size and modification time when made.
	Outputs map[string]fileStamp `json:"outputs"`
}

// fileStamp identifies a file's state cheaply.
type fileStamp struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

// statStamp returns name's current fileStamp.
func statStamp(name string) (fileStamp, error) {
	st, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	if !st.Mode().IsRegular() {
		return fileStamp{}, fmt.Errorf("%s is not a regular file", name)
	}
	return fileStamp{Size: st.Size(), ModTime: st.ModTime().UnixNano()}, nil
}

// readStamp reads a build directory's stamp; nil when there is none or
// it cannot be read.
func readStamp(dir string) *stamp {
	b, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil {
		return nil
	}
	var s stamp
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

// write saves the stamp in dir.
func (s *stamp) write(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, stampFile), append(b, '\n'), 0o644)
}

// kernelOutputs are the files the kernel step makes, relative to the
// build directory (vmlinux only when it was made).
func (s *stamp) kernelOutputs() []string {
	out := []string{kernelFile, configFile, filepath.Join(stageDir, guestModuleDir, guestOrderFile)}
	if s.PVHEntry != 0 || s.hasOutput(vmlinuxFile) {
		out = append(out, vmlinuxFile)
	}
	for _, m := range s.Modules {
		out = append(out, filepath.Join(stageDir, guestModuleDir, m))
	}
	for _, n := range sortedScriptNames() {
		out = append(out, filepath.Join(stageDir, "bin", n))
	}
	return out
}

// hasOutput reports whether the stamp records the file.
func (s *stamp) hasOutput(name string) bool {
	_, ok := s.Outputs[name]
	return ok
}

// outputsIntact reports whether the files are as the stamp recorded them.
func (s *stamp) outputsIntact(dir string, names []string) bool {
	for _, n := range names {
		want, ok := s.Outputs[n]
		if !ok {
			return false
		}
		got, err := statStamp(filepath.Join(dir, n))
		if err != nil || got != want {
			return false
		}
	}
	return true
}

// plan is what a Build has to redo.
type plan struct {
	kernel bool // resolve, download, unpack, vmlinux, stage modules
	user   bool // resolve, download and unpack UserPackages, stage the userland
	initrd bool // run u-root
}

// decide works out which steps must run, from the old stamp (nil when
// none), the kernel package asked for, the user packages wanted,
// --force, and whether each step's files are as the stamp recorded them.
// Redoing either step redoes the initramfs too; otherwise Build compares
// initrdInputs.
func decide(old *stamp, request string, user []string, force, kernelIntact, userIntact bool) plan {
	if force || old == nil || old.Recipe != recipeVersion {
		return plan{kernel: true, user: true, initrd: true}
	}
	var p plan
	if old.Request != request || !kernelIntact {
		p.kernel, p.initrd = true, true
	}
	if !slices.Equal(old.UserRequest, user) || !userIntact {
		p.user, p.initrd = true, true
	}
	return p
}

// userIntact reports whether the userland stage is as the stamp
// recorded it.
func (s *stamp) userIntact(dir string) bool {
	if s == nil || s.UserTree == "" {
		return false
	}
	h, err := treeHash(filepath.Join(dir, userStageDir))
	return err == nil && h == s.UserTree
}

// setUser records the userland step's outcome.
func (s *stamp) setUser(u userPart) {
	s.UserRequest, s.UserPackages, s.UserFiles, s.UserTree = u.Request, u.Packages, u.Files, u.Tree
}

// user is the userland step's record in the stamp.
func (s *stamp) user() userPart {
	return userPart{Request: s.UserRequest, Packages: s.UserPackages, Files: s.UserFiles, Tree: s.UserTree}
}

// initrdCurrent reports whether the old initramfs was made from inputs
// and is intact.
func initrdCurrent(old *stamp, dir, inputs string) bool {
	return old != nil && old.InitrdInputs == inputs && old.outputsIntact(dir, []string{initrdFile})
}

// Build makes the JeOS guest in opts.Dir, or finds it there up to date
// (then it runs no command and takes milliseconds). The kernel package
// is resolved only when the kernel step runs: on the first build, with
// Force, for another KernelPackage, or when its files changed; a newer
// Debian kernel is therefore picked up with Force. Builds of one
// directory are serialised with a lock file.
func Build(opts Options) (Image, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	dir := opts.Dir
	if dir == "" {
		dir = DefaultDir
	}
	request := opts.KernelPackage
	if request == "" {
		request = DefaultKernelPackage
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, err
	}
	src, err := findSource(opts.Source)
	if err != nil {
		return Image{}, err
	}
	unlock, err := lockDir(dir, log)
	if err != nil {
		return Image{}, err
	}
	defer unlock()

	old := readStamp(dir)
	kernelIntact := old != nil && old.outputsIntact(dir, old.kernelOutputs())
	p := decide(old, request, UserPackages, opts.Force, kernelIntact, old.userIntact(dir))
	st := old
	if p.kernel {
		ks, err := buildKernel(dir, request, log)
		if err != nil {
			return Image{}, err
		}
		if !p.user {
			ks.setUser(old.user())
		}
		st = ks
		// The stamp is written only after the initramfs, so an
		// interrupted build starts over.
	}
	if p.user {
		u, err := buildUserland(dir, log)
		if err != nil {
			return Image{}, err
		}
		st.setUser(u)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Image{}, err
	}
	stage, user := filepath.Join(abs, stageDir), filepath.Join(abs, userStageDir)
	inputs, err := initrdInputs(src, stage, user)
	if err != nil {
		return Image{}, fmt.Errorf("hashing the initramfs inputs: %w", err)
	}
	if opts.Force || p.initrd || !initrdCurrent(old, dir, inputs) {
		p.initrd = true
		start := time.Now()
		fmt.Fprintf(log, "jeos: building %s with u-root (about 20 s)\n", initrdFile)
		if err := buildInitrd(src, stage, user, filepath.Join(abs, initrdFile), log); err != nil {
			return Image{}, err
		}
		fmt.Fprintf(log, "jeos: initramfs built in %.1fs\n", time.Since(start).Seconds())
		st.InitrdInputs = inputs
		if st.Outputs == nil {
			st.Outputs = map[string]fileStamp{}
		}
		fs, err := statStamp(filepath.Join(dir, initrdFile))
		if err != nil {
			return Image{}, err
		}
		st.Outputs[initrdFile] = fs
	}
	if p.kernel || p.user || p.initrd {
		if err := st.write(dir); err != nil {
			return Image{}, err
		}
	}
	return st.image(dir, !p.kernel && !p.user && !p.initrd), nil
}

// image is the Image a stamp describes.
func (s *stamp) image(dir string, cached bool) Image {
	img := Image{
		Dir:      dir,
		Kernel:   filepath.Join(dir, kernelFile),
		Config:   filepath.Join(dir, configFile),
		Initrd:   filepath.Join(dir, initrdFile),
		PVHEntry: s.PVHEntry,
		Package:  s.Package,
		Version:  s.Version,
		Release:  s.Release,
		Modules:  append([]string(nil), s.Modules...),
		Notes:    append([]string(nil), s.Notes...),
		Userland: userlandNames(s.UserPackages),
		Cached:   cached,
	}
	if s.hasOutput(vmlinuxFile) {
		img.Vmlinux = filepath.Join(dir, vmlinuxFile)
	}
	return img
}

// userlandNames turns the stamp's "NAME VERSION SHA256" records into
// "NAME VERSION"; nil for none.
func userlandNames(recs []string) []string {
	var out []string
	for _, r := range recs {
		f := strings.Fields(r)
		if len(f) >= 2 {
			out = append(out, f[0]+" "+f[1])
		}
	}
	return out
}

// buildKernel resolves and fetches the kernel package, unpacks what the
// guest needs, writes vmlinuz, vmlinux and config, and stages the
// initramfs's extra files. The stamp it returns has no initramfs yet.
func buildKernel(dir, request string, log io.Writer) (*stamp, error) {
	start := time.Now()
	pkg, err := resolvePackage(request)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "jeos: kernel package %s %s (for %s)\n", pkg.Name, pkg.Version, request)
	deb, err := fetchPackage(filepath.Join(dir, debDir), pkg, "linux-image-*.deb", log)
	if err != nil {
		return nil, err
	}

	unpack := filepath.Join(dir, unpackDir)
	defer os.RemoveAll(unpack)
	if err := os.RemoveAll(unpack); err != nil {
		return nil, err
	}
	wanted := map[string]bool{}
	for _, m := range append(RequiredModules(), OptionalModules...) {
		wanted[modName(m)] = true
	}
	var order moduleOrder
	var idx moduleIndex
	for pass := 0; ; pass++ {
		_, err := extractDeb(deb, unpack, func(name string) bool {
			if _, n, ok := moduleTreePath(name); ok {
				return wanted[n]
			}
			return pass == 0 && (strings.HasPrefix(name, "boot/vmlinuz-") || strings.HasPrefix(name, "boot/config-"))
		})
		if err != nil {
			return nil, err
		}
		tree := os.DirFS(unpack)
		if idx, err = indexModules(tree); err != nil {
			return nil, fmt.Errorf("%s: %w", pkg.Name, err)
		}
		if order, err = orderModules(tree, idx, RequiredModules(), OptionalModules); err != nil {
			return nil, fmt.Errorf("%s: %w", pkg.Name, err)
		}
		if len(order.need) == 0 {
			break
		}
		more := false
		for _, n := range sortedKeys(order.need) {
			if wanted[n] {
				return nil, fmt.Errorf("%s: module %s needs %s, which the package does not have", pkg.Name, order.need[n], n)
			}
			wanted[n] = true
			more = true
		}
		if !more || pass > 8 {
			return nil, fmt.Errorf("%s: cannot resolve module dependencies %v", pkg.Name, sortedKeys(order.need))
		}
	}
	fmt.Fprintf(log, "jeos: unpacked %s in %.1fs\n", filepath.Base(deb), time.Since(start).Seconds())

	st := &stamp{
		Recipe:  recipeVersion,
		Request: request,
		Package: pkg.Name,
		Version: pkg.Version,
		Release: idx.release,
		Deb:     filepath.Base(deb),
		DebSHA:  pkg.SHA256,
		Outputs: map[string]fileStamp{},
	}
	for _, m := range order.skipped {
		st.Notes = append(st.Notes, "optional module "+m+" is not in "+pkg.Name)
	}

	bz, err := os.ReadFile(filepath.Join(unpack, "boot", "vmlinuz-"+idx.release))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (want boot/vmlinuz-%s)", pkg.Name, errNoKernel, idx.release)
	} else if err != nil {
		return nil, err
	}
	if _, err := parseSetupHeader(bz); err != nil {
		return nil, fmt.Errorf("%s: boot/vmlinuz-%s: %w", pkg.Name, idx.release, err)
	}
	cfg, err := os.ReadFile(filepath.Join(unpack, "boot", "config-"+idx.release))
	if err != nil {
		return nil, fmt.Errorf("%s: kernel config: %w", pkg.Name, err)
	}
	if err := writeFile(filepath.Join(dir, kernelFile), bz, 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, configFile), cfg, 0o644); err != nil {
		return nil, err
	}
	vstart := time.Now()
	os.Remove(filepath.Join(dir, vmlinuxFile))
	vm, err := vmlinuxFromBzImage(bz)
	switch {
	case errors.Is(err, errUnsupportedPayload):
		st.Notes = append(st.Notes, "no vmlinux: "+err.Error())
	case err != nil:
		return nil, fmt.Errorf("%s: making vmlinux: %w", pkg.Name, err)
	default:
		if err := writeFile(filepath.Join(dir, vmlinuxFile), vm, 0o644); err != nil {
			return nil, err
		}
		entry, ok, err := pvhEntry(vm)
		if err != nil {
			return nil, fmt.Errorf("%s: vmlinux: %w", pkg.Name, err)
		}
		if ok {
			st.PVHEntry = entry
		} else {
			st.Notes = append(st.Notes, "vmlinux has no PVH entry note (CONFIG_PVH off?)")
		}
		st.Outputs[vmlinuxFile] = fileStamp{} // filled below
		fmt.Fprintf(log, "jeos: vmlinux decompressed in %.1fs\n", time.Since(vstart).Seconds())
	}

	names, err := stageInitramfs(filepath.Join(dir, stageDir), os.DirFS(unpack), order.paths, idx.release)
	if err != nil {
		return nil, err
	}
	st.Modules = names
	for _, n := range st.kernelOutputs() {
		fs, err := statStamp(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		st.Outputs[n] = fs
	}
	return st, nil
}
