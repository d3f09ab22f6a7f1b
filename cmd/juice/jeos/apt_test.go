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
	want := debPackage{
		Name:     "linux-image-6.1.0-56-amd64",
		Version:  "6.1.192-2",
		Arch:     "amd64",
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
	withEpoch := debPackage{Name: "foo", Version: "2:1.0-1", Filename: "pool/main/f/foo/foo_1.0-1_arm64.deb"}
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

// showUser is `apt-cache show --no-all-versions e2fsprogs:amd64
// libc6:amd64 libext2fs2:amd64` on Debian 12 (shortened).
const showUser = `Package: e2fsprogs
Version: 1.47.0-2+b2
Architecture: amd64
Pre-Depends: libblkid1 (>= 2.36), libc6 (>= 2.34), libcom-err2 (>= 1.43.9), libext2fs2 (= 1.47.0-2+b2), libss2 (>= 1.38), libuuid1 (>= 2.16)
Description: ext2/ext3/ext4 file system utilities
 The ext2, ext3 and ext4 file systems are successors of the original ext
 ("extended") file system.
Filename: pool/main/e/e2fsprogs/e2fsprogs_1.47.0-2+b2_amd64.deb
Size: 571920
SHA256: fedd424691c08ef0739729026be298e7be8236337bf8e031b3c7ec66794e6fc2

Package: libc6
Version: 2.36-9+deb12u14
Architecture: amd64
Filename: pool/updates/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb
Size: 2759320
SHA256: 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF

Package: libext2fs2
Version: 1.47.0-2+b2
Architecture: amd64
Filename: pool/main/e/e2fsprogs/libext2fs2_1.47.0-2+b2_amd64.deb
Size: 204900
`

func TestParseShowAll(t *testing.T) {
	recs, err := parseShowAll([]byte(showUser), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	if r := recs[1]; r.Name != "libc6" || r.Version != "2.36-9+deb12u14" || r.Arch != "amd64" || r.Size != 2759320 ||
		r.SHA256 != "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" || r.debName() != "libc6_2.36-9+deb12u14_amd64.deb" {
		t.Errorf("libc6 record %+v", r)
	}
	if r := recs[2]; r.Name != "libext2fs2" || r.Size != 204900 || r.SHA256 != "" {
		t.Errorf("last record (no blank line after it) %+v", r)
	}
	if recs, err := parseShowAll([]byte(showUser), 1); err != nil || len(recs) != 1 || recs[0].Name != "e2fsprogs" {
		t.Errorf("first record only: %+v, %v", recs, err)
	}
	// A bad record anywhere is an error.
	if _, err := parseShowAll([]byte(showUser+"\nPackage: x\nVersion: 1\n"), 0); err == nil || !strings.Contains(err.Error(), "x: no Version or Filename") {
		t.Errorf("bad last record: %v", err)
	}

	// pickPackages orders them as asked, and wants each, for amd64.
	got, err := pickPackages([]string{"libext2fs2", "e2fsprogs", "libc6"}, recs)
	if err != nil || got[0].Name != "libext2fs2" || got[1].Name != "e2fsprogs" || got[2].Name != "libc6" {
		t.Errorf("pickPackages = %+v, %v", got, err)
	}
	if _, err := pickPackages([]string{"e2fsprogs", "libuuid1"}, recs); err == nil || !strings.Contains(err.Error(), "libuuid1") {
		t.Errorf("missing package: %v", err)
	}
	arm := append([]debPackage(nil), recs...)
	arm[0].Arch = "arm64"
	if _, err := pickPackages([]string{"e2fsprogs"}, arm); err == nil || !strings.Contains(err.Error(), "arm64") {
		t.Errorf("foreign package: %v", err)
	}
	all := append([]debPackage(nil), recs...)
	all[0].Arch = "all"
	if _, err := pickPackages([]string{"e2fsprogs"}, all); err != nil {
		t.Errorf("Architecture: all: %v", err)
	}
	if _, err := pickPackages([]string{"libc6"}, append(recs, recs[1])); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a package twice: %v", err)
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
