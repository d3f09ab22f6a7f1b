package jeos

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The loader as Debian's x86-64 programs name it.
const testInterp = "/lib64/ld-linux-x86-64.so.2"

// fakeUserTree is UserPackages unpacked, as extractDebLinks leaves them,
// laid out as in Debian 12 (libraries as versioned files with SONAME
// links, in /lib and /usr/lib; the loader in lib64 as a link) with fake
// ELF files; drop leaves files or links out.
func fakeUserTree(t *testing.T, drop ...string) pkgTree {
	t.Helper()
	e2libs := []string{"libext2fs.so.2", "libcom_err.so.2", "libblkid.so.1", "libuuid.so.1", "libe2p.so.2", "libc.so.6"}
	files := map[string][]byte{
		"sbin/mke2fs":                                 fakeDynELF(testInterp, e2libs...),
		"sbin/e2fsck":                                 fakeDynELF(testInterp, e2libs...),
		"sbin/debugfs":                                fakeDynELF(testInterp, "libss.so.2", "libc.so.6"),
		"lib/x86_64-linux-gnu/libext2fs.so.2.4":       fakeDynELF("", "libc.so.6"),
		"lib/x86_64-linux-gnu/libe2p.so.2.3":          fakeDynELF("", "libc.so.6"),
		"lib/x86_64-linux-gnu/libcom_err.so.2.1":      fakeDynELF("", "libc.so.6"),
		"usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0":  fakeDynELF("", "libc.so.6"),
		"usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0":   fakeDynELF("", "libc.so.6"),
		"lib/x86_64-linux-gnu/libc.so.6":              fakeDynELF("", "ld-linux-x86-64.so.2"),
		"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2":   fakeDynELF(""),
		"lib/x86_64-linux-gnu/libm.so.6":              fakeDynELF("", "libc.so.6"),
		"etc/mke2fs.conf":                             []byte("[defaults]\n"),
		"usr/share/doc/e2fsprogs/changelog.Debian.gz": []byte("doc"),
	}
	links := map[string]string{
		"lib/x86_64-linux-gnu/libext2fs.so.2":      "libext2fs.so.2.4",
		"lib/x86_64-linux-gnu/libe2p.so.2":         "libe2p.so.2.3",
		"lib/x86_64-linux-gnu/libcom_err.so.2":     "libcom_err.so.2.1",
		"usr/lib/x86_64-linux-gnu/libblkid.so.1":   "libblkid.so.1.1.0",
		"usr/lib/x86_64-linux-gnu/libuuid.so.1":    "libuuid.so.1.3.0",
		"lib64/ld-linux-x86-64.so.2":               "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"sbin/mkfs.ext4":                           "mke2fs",
		"sbin/mkfs.ext2":                           "mke2fs",
		"sbin/fsck.ext4":                           "e2fsck",
		"sbin/e2label":                             "tune2fs", // dangling: tune2fs is not unpacked
		"usr/sbin/mkfs.other":                      "../../sbin/mke2fs",
		"usr/share/doc/libext2fs2/changelog.gz":    "../e2fsprogs/changelog.Debian.gz",
		"lib/x86_64-linux-gnu/loop1":               "loop2",
		"lib/x86_64-linux-gnu/loop2":               "loop1",
		"lib/x86_64-linux-gnu/ld-linux-x86-64.so2": "/../../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
	}
	root := t.TempDir()
	for _, d := range drop {
		delete(files, d)
		delete(links, d)
	}
	for name, data := range files {
		if err := writeFile(filepath.Join(root, filepath.FromSlash(name)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return pkgTree{root: root, links: links}
}

// stagedUserland is the closure and aliases of the fake tree.
func stagedUserland(t *testing.T, tree pkgTree) []stagedFile {
	t.Helper()
	files, err := userClosure(tree, UserPrograms, userConfig)
	if err != nil {
		t.Fatal(err)
	}
	aliases, err := programAliases(tree, tree.links, UserPrograms)
	if err != nil {
		t.Fatal(err)
	}
	return append(files, aliases...)
}

func TestResolvePath(t *testing.T) {
	tree := fakeUserTree(t)
	for in, want := range map[string]string{
		"lib/x86_64-linux-gnu/libext2fs.so.2":      "lib/x86_64-linux-gnu/libext2fs.so.2.4",
		"lib64/ld-linux-x86-64.so.2":               "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"usr/sbin/mkfs.other":                      "sbin/mke2fs",
		"sbin/mkfs.ext4":                           "sbin/mke2fs",
		"sbin/mke2fs":                              "sbin/mke2fs",
		"lib/x86_64-linux-gnu/ld-linux-x86-64.so2": "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", // ".." stops at the root
		"sbin/e2label":                             "sbin/tune2fs",                              // dangling: resolved, not there
	} {
		if got, err := resolvePath(tree, in); err != nil || got != want {
			t.Errorf("resolvePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := resolvePath(tree, "lib/x86_64-linux-gnu/loop1"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("link loop: %q, %v", got, err)
	}
	// A directory that is a link (a merged /usr) is followed too.
	tree.links["bin"] = "usr/bin"
	if got, err := resolvePath(tree, "bin/x"); err != nil || got != "usr/bin/x" {
		t.Errorf("through a directory link: %q, %v", got, err)
	}
	tree.links["up"] = ".."
	if got, err := resolvePath(tree, "up"); err == nil {
		t.Errorf("a link to the root resolved to %q", got)
	}
}

func TestReadELFDeps(t *testing.T) {
	d, err := readELFDeps(fakeDynELF(testInterp, "libc.so.6", "libuuid.so.1"))
	if err != nil || d.interp != testInterp || !reflect.DeepEqual(d.needed, []string{"libc.so.6", "libuuid.so.1"}) {
		t.Errorf("program: %+v, %v", d, err)
	}
	if d, err := readELFDeps(fakeDynELF("")); err != nil || d.interp != "" || len(d.needed) != 0 {
		t.Errorf("loader: %+v, %v", d, err)
	}
	if d, err := readELFDeps(fakeVmlinux(nil, 10)); err != nil || d.interp != "" || len(d.needed) != 0 {
		t.Errorf("static ELF: %+v, %v", d, err)
	}
	if _, err := readELFDeps([]byte("#!/bin/sh\n")); err == nil {
		t.Error("readELFDeps accepted a script")
	}
	arm := fakeDynELF("", "libc.so.6")
	arm[18] = 183 // EM_AARCH64
	if _, err := readELFDeps(arm); err == nil || !strings.Contains(err.Error(), "x86-64") {
		t.Errorf("arm64 ELF: %v", err)
	}
}

func TestUserClosure(t *testing.T) {
	tree := fakeUserTree(t)
	files := stagedUserland(t, tree)
	type entry struct{ guest, src, link string }
	var got []entry
	for _, f := range files {
		got = append(got, entry{f.guest, f.src, f.link})
	}
	lib := "lib/x86_64-linux-gnu/"
	want := []entry{
		{"etc/mke2fs.conf", "etc/mke2fs.conf", ""},
		{lib + "ld-linux-x86-64.so.2", lib + "ld-linux-x86-64.so.2", ""},
		{lib + "libblkid.so.1", "usr/" + lib + "libblkid.so.1.1.0", ""},
		{lib + "libc.so.6", lib + "libc.so.6", ""},
		{lib + "libcom_err.so.2", lib + "libcom_err.so.2.1", ""},
		{lib + "libe2p.so.2", lib + "libe2p.so.2.3", ""},
		{lib + "libext2fs.so.2", lib + "libext2fs.so.2.4", ""},
		{lib + "libuuid.so.1", "usr/" + lib + "libuuid.so.1.3.0", ""},
		{"lib64/ld-linux-x86-64.so.2", "", "/" + lib + "ld-linux-x86-64.so.2"},
		{"sbin/e2fsck", "sbin/e2fsck", ""},
		{"sbin/mke2fs", "sbin/mke2fs", ""},
		// The aliases, after the closure.
		{"sbin/fsck.ext4", "", "e2fsck"},
		{"sbin/mkfs.ext2", "", "mke2fs"},
		{"sbin/mkfs.ext4", "", "mke2fs"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("userland:\n%q\nwant\n%q", got, want)
	}
	for _, f := range files {
		if f.link == "" && (f.mode&0o111 != 0) != (strings.HasPrefix(f.guest, "sbin/") || strings.Contains(f.guest, "ld-linux")) {
			t.Errorf("%s: mode %v", f.guest, f.mode)
		}
	}
}

func TestUserClosureErrors(t *testing.T) {
	for _, c := range []struct {
		drop []string
		want string
	}{
		{[]string{"usr/lib/x86_64-linux-gnu/libuuid.so.1.3.0"}, "sbin/mke2fs needs libuuid.so.1, which none of the packages has"},
		{[]string{"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}, "loader /lib64/ld-linux-x86-64.so.2 (for sbin/mke2fs)"},
		{[]string{"sbin/e2fsck"}, "program sbin/e2fsck"},
		{[]string{"etc/mke2fs.conf"}, "config file etc/mke2fs.conf"},
	} {
		_, err := userClosure(fakeUserTree(t, c.drop...), UserPrograms, userConfig)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("without %q: %v; want %q", c.drop, err, c.want)
		}
	}
	tree := fakeUserTree(t)
	// A library that needs one that is missing names it and its user.
	writeFile(filepath.Join(tree.root, "lib/x86_64-linux-gnu/libe2p.so.2.3"), fakeDynELF("", "libmissing.so.9"), 0o644)
	if _, err := userClosure(tree, UserPrograms, nil); err == nil || !strings.Contains(err.Error(), "libe2p.so.2 needs libmissing.so.9") {
		t.Errorf("missing indirect library: %v", err)
	}
	// A program that is not ELF, or a needed name with a slash.
	tree = fakeUserTree(t)
	writeFile(filepath.Join(tree.root, "sbin/mke2fs"), []byte("#!/bin/sh\n"), 0o755)
	if _, err := userClosure(tree, UserPrograms, nil); err == nil || !strings.Contains(err.Error(), "program sbin/mke2fs") {
		t.Errorf("script program: %v", err)
	}
	tree = fakeUserTree(t)
	writeFile(filepath.Join(tree.root, "sbin/mke2fs"), fakeDynELF(testInterp, "../../etc/passwd"), 0o755)
	if _, err := userClosure(tree, UserPrograms, nil); err == nil || !strings.Contains(err.Error(), "not a library name") {
		t.Errorf("needed path: %v", err)
	}
	// A loader the stage cannot hold, or a relative one.
	for _, interp := range []string{"/opt/ld.so", "ld.so", "/lib64/../lib64/ld.so"} {
		tree = fakeUserTree(t)
		writeFile(filepath.Join(tree.root, "sbin/mke2fs"), fakeDynELF(interp), 0o755)
		if _, err := userClosure(tree, UserPrograms, nil); err == nil {
			t.Errorf("loader %q accepted", interp)
		}
	}
}

func TestStageUserland(t *testing.T) {
	tree := fakeUserTree(t)
	files := stagedUserland(t, tree)
	stage := filepath.Join(t.TempDir(), userStageDir)
	os.MkdirAll(filepath.Join(stage, "stale"), 0o755)
	if err := stageUserland(stage, tree, files); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(stage, "stale")); err == nil {
		t.Error("a stale entry survived")
	}
	for _, d := range userDirs {
		if st, err := os.Stat(filepath.Join(stage, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(stage, "sbin/mkfs.ext4")); err != nil || l != "mke2fs" {
		t.Errorf("mkfs.ext4 -> %q, %v", l, err)
	}
	if l, err := os.Readlink(filepath.Join(stage, "lib64/ld-linux-x86-64.so.2")); err != nil || l != "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" {
		t.Errorf("loader link -> %q, %v", l, err)
	}
	want, _ := os.ReadFile(filepath.Join(tree.root, "lib/x86_64-linux-gnu/libext2fs.so.2.4"))
	if b, err := os.ReadFile(filepath.Join(stage, "lib/x86_64-linux-gnu/libext2fs.so.2")); err != nil || string(b) != string(want) {
		t.Errorf("libext2fs.so.2: %d bytes, %v", len(b), err)
	}
	if st, err := os.Stat(filepath.Join(stage, "sbin/mke2fs")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("mke2fs: %v, %v", st.Mode(), err)
	}

	// treeHash sees contents, modes, links and entries added or removed.
	h0, err := treeHash(stage)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := treeHash(stage); h != h0 {
		t.Error("treeHash is not stable")
	}
	for i, change := range []func(){
		func() { os.Chmod(filepath.Join(stage, "sbin/e2fsck"), 0o644) },
		func() { os.WriteFile(filepath.Join(stage, "etc/mke2fs.conf"), []byte("[defaults]\n\n"), 0o644) },
		func() {
			os.Remove(filepath.Join(stage, "sbin/mkfs.ext4"))
			os.Symlink("e2fsck", filepath.Join(stage, "sbin/mkfs.ext4"))
		},
		func() { os.Remove(filepath.Join(stage, "sbin/mkfs.ext2")) },
		func() { os.Remove(filepath.Join(stage, "mnt")) },
		func() { os.WriteFile(filepath.Join(stage, "lib/extra"), nil, 0o644) },
	} {
		if err := stageUserland(stage, tree, files); err != nil {
			t.Fatal(err)
		}
		change()
		if h, err := treeHash(stage); err != nil || h == h0 {
			t.Errorf("change %d: treeHash %v, unchanged %v", i, err, h == h0)
		}
	}
	if _, err := treeHash(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("treeHash of a missing directory")
	}
}

func TestWantUserFile(t *testing.T) {
	for name, want := range map[string]bool{
		"sbin/mke2fs": true, "etc/mke2fs.conf": true, "lib/x86_64-linux-gnu/libc.so.6": true,
		"usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0": true, "lib64/ld-linux-x86-64.so.2": true,
		"usr/share/doc/libc6/copyright": false, "usr/lib/x86_64-linux-gnu/gconv/UTF-16.so": false,
		"etc/cron.d/e2scrub_all": false, "lib/systemd/system/e2scrub@.service": false,
	} {
		if got := wantUserFile(name); got != want {
			t.Errorf("wantUserFile(%q) = %v", name, got)
		}
	}
}

// hostTree is a file tree on this machine (for the host's own programs).
type hostTree struct{ root string }

func (h hostTree) readlink(p string) (string, bool) {
	target, err := os.Readlink(filepath.Join(h.root, filepath.FromSlash(p)))
	return target, err == nil
}

func (h hostTree) readFile(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(h.root, filepath.FromSlash(p)))
}

// TestUserClosureHost works out the closure of this machine's own
// mke2fs and e2fsck (Debian's, when the host is Debian): real ELF files,
// a merged /usr or not.
func TestUserClosureHost(t *testing.T) {
	for _, p := range UserPrograms {
		if _, err := os.Stat("/" + p); err != nil {
			t.Skipf("no /%s on this machine", p)
		}
	}
	files, err := userClosure(hostTree{"/"}, UserPrograms, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]stagedFile{}
	for _, f := range files {
		have[f.guest] = f
	}
	for _, lib := range []string{"libext2fs.so.2", "libcom_err.so.2", "libc.so.6"} {
		if f, ok := have[guestLibDir+"/"+lib]; !ok || f.src == "" {
			t.Errorf("%s is not in the closure: %+v", lib, files)
		}
	}
	if f, ok := have["lib64/ld-linux-x86-64.so.2"]; ok && f.link != "/"+guestLibDir+"/ld-linux-x86-64.so.2" {
		t.Errorf("loader link %+v", f)
	}
	t.Logf("%d files: %+v", len(files), files)
}
