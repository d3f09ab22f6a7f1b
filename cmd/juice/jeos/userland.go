package jeos

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// The initramfs's userland: besides u-root's Go commands, the guest
// carries a few of Debian's own programs (dynamically linked C programs)
// with the shared libraries they load. They come from the Debian
// packages apt would install on the build host, fetched and checked like
// the kernel package, and are unpacked into the userland stage (see
// userStageDir), from which u-root copies them into the initramfs.

// UserPackages are the Debian packages the guest's Debian programs and
// their libraries come from. userClosure fails, naming the library, when
// a program needs one that none of them has.
var UserPackages = []string{"e2fsprogs", "libext2fs2", "libcom-err2", "libblkid1", "libuuid1", "libc6"}

// UserPrograms are the programs taken from UserPackages, as paths in the
// packages, which are also their paths in the guest: mke2fs makes the
// file systems (as mkfs.ext4, it makes ext4) and e2fsck checks them. The
// packages' symbolic links to them (mkfs.ext4, fsck.ext4, ...) come too.
var UserPrograms = []string{"sbin/mke2fs", "sbin/e2fsck"}

// userConfig are other files of UserPackages the guest gets as they are.
var userConfig = []string{"etc/mke2fs.conf"}

// userDirs are the top-level directories of the userland stage, each
// handed to u-root; every staged file is under one of them. mnt is left
// empty: it is the guest's mount point.
var userDirs = []string{"etc", "lib", "lib64", "mnt", "sbin"}

// guestLibDir is where the guest's shared libraries go: the first
// directory of the dynamic loader's built-in search path on Debian, which
// needs no ld.so.cache.
const guestLibDir = "lib/x86_64-linux-gnu"

// libSearchDirs are where a needed library is looked for in the unpacked
// packages, in order (the dynamic loader's default path, and lib64).
var libSearchDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"}

// Paths in the build directory.
const (
	userStageDir  = "userland"
	userUnpackDir = ".unpack-user"
)

// fileTree is a tree of unpacked package files: paths are relative,
// slash-separated and clean.
type fileTree interface {
	// readlink returns the target of p when p is a symbolic link.
	readlink(p string) (string, bool)
	// readFile reads the regular file p (symbolic links already
	// resolved by resolvePath).
	readFile(p string) ([]byte, error)
}

// pkgTree is packages unpacked by extractDebLinks: regular files under
// root, symbolic links in links (which are not on disk).
type pkgTree struct {
	root  string
	links map[string]string
}

func (t pkgTree) readlink(p string) (string, bool) {
	target, ok := t.links[p]
	return target, ok
}

func (t pkgTree) readFile(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(t.root, filepath.FromSlash(p)))
}

// maxLinkHops bounds the symbolic links one path may go through (the
// kernel's limit).
const maxLinkHops = 40

// resolvePath follows the symbolic links along p in t, component by
// component, the tree's root being "/" for absolute targets; ".." at the
// root stays there, so the result never leaves the tree.
func resolvePath(t fileTree, p string) (string, error) {
	todo := strings.Split(p, "/")
	var done []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := strings.Join(append(done, c), "/")
		target, ok := t.readlink(cur)
		if !ok {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return "", fmt.Errorf("%s: resolves to the root", p)
	}
	return strings.Join(done, "/"), nil
}

// elfDeps is what the dynamic loader needs for one ELF file.
type elfDeps struct {
	interp string   // PT_INTERP: the program's loader; "" for a library or a static program
	needed []string // DT_NEEDED
}

// readELFDeps reads an x86-64 ELF file's loader and needed libraries.
func readELFDeps(b []byte) (elfDeps, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return elfDeps{}, err
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return elfDeps{}, fmt.Errorf("not an x86-64 ELF file (%v, %v)", f.Class, f.Machine)
	}
	var d elfDeps
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		s, err := io.ReadAll(p.Open())
		if err != nil {
			return elfDeps{}, fmt.Errorf("PT_INTERP: %w", err)
		}
		d.interp = string(bytes.TrimRight(s, "\x00"))
	}
	if d.needed, err = f.ImportedLibraries(); err != nil {
		return elfDeps{}, fmt.Errorf("DT_NEEDED: %w", err)
	}
	return d, nil
}

