package tests

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/jeos"
	"juice/cmd/juice/launch"
	"juice/vmm/bundle"
)

// The hostile test runs a guest that breaks the virtio ring protocol on
// purpose (tests/guests/hostile_386.s) next to a JeOS guest doing real
// disk work, and checks that juice stops each broken device with a
// message, the broken devices work again after a reset, and the other VM
// never notices.

// hostileAttack is one attack of the hostile guest: its step name and,
// for one that puts the device in NEEDS_RESET, juice's reason (regexp
// text: everything literal except ADDR, any hex address, and HIGH, an
// address above 4 GiB). An empty reason is an attack the device answers
// with VIRTIO_BLK_S_IOERR and survives.
type hostileAttack struct {
	name   string
	dev    string // "rng" or "blk"
	reason string
}

// hostileAttacks are the hostile guest's attacks, in its order. Its RAM
// is 16 MiB (0x1000000), its queue 8 entries.
var hostileAttacks = []hostileAttack{
	{"loop", "rng", "queue 0, chain head 0, descriptor 0: chain revisits a descriptor (loop) or is longer than its table (8 entries)"},
	{"next-range", "rng", "queue 0, chain head 0, descriptor 0: next index 200 is not below the table size 8"},
	{"outside-ram", "rng", "queue 0, chain head 0, descriptor 0: buffer [0x40000000, +0x40) is outside guest RAM (0x1000000 bytes)"},
	{"ram-end", "rng", "queue 0, chain head 0, descriptor 0: buffer [0xfffff0, +0x20) is outside guest RAM (0x1000000 bytes)"},
	{"mmio-buffer", "rng", "queue 0, chain head 0, descriptor 0: buffer [0xfe000000, +0x200) is outside guest RAM (0x1000000 bytes)"},
	{"above-4g", "rng", "queue 0, chain head 0, descriptor 0: buffer [HIGH, +0x40) is outside guest RAM (0x1000000 bytes)"},
	{"len-max", "rng", "queue 0, chain head 0, descriptor 0: buffer [ADDR, +0xffffffff) is outside guest RAM (0x1000000 bytes)"},
	{"len-wrap", "rng", "queue 0, chain head 0, descriptor 0: buffer [0xfffffffffffff000, +0x2000) is outside guest RAM (0x1000000 bytes)"},
	{"indirect-outside", "rng", "queue 0, chain head 0, descriptor 0: indirect table [0x40000000, +0x20) is outside guest RAM (0x1000000 bytes)"},
	{"indirect-len", "rng", "queue 0, chain head 0, descriptor 0: indirect table length 24 is not a multiple of 16"},
	{"indirect-loop", "rng", "queue 0, chain head 0, indirect descriptor 0: chain revisits a descriptor (loop) or is longer than its table (2 entries)"},
	{"indirect-nested", "rng", "queue 0, chain head 0, indirect descriptor 0: indirect descriptor inside an indirect table"},
	{"indirect-next", "rng", "queue 0, chain head 0, descriptor 0: indirect descriptor has NEXT set"},
	{"avail-jump", "rng", "queue 0: available index 13 is 13 entries ahead of the device's 0 (queue size 8)"},
	{"head-range", "rng", "queue 0, chain head 4660: head index 4660 is not below the queue size 8"},
	{"readable", "rng", "queue 0, chain head 0: entropy request has 64 device-readable bytes"},
	{"read-after-write", "rng", "queue 0, chain head 0, descriptor 1: device-readable buffer after a device-writable one"},
	{"ring-outside", "rng", "queue 0: descriptor table [0x40000000, +0x80) is outside guest RAM (0x1000000 bytes)"},
	{"ring-mmio", "rng", "queue 0: used ring [0xfe000200, +0x46) is outside guest RAM (0x1000000 bytes)"},
	{"ring-above-4g", "rng", "queue 0: available ring [HIGH, +0x16) is outside guest RAM (0x1000000 bytes)"},
	{"queue-size", "rng", "queue 0: queue size 3 is not a power of two in 1..32768"},
	{"queue-max", "rng", "queue 0: queue size 32768 is above the device maximum 64"},
	{"blk-sector", "blk", ""},
	{"blk-sector-high", "blk", ""},
	{"blk-past-end", "blk", ""},
	{"blk-short-header", "blk", "queue 0, chain head 0: request header needs 16 device-readable bytes, chain has 8"},
	{"blk-no-status", "blk", "queue 0, chain head 0: request has no device-writable status byte"},
}

