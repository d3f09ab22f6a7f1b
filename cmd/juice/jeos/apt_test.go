package jeos

import (
	"strings"
	"testing"
)

// Captured on Debian 12 (bookworm), November 2026.
const (
	dependsMeta = `linux-image-amd64
  Depends: linux-image-6.1.0-56-amd64
`
	dependsKernel = `linux-image-6.1.0-56-amd64
  Depends: kmod
  Depends: linux-base
 |Depends: initramfs-tools
  Depends: <linux-initramfs-tool>
    dracut
    initramfs-tools
    tiny-initramfs
  Conflicts: linux-image-6.1.0-56-amd64-unsigned
  Breaks: fwupdate
  Recommends: firmware-linux-free
  Suggests: linux-doc-6.1
 |Suggests: grub-pc
  Replaces: linux-image-6.1.0-56-amd64-unsigned
`
	showKernel = `Package: linux-image-6.1.0-56-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 400652
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Replaces: linux-image-6.1.0-56-amd64-unsigned
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description: Linux 6.1 for 64-bit PCs (signed)
 A second description line: with a colon.
Description-md5: eaf7b81be84ec12eb25fe90a4bac0f60
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
Size: 70550672
SHA256: A86E2049672F52354C4536A089203B6C82639420424D31C91CF31A181FD4D8F1

Package: linux-image-6.1.0-56-amd64
Version: 6.1.180-1
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.180-1_amd64.deb
`
)

func TestParseDepends(t *testing.T) {
	cases := []struct{ out, want string }{
		{dependsMeta, "linux-image-6.1.0-56-amd64"},
		{dependsKernel, ""},
		{"linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n", "linux-image-6.1.0-56-cloud-amd64"},
		{"meta\n |Depends: linux-image-6.1.0-9-amd64\n  Depends: linux-image-6.1.0-10-amd64\n", "linux-image-6.1.0-9-amd64"},
		{"meta\n  Recommends: linux-image-6.1.0-9-amd64\n", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := parseDepends([]byte(c.out)); got != c.want {
			t.Errorf("parseDepends(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}

func TestParseShow(t *testing.T) {
	p, err := parseShow([]byte(showKernel))
	if err != nil {
		t.Fatal(err)
	}
	want := kernelPackage{
		Name:     "linux-image-6.1.0-56-amd64",
		Version:  "6.1.192-2",
		Filename: "pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb",
		SHA256:   "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1",
		Size:     70550672,
	}
	if p != want {
		t.Errorf("parseShow = %+v\nwant %+v", p, want)
	}
	if got := p.debName(); got != "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb" {
		t.Errorf("debName = %q", got)
	}
	withEpoch := kernelPackage{Name: "foo", Version: "2:1.0-1", Filename: "pool/main/f/foo/foo_1.0-1_arm64.deb"}
	if got := withEpoch.debName(); got != "foo_2%3a1.0-1_arm64.deb" {
		t.Errorf("debName with an epoch = %q", got)
	}

	for _, bad := range []struct{ out, text string }{
		{"", "no package record"},
		{"Package: x\nFilename: x.deb\n", "no Version"},
		{"Package: x\nVersion: 1\n", "no Version or Filename"},
		{"Package: x\nVersion: 1\nFilename: x.tar\n", "not a .deb"},
		{"Package: x\nVersion: 1\nFilename: x.deb\nSize: big\n", "bad Size"},
	} {
		if p, err := parseShow([]byte(bad.out)); err == nil || !strings.Contains(err.Error(), bad.text) {
			t.Errorf("parseShow(%q) = %+v, %v; want an error with %q", bad.out, p, err, bad.text)
		}
	}
}

func TestIndentTail(t *testing.T) {
	if got := indentTail(nil, 3); got != "" {
		t.Errorf("indentTail(nil) = %q", got)
	}
	got := indentTail([]byte("1\n2\n3\n4\n5\n"), 2)
	if got != "\n    ...\n    4\n    5" {
		t.Errorf("indentTail = %q", got)
	}
}