// stagedFile is one entry of the userland stage.
type stagedFile struct {
	guest string      // its path in the guest, relative to /
	src   string      // the (resolved) path of its contents in the tree; "" for a link
	link  string      // a symbolic link's target; "" for a file
	mode  fs.FileMode // a file's permissions
}

// userClosure works out the userland: the programs, the loader they name
// (PT_INTERP; in guestLibDir, with a symbolic link at the path the
// programs name it by), every library they need, directly or through
// other libraries (DT_NEEDED; each put in guestLibDir under the name it
// is needed by), and the config files. A missing or malformed file is an
// error that names what needs it. The result is sorted by guest path.
func userClosure(t fileTree, programs, config []string) ([]stagedFile, error) {
	staged := map[string]stagedFile{}
	add := func(f stagedFile) error {
		top, _, _ := strings.Cut(f.guest, "/")
		if !slices.Contains(userDirs, top) || !path.IsAbs("/"+f.guest) || path.Clean(f.guest) != f.guest {
			return fmt.Errorf("%s: not a path the userland stage can hold (under %s)", f.guest, strings.Join(userDirs, ", "))
		}
		staged[f.guest] = f
		return nil
	}
	type need struct{ name, by string }
	var queue []need
	load := func(p string) ([]byte, string, error) {
		rp, err := resolvePath(t, p)
		if err != nil {
			return nil, "", err
		}
		b, err := t.readFile(rp)
		return b, rp, err
	}
	for _, p := range programs {
		b, rp, err := load(p)
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", p, err)
		}
		d, err := readELFDeps(b)
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", p, err)
		}
		if err := add(stagedFile{guest: p, src: rp, mode: 0o755}); err != nil {
			return nil, err
		}
		if d.interp != "" {
			if err := addLoader(t, d.interp, p, staged, add); err != nil {
				return nil, err
			}
		}
		for _, n := range d.needed {
			queue = append(queue, need{n, p})
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n.name == "" || strings.Contains(n.name, "/") {
			return nil, fmt.Errorf("%s needs %q, which is not a library name", n.by, n.name)
		}
		guest := guestLibDir + "/" + n.name
		if _, ok := staged[guest]; ok {
			continue
		}
		var b []byte
		var rp string
		for _, dir := range libSearchDirs {
			var err error
			if b, rp, err = load(dir + "/" + n.name); err == nil {
				break
			}
			b = nil
		}
		if b == nil {
			return nil, fmt.Errorf("%s needs %s, which none of the packages has (in %s)", n.by, n.name, strings.Join(libSearchDirs, ", "))
		}
		d, err := readELFDeps(b)
		if err != nil {
			return nil, fmt.Errorf("library %s (for %s): %w", rp, n.by, err)
		}
		if err := add(stagedFile{guest: guest, src: rp, mode: 0o644}); err != nil {
			return nil, err
		}
		for _, m := range d.needed {
			queue = append(queue, need{m, n.name})
		}
	}
	for _, c := range config {
		_, rp, err := load(c)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", c, err)
		}
		if err := add(stagedFile{guest: c, src: rp, mode: 0o644}); err != nil {
			return nil, err
		}
	}
	out := make([]stagedFile, 0, len(staged))
	for _, f := range staged {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].guest < out[j].guest })
	return out, nil
}

// addLoader stages the dynamic loader interp (an absolute path, as
// PT_INTERP names it) that program needs: the file in guestLibDir (where
// libc, which needs it by its base name, finds it already there) and,
// when interp is elsewhere, a symbolic link to it at interp.
func addLoader(t fileTree, interp, program string, staged map[string]stagedFile, add func(stagedFile) error) error {
	if !path.IsAbs(interp) || path.Clean(interp) != interp || interp == "/" {
		return fmt.Errorf("program %s: loader %q is not a clean absolute path", program, interp)
	}
	rel := interp[1:]
	file := guestLibDir + "/" + path.Base(interp)
	if _, ok := staged[file]; ok {
		if _, ok := staged[rel]; ok || rel == file {
			return nil // another program's loader too
		}
	}
	rp, err := resolvePath(t, rel)
	if err != nil {
		return fmt.Errorf("loader %s (for %s): %w", interp, program, err)
	}
	b, err := t.readFile(rp)
	if err != nil {
		return fmt.Errorf("loader %s (for %s): %w", interp, program, err)
	}
	if _, err := readELFDeps(b); err != nil {
		return fmt.Errorf("loader %s (for %s): %w", interp, program, err)
	}
	if err := add(stagedFile{guest: file, src: rp, mode: 0o755}); err != nil {
		return err
	}
	if rel != file {
		return add(stagedFile{guest: rel, link: "/" + file})
	}
	return nil
}