// hostileDevices are the hostile guest's devices: virtio-mmio, a 1 MiB
// RAM disk (device 0) and the entropy source (device 1).
var hostileDevices = map[string]string{
	"blk": "virtio blk device 0: virtio-blk",
	"rng": "virtio rng device 1: virtio-rng",
}

// hostileReasonRE is juice's line for attack a.
func hostileReasonRE(a hostileAttack) *regexp.Regexp {
	re := regexp.QuoteMeta(VMEnd("hostile") + hostileDevices[a.dev] + ": device needs reset: " + a.reason)
	re = strings.ReplaceAll(re, "ADDR", "0x[0-9a-f]+")
	re = strings.ReplaceAll(re, "HIGH", "0x1[0-9a-f]{8}")
	return regexp.MustCompile("^" + re + "$")
}

// expectNextMatch is ExpectNext for a line that match accepts.
func expectNextMatch(r *Run, desc string, match func(string) bool) string {
	r.t.Helper()
	l, err := r.M.Console.Wait(r.ctx, r.next, match)
	if err != nil {
		r.fail(desc+" (after line "+strconv.Itoa(r.next)+")", err)
	}
	r.next = l.Index + 1
	return l.Text
}

// hostilePattern is the worker's disk image: 256 KiB of a xorshift
// sequence.
func hostilePattern() []byte {
	p := make([]byte, 256<<10)
	x := uint32(0x6a756963)
	for i := 0; i < len(p); i += 4 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i], p[i+1], p[i+2], p[i+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	return p
}

