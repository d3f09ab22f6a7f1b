package jeos

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCleanArchivePath(t *testing.T) {
	for in, want := range map[string]string{
		"./boot/vmlinuz-6.1": "boot/vmlinuz-6.1",
		"boot/x":             "boot/x",
		"/abs/x":             "abs/x",
		"./a//b/./c":         "a/b/c",
		"./":                 "",
		"../etc/passwd":      "",
		"./a/../../x":        "",
		"a/..":               "",
	} {
		got, ok := cleanArchivePath(in)
		if got != want || ok != (want != "") {
			t.Errorf("cleanArchivePath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestExtractTar(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, typ byte, body string) {
		h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(body))}
		if typ == tar.TypeSymlink {
			h.Linkname, h.Size = body, 0
		}
		if typ == tar.TypeDir {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(body))
		}
	}
	add("./", tar.TypeDir, "")
	add("./boot/", tar.TypeDir, "")
	add("./boot/vmlinuz-6.1.0-9-amd64", tar.TypeReg, "kernel")
	add("./boot/System.map-6.1.0-9-amd64", tar.TypeReg, "map")
	add("./lib/modules/6.1.0-9-amd64/kernel/drivers/virtio/virtio.ko", tar.TypeReg, "ko")
	add("./lib/modules/6.1.0-9-amd64/kernel/drivers/net/e1000.ko", tar.TypeReg, "other")
	add("./boot/link", tar.TypeSymlink, "/etc/passwd")
	add("../boot/escape", tar.TypeReg, "evil")
	tw.Close()

	dest := t.TempDir()
	var asked []string
	names, err := extractTar(&buf, dest, func(n string) bool {
		asked = append(asked, n)
		return strings.HasPrefix(n, "boot/") || strings.HasSuffix(n, "/virtio.ko")
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"boot/vmlinuz-6.1.0-9-amd64", "boot/System.map-6.1.0-9-amd64", "lib/modules/6.1.0-9-amd64/kernel/drivers/virtio/virtio.ko"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("extracted %q, want %q", names, want)
	}
	for _, n := range asked {
		if strings.Contains(n, "..") || strings.Contains(n, "link") {
			t.Errorf("want() was asked about %q", n)
		}
	}
	b, err := os.ReadFile(filepath.Join(dest, "lib/modules/6.1.0-9-amd64/kernel/drivers/virtio/virtio.ko"))
	if err != nil || string(b) != "ko" {
		t.Errorf("virtio.ko = %q, %v", b, err)
	}
	for _, absent := range []string{"boot/link", "lib/modules/6.1.0-9-amd64/kernel/drivers/net/e1000.ko"} {
		if _, err := os.Lstat(filepath.Join(dest, absent)); err == nil {
			t.Errorf("%s was written", absent)
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dest), "boot", "escape")); err == nil {
		t.Error("a ../ member escaped the destination")
	}

	// A broken stream is an error.
	if _, err := extractTar(strings.NewReader(strings.Repeat("x", 1024)), t.TempDir(), func(string) bool { return true }, nil); err == nil {
		t.Error("extractTar accepted garbage")
	}
}
