package jeos

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// extractDeb writes the files of a .deb's data archive for which want is
// true into dest, keeping their paths (as `dpkg-deb -x` would, but only
// those files: the whole kernel package unpacks to about 400 MB). It
// streams `dpkg-deb --fsys-tarfile` and returns the paths written,
// slash-separated and relative to dest.
func extractDeb(deb, dest string, want func(name string) bool) ([]string, error) {
	return extractDebLinks(deb, dest, want, nil)
}

// extractDebLinks is extractDeb that also records, in links (when not
// nil), every symbolic link of the archive: its cleaned path -> its
// target as the archive has it. No link is made on disk.
func extractDebLinks(deb, dest string, want func(name string) bool, links map[string]string) ([]string, error) {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, commandError("dpkg-deb", cmd.Args[1:], err, nil)
	}
	names, terr := extractTar(out, dest, want, links)
	if terr != nil {
		// Let dpkg-deb finish (or fail on the closed pipe) before waiting.
		io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return nil, commandError("dpkg-deb", cmd.Args[1:], err, stderr.Bytes())
	}
	if terr != nil {
		return nil, fmt.Errorf("unpacking %s: %w", filepath.Base(deb), terr)
	}
	return names, nil
}

// extractTar writes the regular files of a tar stream for which want is
// true (given the cleaned, slash-separated relative path) under dest, and
// records its symbolic links in links when that is not nil. It reads the
// stream to its end.
func extractTar(r io.Reader, dest string, want func(name string) bool, links map[string]string) ([]string, error) {
	tr := tar.NewReader(r)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		if h.Typeflag == tar.TypeSymlink && links != nil {
			if name, ok := cleanArchivePath(h.Name); ok && h.Linkname != "" {
				links[name] = h.Linkname
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name, ok := cleanArchivePath(h.Name)
		if !ok || !want(name) {
			continue
		}
		if err := writeFileFrom(filepath.Join(dest, filepath.FromSlash(name)), tr, 0o644); err != nil {
			return names, err
		}
		names = append(names, name)
	}
}

// cleanArchivePath turns an archive member name ("./boot/x") into a clean
// relative path ("boot/x"); ok is false for names that would leave the
// destination (absolute or with "..").
func cleanArchivePath(name string) (string, bool) {
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	n := strings.TrimPrefix(path.Clean("/"+name), "/")
	return n, n != ""
}

// writeFileFrom writes r to name (creating its directory) through a
// temporary file, so that name is complete or absent.
func writeFileFrom(name string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// writeFile writes data to name atomically.
func writeFile(name string, data []byte, mode os.FileMode) error {
	return writeFileFrom(name, bytes.NewReader(data), mode)
}

// errNoKernel is returned when a package has no /boot/vmlinuz-*.
var errNoKernel = errors.New("no boot/vmlinuz-* in the package")
