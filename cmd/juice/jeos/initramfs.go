package jeos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// UrootCommands are the u-root commands (cmds/core/NAME) in the JeOS
// initramfs. Each must also be a `tool` in juice's go.mod, so that the
// module graph has their dependencies.
var UrootCommands = []string{
	"init", "gosh", "ls", "cat", "dmesg", "ip", "insmod", "mount",
	"uname", "echo", "sync", "ps",
	// For network checks (jeos.exec): two guests on one switch.
	"ping", "netcat", "md5sum", "dd", "sleep",
	// For file systems (with Debian's mkfs.ext4 and e2fsck).
	"umount", "mkdir",
}

// Fixed parts of the initramfs recipe.
const (
	urootPkg        = "github.com/u-root/u-root"
	urootCmdPrefix  = urootPkg + "/cmds/core/"
	jeosinitPkg     = "./cmd/jeosinit" // relative to juice's module root
	jeosinitDir     = "cmd/jeosinit"
	guestModuleDir  = "lib/modules/juice" // jeosinit reads it (cmd/jeosinit)
	guestOrderFile  = "order"
	defaultShell    = "gosh"
	uinitCommand    = "jeosinit"
	guestGOAMD64    = "v1" // the guest may be any x86-64
	goModFile       = "go.mod"
	goSumFile       = "go.sum"
	juiceModuleLine = "module juice"
)

// shellScripts are the files put in the initramfs's /bin besides u-root's
// own: poweroff and reboot run jeosinit's multi-call mode (u-root's
// busybox passes the command name it resolved, so the verb is an
// argument).
var shellScripts = map[string]string{
	"poweroff": "#!/bbin/jeosinit poweroff\n",
	"reboot":   "#!/bbin/jeosinit reboot\n",
}

// urootArgs are the arguments for u-root that build initrd out of the
// staged files under stage (modules and scripts) and user (the userland:
// userDirs).
func urootArgs(out, stage, user string) []string {
	args := []string{
		"-o", out,
		"-uinitcmd=" + uinitCommand,
		"-defaultsh=" + defaultShell,
		"-skip-ldd",
		// gosh without its full-screen line editor (bubbline): a plain
		// "$ " prompt over the kernel's canonical tty mode. The editor's
		// raw-mode redraws and terminal queries hang the shell now and
		// then on a serial console (seen under load: the line echoed,
		// Enter taken, the command never run); the tty's own line
		// discipline (echo, backspace, ^U, ^C) is what a serial console
		// user needs.
		"-tags", "goshsmall",
		"-files", filepath.Join(stage, guestModuleDir) + ":" + guestModuleDir,
	}
	for _, name := range sortedScriptNames() {
		args = append(args, "-files", filepath.Join(stage, "bin", name)+":bin/"+name)
	}
	for _, d := range userDirs {
		args = append(args, "-files", filepath.Join(user, d)+":"+d)
	}
	for _, c := range UrootCommands {
		args = append(args, urootCmdPrefix+c)
	}
	return append(args, jeosinitPkg)
}

// sortedScriptNames lists shellScripts in order.
func sortedScriptNames() []string {
	names := make([]string, 0, len(shellScripts))
	for n := range shellScripts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// findSource returns juice's module root: dir if given, else the first
// directory from the working directory up whose go.mod is module juice.
func findSource(dir string) (string, error) {
	if dir != "" {
		if !isJuiceModule(dir) {
			return "", fmt.Errorf("%s is not juice's source tree (no go.mod with %q)", dir, juiceModuleLine)
		}
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isJuiceModule(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("juice's source tree not found from %s up (the initramfs is built from it: run juice jeos inside it)", wd)
		}
	}
}

// isJuiceModule reports whether dir/go.mod declares module juice.
func isJuiceModule(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, goModFile))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == juiceModuleLine {
			return true
		}
	}
	return false
}

