package jeos

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// logWriter sends Build's progress to the test log.
type logWriter struct{ t *testing.T }

// Write logs one chunk.
func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRealBuild builds the real JeOS guest: it needs apt (with package
// lists), dpkg-deb, Go with a filled module cache, and the network for
// the .deb unless JUICE_JEOS_DIR already has it. With QEMU it also boots
// the guest.
func TestRealBuild(t *testing.T) {
	if os.Getenv("JUICE_JEOS_BUILD") != "1" {
		t.Skip("set JUICE_JEOS_BUILD=1 to build the real JeOS guest (apt, dpkg-deb, Go; about a minute)")
	}
	dir := os.Getenv("JUICE_JEOS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	img, err := Build(Options{Dir: dir, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", img)

	// The kernel.
	bz, err := os.ReadFile(img.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseSetupHeader(bz); err != nil {
		t.Errorf("vmlinuz: %v", err)
	}
	if img.Vmlinux == "" {
		t.Fatalf("no vmlinux: %q", img.Notes)
	}
	vm, err := os.ReadFile(img.Vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	if entry, ok, err := pvhEntry(vm); err != nil || !ok || entry != img.PVHEntry || entry == 0 {
		t.Errorf("vmlinux PVH entry %#x, %v, %v; image says %#x", entry, ok, err, img.PVHEntry)
	}
	if cfg, err := os.ReadFile(img.Config); err != nil || !bytes.Contains(cfg, []byte("\nCONFIG_PVH=y\n")) {
		t.Errorf("config: %v, CONFIG_PVH=y missing", err)
	}

	// The initramfs, read back.
	files := readCpio(t, img.Initrd)
	link := func(name, target string) {
		t.Helper()
		r, ok := files[name]
		if !ok || r.Info.Mode&cpio.S_IFMT != cpio.S_IFLNK || string(r.data) != target {
			t.Errorf("%s: want a symlink to %s, have %+v %q", name, target, r.Info, r.data)
		}
	}
	link("init", "bbin/init")
	link("bin/uinit", "../bbin/jeosinit")
	link("bin/defaultsh", "../bbin/gosh")
	link("bin/sh", "../bbin/gosh")
	for _, c := range append(append([]string(nil), UrootCommands...), "jeosinit") {
		link("bbin/"+c, "bb")
	}
	bb, ok := files["bbin/bb"]
	if !ok {
		t.Fatal("no bbin/bb")
	}
	if f, err := elf.NewFile(bytes.NewReader(bb.data)); err != nil || f.Machine != elf.EM_X86_64 {
		t.Errorf("bbin/bb is not an x86-64 ELF: %v", err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("bbin/bb is dynamically linked")
			}
		}
	}
	for name, text := range shellScripts {
		r := files["bin/"+name]
		if string(r.data) != text || r.Info.Mode&0o111 == 0 {
			t.Errorf("bin/%s = %q mode %o; want %q, executable", name, r.data, r.Info.Mode, text)
		}
	}
	order := files[guestModuleDir+"/"+guestOrderFile]
	var listed []string
	for _, l := range strings.Split(string(order.data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			listed = append(listed, l)
		}
	}
	wantMods := []string{"virtio_ring.ko", "virtio.ko", "virtio_pci_modern_dev.ko", "virtio_pci_legacy_dev.ko", "virtio_pci.ko",
		"virtio_mmio.ko", "virtio_blk.ko", "failover.ko", "net_failover.ko", "virtio_net.ko", "virtio_console.ko",
		"virtio-rng.ko", "pvpanic.ko", "pvpanic-mmio.ko"}
	if !reflect.DeepEqual(listed, img.Modules) || !reflect.DeepEqual(listed, wantMods) {
		t.Errorf("order file lists %q; image %q; want %q", listed, img.Modules, wantMods)
	}
	for _, m := range listed {
		r, ok := files[guestModuleDir+"/"+m]
		if !ok {
			t.Errorf("%s is not in the initramfs", m)
			continue
		}
		f, err := elf.NewFile(bytes.NewReader(r.data))
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		info, _ := f.Section(".modinfo").Data()
		if !bytes.Contains(info, []byte("vermagic="+img.Release+" ")) {
			t.Errorf("%s is not built for %s", m, img.Release)
		}
	}
	var size int64
	for _, r := range files {
		size += int64(len(r.data))
	}
	t.Logf("initrd: %d entries, %d bytes of contents, bb %d bytes", len(files), size, len(bb.data))

	// Cached: nothing to do, quickly.
	start := time.Now()
	again, err := Build(Options{Dir: dir})
	if d := time.Since(start); err != nil || !again.Cached || d > time.Second {
		t.Errorf("second build: cached %v in %v, %v", again.Cached, d, err)
	}

	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Log("no qemu-system-x86_64: not booting")
		return
	}
	for _, k := range []struct{ name, kernel string }{{"bzImage", img.Kernel}, {"PVH", img.Vmlinux}} {
		t.Run("boot "+k.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
				"-kernel", k.kernel, "-initrd", img.Initrd, "-append", "console=ttyS0 quiet "+PoweroffArg)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			line := ""
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, ReadyMarker) {
					line = strings.TrimSpace(l)
				}
			}
			if err != nil || !strings.HasSuffix(line, "modules=14/14") {
				t.Fatalf("qemu: %v; marker %q; output tail:%s", err, line, indentTail(out, 30))
			}
			t.Logf("%s: %q, QEMU exited after %.1fs", k.name, line, time.Since(start).Seconds())
		})
	}
}

// cpioFile is one initramfs entry with its contents.
type cpioFile struct {
	cpio.Record
	data []byte
}

// readCpio reads a newc archive into a map by name.
func readCpio(t *testing.T, name string) map[string]cpioFile {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]cpioFile{}
	r := cpio.Newc.Reader(f)
	for {
		rec, err := r.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.Info.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Clean(rec.Info.Name)] = cpioFile{rec, data}
	}
	return files
}
