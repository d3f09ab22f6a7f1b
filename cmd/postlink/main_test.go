package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"juice/boot/image"
	"juice/boot/image/testkernel"
)

func testInput(t *testing.T) (dir, in string) {
	t.Helper()
	raw, err := testkernel.ELF()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	in = filepath.Join(dir, "kernel.raw.elf")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, in
}

func TestRun(t *testing.T) {
	dir, in := testInput(t)
	for _, mb1 := range []bool{false, true} {
		out := filepath.Join(dir, "juice.elf")
		opts := image.Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: mb1}
		var stdout bytes.Buffer
		if err := run(in, out, opts, &stdout); err != nil {
			t.Fatal(err)
		}
		img, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := image.Verify(img, opts)
		if err != nil {
			t.Fatal(err)
		}
		line := stdout.String()
		if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "postlink: "+out+": ") || !strings.Contains(line, rep.String()) {
			t.Errorf("summary %q, want one line with %q", line, rep.String())
		}
		if st, _ := os.Stat(out); st.Mode().Perm() != 0o755 {
			t.Errorf("output mode %v, want 0755", st.Mode())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("%d files in the output directory, want input and output only", len(ents))
	}
}

func TestRunErrors(t *testing.T) {
	dir, in := testInput(t)
	out := filepath.Join(dir, "juice.elf")

	// Wrong entry symbol: the library's error, exit path, no output.
	err := run(in, out, image.Options{EntrySymbol: "juice/boot.entry32"}, new(bytes.Buffer))
	if err == nil || !strings.HasPrefix(err.Error(), "postlink: entry symbol juice/boot.entry32") || !strings.Contains(err.Error(), in) {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("output written despite the error")
	}

	// Missing input.
	if err := run(filepath.Join(dir, "nope"), out, image.Options{}, new(bytes.Buffer)); err == nil || !strings.HasPrefix(err.Error(), "postlink: ") {
		t.Errorf("missing input: %v", err)
	}

	// Unwritable output directory.
	err = run(in, filepath.Join(dir, "missing", "juice.elf"), image.Options{EntrySymbol: testkernel.EntrySymbol}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "writing") {
		t.Errorf("unwritable output: %v", err)
	}
}
