// Command mkguest builds juice's test guests (package juice/tests/guests)
// into multiboot v1 kernels:
//
//	go run ./tests/guests/mkguest/cmd/mkguest -o build/guests [NAME...]
//
// writes build/guests/NAME.elf for the named guests, or for all of them.
// With -convert IN it converts one ELF32 linked elsewhere instead:
//
//	go run ./tests/guests/mkguest/cmd/mkguest -convert raw.elf -o guest.elf
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"juice/tests/guests/mkguest"
)

func main() {
	out := flag.String("o", "build/guests", "output directory (or file, with -convert)")
	convert := flag.String("convert", "", "convert this linked ELF32 instead of building guests")
	minAddr := flag.Uint("min", mkguest.TextAddr, "with -convert: drop loadable bytes below this address")
	list := flag.Bool("list", false, "print the guests' names and exit")
	goCmd := flag.String("go", "", "go command (default: go from $PATH)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkguest [-o DIR] [NAME...] | mkguest -convert IN -o OUT | mkguest -list\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *convert, uint32(*minAddr), *list, *goCmd, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run does mkguest's work.
func run(out, convert string, minAddr uint32, list bool, goCmd string, names []string) error {
	switch {
	case list:
		for _, n := range mkguest.Names {
			fmt.Println(n)
		}
		return nil
	case convert != "":
		if len(names) > 0 {
			return fmt.Errorf("mkguest: -convert takes no guest names")
		}
		in, err := os.ReadFile(convert)
		if err != nil {
			return err
		}
		img, err := mkguest.Convert(in, minAddr)
		if err != nil {
			return err
		}
		return os.WriteFile(out, img, 0o644)
	}
	paths, err := mkguest.Builder{Go: goCmd}.BuildAll(context.Background(), out, names...)
	for _, p := range paths {
		fmt.Println(p)
	}
	return err
}