// stageInitramfs lays out the extra initramfs files under stage: the
// modules (copied from tree, in order) with their order file, and the
// /bin scripts. It returns the module file names in load order.
func stageInitramfs(stage string, tree fs.FS, order []string, release string) ([]string, error) {
	if err := os.RemoveAll(stage); err != nil {
		return nil, err
	}
	modDir := filepath.Join(stage, guestModuleDir)
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return nil, err
	}
	var list bytes.Buffer
	fmt.Fprintf(&list, "# Kernel modules for jeosinit, in load order (Linux %s; written by juice jeos).\n", release)
	var names []string
	for _, p := range order {
		b, err := fs.ReadFile(tree, p)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(p)
		if err := writeFile(filepath.Join(modDir, name), b, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintln(&list, name)
		names = append(names, name)
	}
	if err := writeFile(filepath.Join(modDir, guestOrderFile), list.Bytes(), 0o644); err != nil {
		return nil, err
	}
	for name, text := range shellScripts {
		if err := writeFile(filepath.Join(stage, "bin", name), []byte(text), 0o755); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// initrdInputs hashes everything the initramfs is made from: the recipe,
// juice's go.mod and go.sum (the u-root and command versions), jeosinit's
// source (less its tests) and the two stages.
func initrdInputs(src, stage, user string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %d\nGOAMD64 %s\nargs %q\n", recipeVersion, guestGOAMD64, urootArgs("OUT", "STAGE", "USER"))
	for _, f := range []string{goModFile, goSumFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %s %d\n", f, len(b))
		h.Write(b)
	}
	isTest := func(rel string) bool { return strings.HasSuffix(rel, "_test.go") }
	for _, root := range []struct {
		name, base, dir string
		skip            func(string) bool
	}{{"source", src, jeosinitDir, isTest}, {"stage", stage, ".", nil}, {"userland", user, ".", nil}} {
		fmt.Fprintf(h, "tree %s\n", root.name)
		if err := hashTree(h, root.base, root.dir, root.skip); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// treeHash is the hex SHA-256 of hashTree over dir.
func treeHash(dir string) (string, error) {
	h := sha256.New()
	if err := hashTree(h, dir, ".", nil); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree writes to h, in lexical order, every entry under base/dir but
// those skip (given the slash-separated path relative to base) leaves
// out: a directory's path; a regular file's path, size, whether it is
// executable, and contents; a symbolic link's path and target. Anything
// else is an error.
func hashTree(h io.Writer, base, dir string, skip func(rel string) bool) error {
	return filepath.WalkDir(filepath.Join(base, dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			return nil
		}
		switch t := d.Type(); {
		case t.IsDir():
			fmt.Fprintf(h, "dir %s\n", rel)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %s %s\n", rel, target)
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %s %d %t\n", rel, len(b), info.Mode()&0o111 != 0)
			h.Write(b)
		default:
			return fmt.Errorf("%s: not a file, directory or symbolic link (%v)", p, t)
		}
		return nil
	})
}

// buildInitrd runs u-root in src (juice's module root) to write out.
func buildInitrd(src, stage, user, out string, log io.Writer) error {
	tool, err := urootTool(src)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	os.Remove(tmp)
	args := urootArgs(tmp, stage, user)
	cmd := exec.Command(tool, args...)
	cmd.Dir = src
	cmd.Env = append(envWithout(os.Environ(), "GOOS", "GOARCH", "CGO_ENABLED", "GOAMD64"),
		"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOAMD64="+guestGOAMD64)
	output, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("u-root failed: %w%s", err, indentTail(output, 30))
	}
	if _, err := os.Stat(tmp); err != nil {
		return fmt.Errorf("u-root wrote no initramfs: %w%s", err, indentTail(output, 30))
	}
	fmt.Fprintf(log, "jeos: u-root: %s\n", strings.TrimSpace(lastLine(output)))
	return os.Rename(tmp, out)
}

// urootTool returns the path of the u-root builder, compiled for this
// host by `go tool` from the version juice's go.mod pins.
func urootTool(src string) (string, error) {
	cmd := exec.Command("go", "tool", "-n", "u-root")
	cmd.Dir = src
	cmd.Env = envWithout(os.Environ(), "GOOS", "GOARCH")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("building the u-root tool (go.mod needs `tool %s`; offline, `go mod download` first): %w",
			urootPkg, commandError("go", cmd.Args[1:], err, stderr))
	}
	tool := strings.TrimSpace(string(out))
	if tool == "" || strings.ContainsAny(tool, " \n") {
		return "", fmt.Errorf("go tool -n u-root printed %q", tool)
	}
	return tool, nil
}

// envWithout returns env less the named variables.
func envWithout(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return lines[len(lines)-1]
}
