package jeos

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// TestTinyArchive: the tiny initramfs holds /init (the binary given,
// executable), /dev/console as character device 5:1, the mount points
// jeosinit uses, and an order file that lists no module.
func TestTinyArchive(t *testing.T) {
	init := []byte("\x7fELF pretend jeosinit")
	arc, err := tinyArchive(init, "6.1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(arc)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpio.Record{}
	for _, r := range recs {
		got[r.Name] = r
	}
	if r, ok := got["init"]; !ok || r.Mode != cpio.S_IFREG|0o755 {
		t.Errorf("init: %+v", r.Info)
	} else if b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize))); !bytes.Equal(b, init) {
		t.Errorf("init's contents %q", b)
	}
	if r := got["dev/console"]; r.Mode != cpio.S_IFCHR|0o600 || r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console: %+v", r.Info)
	}
	for _, d := range []string{"dev", "proc", "sys", guestModuleDir} {
		if r := got[d]; r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("%s is not a directory: %+v", d, r.Info)
		}
	}
	r, ok := got[guestModuleDir+"/"+guestOrderFile]
	if !ok {
		t.Fatal("no module order file")
	}
	b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) > 0 && line[0] != '#' {
			t.Errorf("the order file lists %q", line)
		}
	}
}

// TestTinyInputs: the tiny image's input hash follows jeosinit's source
// but not its tests.
func TestTinyInputs(t *testing.T) {
	src := t.TempDir()
	for name, text := range map[string]string{
		goModFile: "module juice\n", goSumFile: "",
		filepath.Join(jeosinitDir, "main.go"):      "package main\n",
		filepath.Join(jeosinitDir, "main_test.go"): "package main\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h1, err := tinyInputs(src)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, jeosinitDir, "main_test.go"), []byte("package main // changed\n"), 0o644)
	if h2, _ := tinyInputs(src); h2 != h1 {
		t.Error("a test file changed the hash")
	}
	os.WriteFile(filepath.Join(src, jeosinitDir, "main.go"), []byte("package main // changed\n"), 0o644)
	if h3, _ := tinyInputs(src); h3 == h1 {
		t.Error("a source change left the hash alone")
	}
}