// programAliases are the symbolic links of the packages that stand for a
// staged program (sbin/mkfs.ext4 -> mke2fs): links in a program's
// directory that resolve to the program's file, staged as links to its
// base name. Sorted by guest path.
func programAliases(t fileTree, links map[string]string, programs []string) ([]stagedFile, error) {
	byFile := map[string]string{} // resolved file -> program
	for _, p := range programs {
		rp, err := resolvePath(t, p)
		if err != nil {
			return nil, err
		}
		byFile[rp] = p
	}
	var out []stagedFile
	for l := range links {
		rp, err := resolvePath(t, l)
		if err != nil {
			continue // a dangling or looping link is not an alias
		}
		p, ok := byFile[rp]
		if !ok || l == p || path.Dir(l) != path.Dir(p) {
			continue
		}
		out = append(out, stagedFile{guest: l, link: path.Base(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].guest < out[j].guest })
	return out, nil
}

// stageUserland lays out the userland stage afresh: userDirs, and the
// files and links given, read from t.
func stageUserland(stage string, t fileTree, files []stagedFile) error {
	if err := os.RemoveAll(stage); err != nil {
		return err
	}
	for _, d := range userDirs {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range files {
		dst := filepath.Join(stage, filepath.FromSlash(f.guest))
		if f.link != "" {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(f.link, dst); err != nil {
				return err
			}
			continue
		}
		b, err := t.readFile(f.src)
		if err != nil {
			return err
		}
		if err := writeFile(dst, b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// wantUserFile says which regular files of UserPackages to unpack: those
// in the program, library and config directories (not documentation).
func wantUserFile(name string) bool {
	dir := path.Dir(name)
	return slices.Contains([]string{"sbin", "bin", "usr/sbin", "usr/bin", "etc"}, dir) || slices.Contains(libSearchDirs, dir)
}

// userPart is what the userland step records in the stamp.
type userPart struct {
	Request  []string // UserPackages when built
	Packages []string // "NAME VERSION SHA256" of each package used
	Files    []string // guest paths staged, sorted
	Tree     string   // treeHash of the userland stage
}

// buildUserland resolves and fetches UserPackages, unpacks them and lays
// out the userland stage.
func buildUserland(dir string, log io.Writer) (userPart, error) {
	start := time.Now()
	pkgs, err := resolveUserPackages(UserPackages)
	if err != nil {
		return userPart{}, err
	}
	part := userPart{Request: append([]string(nil), UserPackages...)}
	var debs []string
	for _, p := range pkgs {
		deb, err := fetchPackage(filepath.Join(dir, debDir), p, p.Name+"_*.deb", log)
		if err != nil {
			return userPart{}, err
		}
		debs = append(debs, deb)
		part.Packages = append(part.Packages, p.Name+" "+p.Version+" "+p.SHA256)
	}
	unpack := filepath.Join(dir, userUnpackDir)
	defer os.RemoveAll(unpack)
	if err := os.RemoveAll(unpack); err != nil {
		return userPart{}, err
	}
	tree := pkgTree{root: unpack, links: map[string]string{}}
	for _, deb := range debs {
		if _, err := extractDebLinks(deb, unpack, wantUserFile, tree.links); err != nil {
			return userPart{}, err
		}
	}
	files, err := userClosure(tree, UserPrograms, userConfig)
	if err != nil {
		return userPart{}, fmt.Errorf("packages %s: %w", strings.Join(UserPackages, ", "), err)
	}
	aliases, err := programAliases(tree, tree.links, UserPrograms)
	if err != nil {
		return userPart{}, err
	}
	files = append(files, aliases...)
	stage := filepath.Join(dir, userStageDir)
	if err := stageUserland(stage, tree, files); err != nil {
		return userPart{}, err
	}
	for _, f := range files {
		part.Files = append(part.Files, f.guest)
	}
	sort.Strings(part.Files)
	if part.Tree, err = treeHash(stage); err != nil {
		return userPart{}, err
	}
	fmt.Fprintf(log, "jeos: userland (%d files from %d packages) staged in %.1fs\n", len(files), len(pkgs), time.Since(start).Seconds())
	return part, nil
}
