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
		"virtio-rng.ko", "crc32c_generic.ko", "jbd2.ko", "mbcache.ko", "crc16.ko", "ext4.ko", "pvpanic.ko", "pvpanic-mmio.ko"}
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

	// The userland: Debian's programs, their aliases, and every library
	// they need (by DT_NEEDED, from the initramfs itself) under the name
	// they need it by; the loader through its lib64 link.
	link("sbin/mkfs.ext4", "mke2fs")
	link("sbin/fsck.ext4", "e2fsck")
	link("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	if len(img.Userland) != len(UserPackages) {
		t.Errorf("image userland %q, want %d packages", img.Userland, len(UserPackages))
	}
	queue := append([]string(nil), UserPrograms...)
	seen := map[string]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		r, ok := files[name]
		if !ok || r.Info.Mode&cpio.S_IFMT != cpio.S_IFREG {
			t.Errorf("%s is not a file in the initramfs", name)
			continue
		}
		d, err := readELFDeps(r.data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.interp != "" && d.interp != "/lib64/ld-linux-x86-64.so.2" {
			t.Errorf("%s: loader %s", name, d.interp)
		}
		for _, n := range d.needed {
			queue = append(queue, guestLibDir+"/"+n)
		}
	}
	t.Logf("userland: %d ELF files", len(seen))
	if r := files["etc/mke2fs.conf"]; !bytes.Contains(r.data, []byte("ext4 = {")) {
		t.Errorf("etc/mke2fs.conf: %q", r.data)
	}
	if r, ok := files["mnt"]; !ok || r.Info.Mode&cpio.S_IFMT != cpio.S_IFDIR {
		t.Errorf("no /mnt directory: %+v", r.Info)
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
			if err != nil || !strings.Contains(line, " modules=19/19 ") {
				t.Fatalf("qemu: %v; marker %q; output tail:%s", err, line, indentTail(out, 30))
			}
			t.Logf("%s: %q, QEMU exited after %.1fs", k.name, line, time.Since(start).Seconds())
		})
	}

	// Debian's mkfs.ext4 and e2fsck run in the guest: a file system made
	// and written there is clean for the guest's e2fsck, and for the
	// host's when it has one.
	t.Run("mkfs", func(t *testing.T) {
		disk := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(disk, nil, 0o644); err != nil || os.Truncate(disk, 32<<20) != nil {
			t.Fatalf("disk image: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		const script = "mkfs.ext4 -q /dev/vda && mount -t ext4 /dev/vda /mnt && echo jeos-mkfs > /mnt/hello && umount /mnt && e2fsck -fn /dev/vda"
		cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
			"-kernel", img.Vmlinux, "-initrd", img.Initrd, "-drive", "file="+disk+",if=virtio,format=raw",
			"-append", `console=ttyS0 quiet jeos.exec="`+script+`" `+PoweroffArg)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "JEOS-EXEC status=0") {
			t.Fatalf("qemu: %v; output tail:%s", err, indentTail(out, 30))
		}
		e2fsck, err := exec.LookPath("e2fsck")
		if err != nil {
			return
		}
		if out, err := exec.Command(e2fsck, "-fn", disk).CombinedOutput(); err != nil {
			t.Errorf("the host's e2fsck: %v%s", err, indentTail(out, 20))
		}
	})
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
