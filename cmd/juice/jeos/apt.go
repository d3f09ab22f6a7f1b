package jeos

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultKernelPackage is the Debian metapackage whose kernel the JeOS
// guest uses unless told otherwise.
const DefaultKernelPackage = "linux-image-amd64"

// debPackage is one Debian package version as apt knows it: the kernel
// package, or one the initramfs's programs come from.
type debPackage struct {
	Name     string // linux-image-6.1.0-56-amd64
	Version  string // 6.1.192-2
	Arch     string // amd64 (or all)
	Filename string // pool/.../linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb
	SHA256   string // of the .deb
	Size     int64  // of the .deb
}

// guestArch is the Debian architecture of the guest's packages.
const guestArch = "amd64"

// debName is the .deb's file name as `apt-get download` writes it:
// NAME_VERSION_ARCH.deb with an epoch's ':' written "%3a" (the archive's
// own file name leaves the epoch out).
func (p debPackage) debName() string {
	base := strings.TrimSuffix(path.Base(p.Filename), ".deb")
	arch := base[strings.LastIndex(base, "_")+1:]
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + arch + ".deb"
}

// run runs a command in dir and returns its standard output; the error
// names the command and carries the tail of its standard error.
func run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), commandError(name, args, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// commandError describes a failed command: missing, or failed with this
// output.
func commandError(name string, args []string, err error, output []byte) error {
	if errors.Is(err, exec.ErrNotFound) {
		hint := "juice jeos fetches the kernel with Debian's apt-get, apt-cache and dpkg-deb"
		if name == "go" {
			hint = "juice jeos builds the initramfs with the Go toolchain"
		}
		return fmt.Errorf("%s not found (%s): %w", name, hint, err)
	}
	return fmt.Errorf("%s %s: %w%s", name, strings.Join(args, " "), err, indentTail(output, 20))
}

// indentTail is the last n lines of out, each indented, after a newline;
// empty for no output.
func indentTail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// parseDepends returns the kernel image package that `apt-cache depends
// NAME` says NAME depends on (the first "Depends: linux-image-..."), or
// "" when it depends on none: NAME is then a kernel package itself.
func parseDepends(out []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "|")
		dep, ok := strings.CutPrefix(line, "Depends: ")
		if !ok {
			continue
		}
		dep = strings.TrimSpace(dep)
		if strings.HasPrefix(dep, "linux-image-") {
			return dep
		}
	}
	return ""
}

// parseShow reads the first record of `apt-cache show --no-all-versions
// NAME`.
func parseShow(out []byte) (debPackage, error) {
	recs, err := parseShowAll(out, 1)
	if err != nil {
		return debPackage{}, err
	}
	return recs[0], nil
}

