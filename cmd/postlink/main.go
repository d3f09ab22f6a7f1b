// Command postlink makes the Go linker's kernel ELF bootable through PVH
// and multiboot2 (see package juice/boot/image):
//
//	go run ./cmd/postlink -in build/kernel.raw.elf -out build/juice.elf [-entry juice/boot.entry32] [-multiboot1-test]
//
// It refuses any layout it does not understand, writes the output
// atomically, re-reads and re-verifies it, and prints a one-line summary.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"juice/boot/image"
)

func main() {
	in := flag.String("in", "", "input ELF from the Go linker")
	out := flag.String("out", "", "output bootable ELF")
	entry := flag.String("entry", image.DefaultEntrySymbol, "entry symbol that e_entry must equal (the -E linker flag)")
	mb1 := flag.Bool("multiboot1-test", false, "also write a multiboot v1 header (a.out kludge) for the unsupported-loader test")
	flag.Parse()
	if *in == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: postlink -in kernel.raw.elf -out juice.elf [-entry sym] [-multiboot1-test]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	if err := run(*in, *out, image.Options{EntrySymbol: *entry, Multiboot1Test: *mb1}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run patches in into out and prints the summary line to w.
func run(in, out string, opts image.Options, w io.Writer) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("postlink: %w", err)
	}
	img, _, err := image.Patch(raw, opts)
	if err != nil {
		return fmt.Errorf("%w (input %s)", err, in)
	}
	if err := image.WriteFileAtomic(out, img, 0o755); err != nil {
		return fmt.Errorf("postlink: writing %s: %w", out, err)
	}
	// Re-open the written file and verify what is on disk.
	back, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("postlink: re-reading %s: %w", out, err)
	}
	rep, err := image.Verify(back, opts)
	if err != nil {
		return fmt.Errorf("%w (re-reading %s)", err, out)
	}
	fmt.Fprintf(w, "postlink: %s: %s\n", out, rep)
	return nil
}
