package loader

import (
	"os"
	"strings"
	"testing"
)

// realHeader is what the loader must read from one real kernel's setup
// header (testdata/*.hdr; values read independently with a hex dump).
type realHeader struct {
	file        string
	version     uint16
	setupBytes  uint64
	kernelBytes uint64
	hdrEnd      uint64
	initrdMax   uint64
	align       uint64
	cmdlineSize uint64
	prefAddress uint64
	initSize    uint64
	xloadflags  uint16
}

var realHeaders = []realHeader{
	{"debian-6.1.0-56-amd64.hdr", 0x20f, 40 * 512, 8225280, 0x26c, 0x7fffffff, 0x200000, 2047, 0x1000000, 66682880, 0x7f},
	{"debian-6.1.0-56-cloud-amd64.hdr", 0x20f, 40 * 512, 14164480, 0x26c, 0x7fffffff, 0x200000, 2047, 0x1000000, 53968896, 0x7f},
}

// TestLoadLinuxRealHeaders parses the headers of real Debian kernels kept
// in testdata (padded with zeros to the length each declares), loads them
// with an initrd, and refuses each one byte short of its declared length.
func TestLoadLinuxRealHeaders(t *testing.T) {
	for _, want := range realHeaders {
		hdr, err := os.ReadFile("testdata/" + want.file)
		if err != nil {
			t.Fatal(err)
		}
		k := make([]byte, want.setupBytes+want.kernelBytes)
		copy(k, hdr)
		h, err := parseLinuxHeader(k)
		if err != nil {
			t.Fatalf("%s: %v", want.file, err)
		}
		got := realHeader{want.file, h.version, h.setupBytes, h.kernelBytes, h.hdrEnd, h.initrdMax, h.align,
			h.cmdlineSize, h.prefAddress, h.initSize, h.xloadflags}
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", want.file, got, want)
		}
		if !h.relocatable || h.loadflags&loadedHigh == 0 {
			t.Errorf("%s: relocatable %v loadflags %#x", want.file, h.relocatable, h.loadflags)
		}
		ramSize := int(want.prefAddress + want.initSize + 16<<20)
		ram, mem, v := newGuest(ramSize)
		img, err := LoadLinux(mem, v, k, "console=ttyS0", []byte("initrd"))
		if err != nil {
			t.Fatalf("%s: %v", want.file, err)
		}
		if img.Entry != want.prefAddress+0x200 {
			t.Errorf("%s: entry %#x, want %#x", want.file, img.Entry, want.prefAddress+0x200)
		}
		if v := le.Uint16(ram[LinuxZeroPage+shVersion:]); v != want.version {
			t.Errorf("%s: boot_params protocol %#x", want.file, v)
		}
		_, mem, v = newGuest(ramSize)
		if _, err := LoadLinux(mem, v, k[:len(k)-1], "", nil); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%s one byte short: %v", want.file, err)
		}
		// RAM that ends inside the kernel's init_size is refused, not overrun.
		_, mem, v = newGuest(int(want.prefAddress + want.initSize/2))
		if _, err := LoadLinux(mem, v, k, "", nil); err == nil {
			t.Errorf("%s loaded into %d MiB of RAM", want.file, (want.prefAddress+want.initSize/2)>>20)
		}
	}
}