// parseShowAll reads the records of `apt-cache show` (one for each
// package named, with --no-all-versions), at most max of them (0: all).
// A record without Version or Filename, or whose Filename is not a .deb,
// is an error; so is output without any record.
func parseShowAll(out []byte, max int) ([]debPackage, error) {
	var recs []debPackage
	var p debPackage
	end := func() error {
		switch {
		case p.Name == "":
			return nil
		case p.Version == "" || p.Filename == "":
			return fmt.Errorf("apt-cache show %s: no Version or Filename", p.Name)
		case !strings.HasSuffix(p.Filename, ".deb"):
			return fmt.Errorf("apt-cache show %s: Filename %q is not a .deb", p.Name, p.Filename)
		}
		recs = append(recs, p)
		p = debPackage{}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() && (max == 0 || len(recs) < max) {
		line := sc.Text()
		if line == "" {
			if err := end(); err != nil {
				return nil, err
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			p.Name = v
		case "Version":
			p.Version = v
		case "Architecture":
			p.Arch = v
		case "Filename":
			p.Filename = v
		case "SHA256":
			p.SHA256 = strings.ToLower(v)
		case "Size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("apt-cache show: bad Size %q", v)
			}
			p.Size = n
		}
	}
	if max == 0 || len(recs) < max {
		if err := end(); err != nil {
			return nil, err
		}
	}
	if len(recs) == 0 {
		return nil, errors.New("apt-cache show: no package record")
	}
	return recs, nil
}

// resolvePackage finds the kernel package to use for request (a
// metapackage such as linux-image-amd64, or a kernel package).
func resolvePackage(request string) (debPackage, error) {
	name := request
	out, err := run("", nil, "apt-cache", "depends", request)
	if err != nil {
		return debPackage{}, fmt.Errorf("kernel package %s not found (run apt-get update first?): %w", request, err)
	}
	if dep := parseDepends(out); dep != "" {
		name = dep
	}
	out, err = run("", nil, "apt-cache", "show", "--no-all-versions", name)
	if err != nil {
		return debPackage{}, fmt.Errorf("kernel package %s (for %s) not found: %w", name, request, err)
	}
	p, err := parseShow(out)
	if err != nil {
		return debPackage{}, err
	}
	if p.Name != name {
		return debPackage{}, fmt.Errorf("apt-cache show %s described %s", name, p.Name)
	}
	return p, nil
}

// fileSHA256 returns the hex SHA-256 of a file.
func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// resolveUserPackages finds the guest-architecture versions apt would
// install of the named packages, with one apt-cache call.
func resolveUserPackages(names []string) ([]debPackage, error) {
	args := []string{"show", "--no-all-versions"}
	for _, n := range names {
		args = append(args, n+":"+guestArch)
	}
	out, err := run("", nil, "apt-cache", args...)
	if err != nil {
		return nil, fmt.Errorf("packages %s not found (run apt-get update first?): %w", strings.Join(names, ", "), err)
	}
	recs, err := parseShowAll(out, 0)
	if err != nil {
		return nil, err
	}
	return pickPackages(names, recs)
}

// pickPackages returns, in the order of names, the record of each named
// package; each must be there once, for the guest's architecture (or
// "all").
func pickPackages(names []string, recs []debPackage) ([]debPackage, error) {
	byName := map[string]debPackage{}
	for _, r := range recs {
		if _, dup := byName[r.Name]; dup {
			return nil, fmt.Errorf("apt-cache show: package %s twice", r.Name)
		}
		byName[r.Name] = r
	}
	var out []debPackage
	for _, n := range names {
		r, ok := byName[n]
		switch {
		case !ok:
			return nil, fmt.Errorf("apt-cache show: no record for package %s", n)
		case r.Arch != guestArch && r.Arch != "all":
			return nil, fmt.Errorf("apt-cache show: package %s is for %q, not %s", n, r.Arch, guestArch)
		}
		out = append(out, r)
	}
	return out, nil
}

// fetchPackage makes sure dir holds p's .deb, checked against apt's
// SHA-256, downloading it with `apt-get download` when missing or wrong,
// and removes the other .debs there that match stale (a file name
// pattern: older versions of the package). It returns the .deb's path.
func fetchPackage(dir string, p debPackage, stale string, log io.Writer) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	deb := filepath.Join(dir, p.debName())
	if ok, err := debMatches(deb, p); err != nil {
		return "", err
	} else if !ok {
		fmt.Fprintf(log, "jeos: downloading %s %s (%d kB)\n", p.Name, p.Version, p.Size>>10)
		os.Remove(deb)
		name := p.Name
		if p.Arch != "" && p.Arch != "all" {
			name += ":" + p.Arch
		}
		if _, err := run(dir, nil, "apt-get", "download", name+"="+p.Version); err != nil {
			return "", fmt.Errorf("downloading %s: %w", p.Name, err)
		}
		if ok, err := debMatches(deb, p); err != nil {
			return "", err
		} else if !ok {
			return "", fmt.Errorf("apt-get download %s=%s: %s is missing or does not match apt's SHA256 %s", p.Name, p.Version, deb, p.SHA256)
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, stale))
	for _, o := range old {
		if o != deb {
			os.Remove(o)
		}
	}
	return deb, nil
}

// debMatches reports whether deb exists with p's size and SHA-256 (when
// apt gave them).
func debMatches(deb string, p debPackage) (bool, error) {
	st, err := os.Stat(deb)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if p.Size > 0 && st.Size() != p.Size {
		return false, nil
	}
	if p.SHA256 == "" {
		return true, nil
	}
	sum, err := fileSHA256(deb)
	if err != nil {
		return false, err
	}
	return sum == p.SHA256, nil
}
