package jeos

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	user := []string{"e2fsprogs", "libc6"}
	cur := &stamp{Recipe: recipeVersion, Request: DefaultKernelPackage, UserRequest: user}
	old := &stamp{Recipe: recipeVersion - 1, Request: DefaultKernelPackage, UserRequest: user}
	all := plan{kernel: true, user: true, initrd: true}
	kernel := plan{kernel: true, initrd: true}
	userland := plan{user: true, initrd: true}
	cases := []struct {
		name         string
		s            *stamp
		request      string
		user         []string
		force        bool
		kernelIntact bool
		userIntact   bool
		want         plan
	}{
		{"up to date", cur, DefaultKernelPackage, user, false, true, true, plan{}},
		{"forced", cur, DefaultKernelPackage, user, true, true, true, all},
		{"no stamp", nil, DefaultKernelPackage, user, false, false, false, all},
		{"old recipe", old, DefaultKernelPackage, user, false, true, true, all},
		{"other package", cur, "linux-image-cloud-amd64", user, false, true, true, kernel},
		{"kernel files changed", cur, DefaultKernelPackage, user, false, false, true, kernel},
		{"another user package", cur, DefaultKernelPackage, []string{"e2fsprogs", "libc6", "libss2"}, false, true, true, userland},
		{"a user package less", cur, DefaultKernelPackage, []string{"e2fsprogs"}, false, true, true, userland},
		{"user packages reordered", cur, DefaultKernelPackage, []string{"libc6", "e2fsprogs"}, false, true, true, userland},
		{"userland changed", cur, DefaultKernelPackage, user, false, true, false, userland},
		{"both changed", cur, DefaultKernelPackage, user, false, false, false, all},
	}
	for _, c := range cases {
		if got := decide(c.s, c.request, c.user, c.force, c.kernelIntact, c.userIntact); got != c.want {
			t.Errorf("%s: decide = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestStampFiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("abc"), 0o644)
	fs, err := statStamp(f)
	if err != nil || fs.Size != 3 {
		t.Fatalf("statStamp = %+v, %v", fs, err)
	}
	s := &stamp{Recipe: recipeVersion, Outputs: map[string]fileStamp{"f": fs}}
	if !s.outputsIntact(dir, []string{"f"}) {
		t.Error("fresh file not intact")
	}
	if s.outputsIntact(dir, []string{"f", "g"}) {
		t.Error("unrecorded file counted as intact")
	}
	os.WriteFile(f, []byte("abcd"), 0o644)
	if s.outputsIntact(dir, []string{"f"}) {
		t.Error("resized file still intact")
	}
	os.WriteFile(f, []byte("xyz"), 0o644)
	os.Chtimes(f, time.Now(), time.Now().Add(time.Hour))
	if s.outputsIntact(dir, []string{"f"}) {
		t.Error("rewritten file still intact")
	}
	if _, err := statStamp(dir); err == nil {
		t.Error("statStamp accepted a directory")
	}

	if err := s.write(dir); err != nil {
		t.Fatal(err)
	}
	if got := readStamp(dir); got == nil || !reflect.DeepEqual(got, s) {
		t.Errorf("readStamp = %+v, want %+v", got, s)
	}
	os.WriteFile(filepath.Join(dir, stampFile), []byte("{not json"), 0o644)
	if readStamp(dir) != nil {
		t.Error("readStamp accepted a corrupt stamp")
	}
	if readStamp(t.TempDir()) != nil {
		t.Error("readStamp found a stamp in an empty directory")
	}
}

// fakeSource makes a minimal juice source tree for initrdInputs.
func fakeSource(t *testing.T) string {
	src := t.TempDir()
	files := map[string]string{
		"go.mod":                      "module juice\n\ngo 1.26.8\n",
		"go.sum":                      "",
		"cmd/jeosinit/main.go":        "package main\n\nfunc main() {}\n",
		"cmd/jeosinit/main_test.go":   "package main\n",
		"cmd/juice/jeos/unrelated.go": "package jeos\n",
	}
	for name, text := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// cachedBuild lays out a complete build directory as Build would leave
// it, from a fake kernel tree, and returns it.
func cachedBuild(t *testing.T, src string) string {
	dir := t.TempDir()
	tree := kernelTree(t)
	idx, err := indexModules(tree)
	if err != nil {
		t.Fatal(err)
	}
	o, err := orderModules(tree, idx, RequiredModules(), OptionalModules)
	if err != nil {
		t.Fatal(err)
	}
	names, err := stageInitramfs(filepath.Join(dir, stageDir), tree, o.paths, idx.release)
	if err != nil {
		t.Fatal(err)
	}
	utree := fakeUserTree(t)
	ufiles := stagedUserland(t, utree)
	if err := stageUserland(filepath.Join(dir, userStageDir), utree, ufiles); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{kernelFile: "bz", vmlinuxFile: "elf", configFile: "cfg", initrdFile: "cpio"} {
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	st := &stamp{
		Recipe: recipeVersion, Request: DefaultKernelPackage,
		Package: "linux-image-" + rel, Version: "6.1.999-1", Release: rel,
		PVHEntry: testPVHEntry, Modules: names, Outputs: map[string]fileStamp{},
		Notes:       []string{"a note"},
		UserRequest: append([]string(nil), UserPackages...),
		UserPackages: []string{"e2fsprogs 1.47.0-2+b2 fedd424691c08ef0739729026be298e7be8236337bf8e031b3c7ec66794e6fc2",
			"libc6 2.36-9+deb12u14 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}
	for _, f := range ufiles {
		st.UserFiles = append(st.UserFiles, f.guest)
	}
	if st.UserTree, err = treeHash(filepath.Join(dir, userStageDir)); err != nil {
		t.Fatal(err)
	}
	st.Outputs[vmlinuxFile] = fileStamp{}
	for _, n := range append(st.kernelOutputs(), initrdFile) {
		if st.Outputs[n], err = statStamp(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if st.InitrdInputs, err = initrdInputs(src, filepath.Join(dir, stageDir), filepath.Join(dir, userStageDir)); err != nil {
		t.Fatal(err)
	}
	if err := st.write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStageInitramfs(t *testing.T) {
	dir := cachedBuild(t, fakeSource(t))
	order, err := os.ReadFile(filepath.Join(dir, stageDir, guestModuleDir, guestOrderFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(order)), "\n")
	if !strings.HasPrefix(lines[0], "#") || !strings.Contains(lines[0], rel) {
		t.Errorf("order header %q", lines[0])
	}
	want := []string{"virtio_ring.ko", "virtio.ko", "virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko", "virtio_pci.ko",
		"virtio_mmio.ko", "virtio_blk.ko", "failover.ko", "net_failover.ko", "virtio_net.ko", "virtio_console.ko",
		"virtio-rng.ko", "crc32c_generic.ko", "jbd2.ko", "mbcache.ko", "crc16.ko", "ext4.ko", "pvpanic.ko", "pvpanic-mmio.ko"}
	if !reflect.DeepEqual(lines[1:], want) {
		t.Errorf("order %q\nwant %q", lines[1:], want)
	}
	for _, m := range want {
		if _, err := os.Stat(filepath.Join(dir, stageDir, guestModuleDir, m)); err != nil {
			t.Error(err)
		}
	}
	for name, text := range shellScripts {
		p := filepath.Join(dir, stageDir, "bin", name)
		b, err := os.ReadFile(p)
		st, _ := os.Stat(p)
		if err != nil || string(b) != text || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: %q, %v, mode %v", name, b, err, st.Mode())
		}
		if !strings.HasPrefix(text, "#!/bbin/"+uinitCommand+" "+name+"\n") {
			t.Errorf("%s script %q does not run jeosinit %s", name, text, name)
		}
	}
}

// TestBuildCache checks what Build redoes, in a build directory that
// is complete, with no commands on PATH: what needs apt fails on
// apt-cache, what needs u-root fails on go, and an up-to-date directory
// needs neither.
func TestBuildCache(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	src := fakeSource(t)
	build := func(dir string, mod func(*Options)) (Image, error) {
		o := Options{Dir: dir, Source: src}
		if mod != nil {
			mod(&o)
		}
		return Build(o)
	}
	needsApt := func(name string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "apt-cache not found") {
			t.Errorf("%s: error %v, want apt-cache not found", name, err)
		}
	}
	needsURoot := func(name string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "u-root") || strings.Contains(err.Error(), "apt") {
			t.Errorf("%s: error %v, want u-root's build (and no apt)", name, err)
		}
	}

	dir := cachedBuild(t, src)
	start := time.Now()
	img, err := build(dir, nil)
	if err != nil {
		t.Fatalf("up-to-date build: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("up-to-date build took %v", d)
	}
	want := Image{
		Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Vmlinux: filepath.Join(dir, "vmlinux"),
		Config: filepath.Join(dir, "config"), Initrd: filepath.Join(dir, "initrd.cpio"),
		PVHEntry: testPVHEntry, Package: "linux-image-" + rel, Version: "6.1.999-1", Release: rel,
		Modules: readStamp(dir).Modules, Notes: []string{"a note"}, Cached: true,
		Userland: []string{"e2fsprogs 1.47.0-2+b2", "libc6 2.36-9+deb12u14"},
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("image %+v\nwant  %+v", img, want)
	}
	stampBefore, _ := os.ReadFile(filepath.Join(dir, stampFile))

	_, err = build(dir, func(o *Options) { o.Force = true })
	needsApt("--force", err)
	_, err = build(dir, func(o *Options) { o.KernelPackage = "linux-image-cloud-amd64" })
	needsApt("another package", err)
	_, err = build(dir, func(o *Options) { o.KernelPackage = DefaultKernelPackage })
	if err != nil {
		t.Errorf("naming the default package: %v", err)
	}

	// jeosinit's source or go.mod changed: only the initramfs is redone.
	os.WriteFile(filepath.Join(src, "cmd/jeosinit/main.go"), []byte("package main\n\nfunc main() { println() }\n"), 0o644)
	_, err = build(dir, nil)
	needsURoot("jeosinit changed", err)
	os.WriteFile(filepath.Join(src, "cmd/jeosinit/main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	if _, err := build(dir, nil); err != nil {
		t.Errorf("jeosinit changed back: %v", err)
	}
	os.WriteFile(filepath.Join(src, "cmd/jeosinit/main_test.go"), []byte("package main // tests do not count\n"), 0o644)
	os.WriteFile(filepath.Join(src, "cmd/juice/jeos/unrelated.go"), []byte("package jeos // nor does this\n"), 0o644)
	if _, err := build(dir, nil); err != nil {
		t.Errorf("unrelated files changed: %v", err)
	}
	os.WriteFile(filepath.Join(src, "go.sum"), []byte("x v1 h1:\n"), 0o644)
	_, err = build(dir, nil)
	needsURoot("go.sum changed", err)
	os.WriteFile(filepath.Join(src, "go.sum"), nil, 0o644)

	// The initramfs gone or replaced.
	os.Remove(filepath.Join(dir, initrdFile))
	_, err = build(dir, nil)
	needsURoot("initrd removed", err)
	os.WriteFile(filepath.Join(dir, initrdFile), []byte("other"), 0o644)
	_, err = build(dir, nil)
	needsURoot("initrd replaced", err)

	// A kernel-side file changed or gone: everything is redone.
	for _, f := range []string{kernelFile, vmlinuxFile, filepath.Join(stageDir, guestModuleDir, "virtio_net.ko"), filepath.Join(stageDir, "bin", "poweroff")} {
		d := cachedBuild(t, src)
		os.WriteFile(filepath.Join(d, f), []byte("changed!"), 0o644)
		_, err = build(d, nil)
		needsApt(f+" changed", err)
		d = cachedBuild(t, src)
		os.Remove(filepath.Join(d, f))
		_, err = build(d, nil)
		needsApt(f+" removed", err)
	}
	// The userland stage changed, or the package set: the userland is
	// redone (which asks apt).
	for _, change := range []func(d string){
		func(d string) {
			os.WriteFile(filepath.Join(d, userStageDir, "sbin", "mke2fs"), []byte("changed!"), 0o755)
		},
		func(d string) { os.Remove(filepath.Join(d, userStageDir, "sbin", "mkfs.ext4")) },
		func(d string) { os.RemoveAll(filepath.Join(d, userStageDir)) },
		func(d string) { os.WriteFile(filepath.Join(d, userStageDir, "lib", "extra.so"), nil, 0o644) },
		func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, stampFile))
			os.WriteFile(filepath.Join(d, stampFile), []byte(strings.Replace(string(b), `"libc6"`, `"libc6", "libss2"`, 1)), 0o644)
		},
		func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, stampFile))
			os.WriteFile(filepath.Join(d, stampFile), []byte(strings.Replace(string(b), `"e2fsprogs",`, ``, 1)), 0o644)
		},
	} {
		d := cachedBuild(t, src)
		change(d)
		_, err = build(d, nil)
		needsApt("userland changed", err)
	}
	// The user package list is in the stamp (the edits above hit it).
	if s := readStamp(cachedBuild(t, src)); !reflect.DeepEqual(s.UserRequest, UserPackages) {
		t.Errorf("stamp's user packages %q, want %q", s.UserRequest, UserPackages)
	}

	// Corrupt stamp or an older recipe.
	d := cachedBuild(t, src)
	os.WriteFile(filepath.Join(d, stampFile), []byte("{"), 0o644)
	_, err = build(d, nil)
	needsApt("corrupt stamp", err)
	d = cachedBuild(t, src)
	b, _ := os.ReadFile(filepath.Join(d, stampFile))
	os.WriteFile(filepath.Join(d, stampFile), []byte(strings.Replace(string(b), fmt.Sprintf(`"recipe": %d`, recipeVersion), `"recipe": 1`, 1)), 0o644)
	_, err = build(d, nil)
	needsApt("old recipe", err)

	// Failed builds leave the stamp alone.
	if after, _ := os.ReadFile(filepath.Join(dir, stampFile)); string(after) != string(stampBefore) {
		t.Error("a failed build rewrote the stamp")
	}
}

func TestFindSource(t *testing.T) {
	src := fakeSource(t)
	if got, err := findSource(src); err != nil || got != src {
		t.Errorf("findSource(%q) = %q, %v", src, got, err)
	}
	if _, err := findSource(t.TempDir()); err == nil {
		t.Error("findSource accepted a directory without go.mod")
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module juicer\n"), 0o644)
	if _, err := findSource(other); err == nil {
		t.Error("findSource accepted another module")
	}
	// From the working directory up: this package is inside juice.
	got, err := findSource("")
	if err != nil || !isJuiceModule(got) {
		t.Errorf("findSource(\"\") = %q, %v", got, err)
	}
}

func TestURootArgs(t *testing.T) {
	args := urootArgs("/out/initrd.cpio", "/stage", "/user")
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-o /out/initrd.cpio", "-uinitcmd=jeosinit", "-defaultsh=gosh",
		"-files /stage/lib/modules/juice:lib/modules/juice",
		"-files /stage/bin/poweroff:bin/poweroff", "-files /stage/bin/reboot:bin/reboot",
		"-files /user/lib:lib ", "-files /user/lib64:lib64 ", "-files /user/sbin:sbin ", "-files /user/etc:etc ", "-files /user/mnt:mnt ",
		"github.com/u-root/u-root/cmds/core/umount ", "github.com/u-root/u-root/cmds/core/mount ",
		"github.com/u-root/u-root/cmds/core/init ", "github.com/u-root/u-root/cmds/core/gosh ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("u-root args %q lack %q", joined, want)
		}
	}
	if args[len(args)-1] != "./cmd/jeosinit" {
		t.Errorf("last argument %q, want ./cmd/jeosinit", args[len(args)-1])
	}
	// Every command must be a tool in juice's go.mod, or module mode
	// cannot build it.
	src, err := findSource("")
	if err != nil {
		t.Fatal(err)
	}
	gomod, _ := os.ReadFile(filepath.Join(src, "go.mod"))
	for _, c := range append([]string{""}, UrootCommands...) {
		p := urootPkg
		if c != "" {
			p = urootCmdPrefix + c
		}
		if !strings.Contains(string(gomod), "\t"+p+"\n") {
			t.Errorf("go.mod has no tool %s", p)
		}
	}
}

func TestEnvWithout(t *testing.T) {
	got := envWithout([]string{"GOOS=plan9", "PATH=/bin", "GOARCH=arm", "GOOSX=1"}, "GOOS", "GOARCH")
	if !reflect.DeepEqual(got, []string{"PATH=/bin", "GOOSX=1"}) {
		t.Errorf("envWithout = %q", got)
	}
}

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	var log bytes.Buffer
	var mu sync.Mutex
	go func() {
		u, err := lockDir(dir, lockedWriter{&mu, &log})
		if err != nil {
			got <- err.Error()
			return
		}
		u()
		got <- "locked"
	}()
	select {
	case s := <-got:
		t.Fatalf("second lock while the first is held: %s", s)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case s := <-got:
		if s != "locked" {
			t.Fatal(s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second lock not taken after the first was released")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "waiting for another build") {
		t.Errorf("log %q", log.String())
	}
}

// lockedWriter is a Writer safe to share between goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

// Write writes under the lock.
func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