// TestVirtioHostileGuest: a guest offering its virtio-mmio devices
// looping chains, buffers, indirect tables and rings outside its RAM
// (above 4 GiB, over MMIO, across the end of RAM), absurd and wrapping
// lengths, a runaway available index, an out-of-range head, buffers in
// the wrong direction, bad queue sizes and unanswerable block requests
// gets each device put in NEEDS_RESET with juice's message naming the
// problem, and the device works again after a reset; block requests past
// the disk get IOERR and the device stays live. At the same time a JeOS
// guest copies a 256 KiB image from one virtio-blk disk to another,
// drops its page cache, reads the copy back, and its MD5 is the image's;
// it powers off normally and juice exits with status 0.
func TestVirtioHostileGuest(t *testing.T) {
	img := JeOS(t)
	kernel := img.Vmlinux // PVH: no decompression, the quicker boot
	if kernel == "" {
		kernel = img.Kernel
	}
	pattern := hostilePattern()
	sum := md5.Sum(pattern)
	want := hex.EncodeToString(sum[:])
	disk := filepath.Join(t.TempDir(), "pattern.img")
	if err := os.WriteFile(disk, pattern, 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := strconv.Itoa(len(pattern) / 4096)
	// No double quotes inside (the kernel's command-line quoting).
	command := strings.Join([]string{
		"dd if=/dev/vda of=/dev/vdb bs=4096 count=" + blocks,
		"sync",
		"echo 3 > /proc/sys/vm/drop_caches",
		"dd if=/dev/vdb of=/tmp/back bs=4096 count=" + blocks,
		"md5sum /tmp/back",
	}, " && ")
	worker := jeosVM(img, kernel, `console=ttyS0 jeos.exec="`+command+`" `+jeos.PoweroffArg)
	worker.Name, worker.Memory = "worker", "192M"
	worker.Devices = &bundle.ManifestDevices{Disks: []bundle.ManifestDisk{{File: disk}, {Size: "1M"}}}
	hostile := hostileVM()
	start := time.Now()
	r := BootVMs(t, launch.Config{Mem: "384M", Timeout: 4 * time.Minute}, worker, hostile)

	needsReset, hostileEnd := expectHostile(t, r)

	// The worker copied the image and read back the same bytes.
	sumRE := regexp.MustCompile(`^\[worker\] ([0-9a-f]{32}) /tmp/back\s*$`)
	got := r.ExpectMatch("the worker's md5sum line", sumRE.MatchString)
	if m := sumRE.FindStringSubmatch(got); m == nil || m[1] != want {
		t.Errorf("the worker read back MD5 %q, want %s (the image's)", got, want)
	}
	done := r.ExpectMatch("the worker's command ending", contains("[worker] JEOS-EXEC status="))
	if !strings.HasSuffix(strings.TrimSpace(done), "JEOS-EXEC status=0") {
		t.Errorf("%q: want status 0", done)
	}
	r.Expect(VMEnd("worker") + "exited with status 0: guest powered off (ACPI S5)")
	r.ExpectExit(0)
	t.Logf("both VMs done in %v", time.Since(start).Round(time.Second))

	noFailLines(t, r, "hostile")
	texts := r.Texts()
	resets, ready, ended := 0, -1, -1
	for i, l := range texts {
		switch {
		case strings.HasPrefix(l, VMEnd("hostile")) && strings.Contains(l, "device needs reset"):
			resets++
		case strings.HasPrefix(l, VMEnd("worker")) && strings.Contains(l, "virtio"):
			t.Errorf("the worker's devices were touched: %s", l)
		case ready < 0 && strings.HasPrefix(l, "[worker] ") && strings.Contains(l, jeos.ReadyMarker):
			ready = i
		case l == hostileEnd:
			ended = i
		}
	}
	if resets != needsReset {
		t.Errorf("%d NEEDS_RESET messages for the hostile VM, want %d (one per attack)", resets, needsReset)
	}
	// Side by side: the attacks happened while the worker was booting.
	if ended < 0 || ready < 0 || ended > ready {
		t.Errorf("the hostile guest ended at console line %d, the worker was ready at line %d: the VMs did not run side by side", ended, ready)
	}
}

// hostileVM is the hostile guest's VM: virtio-mmio, a 1 MiB RAM disk
// (device 0) and the entropy source (device 1).
func hostileVM() launch.VMSpec {
	return launch.VMSpec{Name: "hostile", Devices: &bundle.ManifestDevices{
		Transport: "mmio",
		Disks:     []bundle.ManifestDisk{{Size: "1M"}},
		RNG:       true,
	}}
}

// expectHostile follows the hostile guest's run, in order: its devices
// work at first; each attack gets juice's message, then the guest sees
// NEEDS_RESET, then the device works again after a reset; it exits with
// status 0. It returns how many attacks put a device in NEEDS_RESET and
// the VM's end line.
func expectHostile(t *testing.T, r *Run) (int, string) {
	t.Helper()
	g := func(s string) string { return GuestLine("hostile", "hostile: "+s) }
	works := map[string]string{"rng": "rng works after reset", "blk": "blk works after reset"}
	r.ExpectNext(g("start: rng works after reset"))
	r.ExpectNext(g("start: blk works after reset"))
	needsReset := 0
	for _, a := range hostileAttacks {
		if a.name == "ram-end" {
			r.ExpectNext(g("ram-end-ok: the last 16 bytes of RAM filled"))
		}
		if a.reason == "" {
			r.ExpectNext(g(a.name + ": IOERR, device still live"))
		} else {
			re := hostileReasonRE(a)
			line := expectNextMatch(r, "juice's message for "+a.name+" matching "+re.String(),
				func(s string) bool { return re.MatchString(strings.TrimSpace(s)) })
			t.Logf("%s: %s", a.name, strings.TrimPrefix(line, VMEnd("hostile")))
			r.ExpectNext(g(a.name + ": needs-reset"))
			needsReset++
		}
		r.ExpectNext(g(a.name + ": " + works[a.dev]))
	}
	r.ExpectNext(g("all attacks caught, devices recovered"))
	hostileEnd := r.ExpectNext(VMEnd("hostile") + "exited with status 0")

	return needsReset, hostileEnd
}

// TestVirtioHostileGuestVTx: the same hostile guest under Bochs' VT-x CPU
// (EPT violations instead of NPT faults carry its MMIO accesses): every
// attack is caught with the same message and the devices recover, while
// a second VM (hello) runs to its end.
func TestVirtioHostileGuestVTx(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M", Emulator: launch.EmulatorBochs, Timeout: 8 * time.Minute},
		hostileVM(), launch.VMSpec{Name: "hello"})
	needsReset, _ := expectHostile(t, r)
	r.Expect(VMEnd("hello") + "exited with status 0")
	r.ExpectExit(0)
	noFailLines(t, r, "hostile")
	resets := len(r.Find(VMEnd("hostile")+hostileDevices["rng"]+": device needs reset")) +
		len(r.Find(VMEnd("hostile")+hostileDevices["blk"]+": device needs reset"))
	if resets != needsReset {
		t.Errorf("%d NEEDS_RESET messages, want %d", resets, needsReset)
	}
}
