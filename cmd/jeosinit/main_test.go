package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestChooseAction(t *testing.T) {
	cases := []struct {
		argv []string
		want action
		rest []string
	}{
		{[]string{"/bbin/jeosinit"}, actInit, nil},
		{[]string{"/bin/uinit"}, actInit, nil},
		{[]string{"/init", "-v"}, actInit, nil},
		{nil, actInit, nil},
		{[]string{"poweroff"}, actPoweroff, []string{}},
		{[]string{"/sbin/reboot", "-f"}, actReboot, []string{"-f"}},
		// u-root's busybox rewrites argv[0]; the shebang scripts pass
		// the verb first, then the script's path.
		{[]string{"/bbin/jeosinit", "poweroff", "/bin/poweroff"}, actPoweroff, []string{"/bin/poweroff"}},
		{[]string{"/bbin/jeosinit", "reboot", "/bin/reboot", "now"}, actReboot, []string{"/bin/reboot", "now"}},
		// Only argv[0] and argv[1] count.
		{[]string{"/bbin/jeosinit", "-v", "poweroff"}, actInit, nil},
		// What initGuest starts for hvc0.
		{[]string{"/bbin/jeosinit", "getty", "/dev/hvc0"}, actGetty, []string{"/dev/hvc0"}},
		{[]string{"/init", "getty", "/dev/hvc0"}, actGetty, []string{"/dev/hvc0"}},
		{[]string{"getty", "/dev/hvc0"}, actGetty, []string{"/dev/hvc0"}},
	}
	for _, c := range cases {
		if got, rest := chooseAction(c.argv); got != c.want || !reflect.DeepEqual(rest, c.rest) {
			t.Errorf("chooseAction(%q) = %v, %q; want %v, %q", c.argv, got, rest, c.want, c.rest)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	got := parseCmdline(` console=ttyS0  quiet foo="a b=c" "x y"=z jeos.poweroff -- jeos.verbose`)
	want := []param{
		{key: "console", value: "ttyS0", hasValue: true},
		{key: "quiet"},
		{key: "foo", value: "a b=c", hasValue: true},
		{key: "x y", value: "z", hasValue: true},
		{key: "jeos.poweroff"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseCmdline = %+v\nwant %+v", got, want)
	}
	if got := parseCmdline(" \t\n"); len(got) != 0 {
		t.Errorf("blank command line gave %+v", got)
	}
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		cmdline string
		want    options
	}{
		{"console=ttyS0", options{}},
		{"console=ttyS0 jeos.poweroff\n", options{poweroff: true}},
		{"jeos.poweroff=1 jeos.verbose=yes", options{poweroff: true, verbose: true}},
		{"jeos.poweroff jeos.poweroff=0", options{}},
		{"jeos.poweroff=off", options{}},
		{"xjeos.poweroff jeos.poweroffx", options{}},
		{`foo="jeos.poweroff"`, options{}},
		{"-- jeos.poweroff", options{}},
		{"jeos.verbose=ON", options{verbose: true}},
		{"jeos.ip=10.0.2.1/24", options{ip: "10.0.2.1/24"}},
		{"jeos.ip=10.0.2.1/24 jeos.ip", options{}},
		{`console=ttyS0 jeos.exec="sleep 2; ping -c 3 10.0.2.1 | md5sum > /tmp/x" jeos.poweroff`,
			options{exec: "sleep 2; ping -c 3 10.0.2.1 | md5sum > /tmp/x", poweroff: true}},
		{`jeos.exec=echo jeos.exec="a=b c"`, options{exec: "a=b c"}},
		{`foo="jeos.exec=x"`, options{}},
		{"console=hvc0", options{hvcConsole: true}},
		{"console=ttyS0,115200n8 console=hvc0,9600 quiet", options{hvcConsole: true}},
		{"console=hvc0 console=ttyS0", options{hvcConsole: true}},
		{"console=hvc1 console=ttyS0 xconsole=hvc0", options{}},
	}
	for _, c := range cases {
		if got := parseOptions(c.cmdline); got != c.want {
			t.Errorf("parseOptions(%q) = %+v, want %+v", c.cmdline, got, c.want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.2.1/24": "10.0.2.1/24", "192.168.1.7/32": "192.168.1.7/32", "fd00::2/64": "fd00::2/64",
	} {
		if got, err := parseAddr(in); err != nil || got != want {
			t.Errorf("parseAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.2.1", "10.0.2.1/33", "10.0.2/24", "eth0", "10.0.2.1/24 x", "fe80::1%eth0/64", "-v/24"} {
		if got, err := parseAddr(bad); err == nil {
			t.Errorf("parseAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseOrder(t *testing.T) {
	got := parseOrder("# header\nvirtio_ring.ko\n\n  virtio.ko  \r\n#virtio_blk.ko\nvirtio-rng.ko")
	want := []string{"virtio_ring.ko", "virtio.ko", "virtio-rng.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseOrder = %q, want %q", got, want)
	}
	if got := parseOrder(""); len(got) != 0 {
		t.Errorf("parseOrder(\"\") = %q", got)
	}
}

func TestParseUptime(t *testing.T) {
	for in, want := range map[string]string{"3.10 1.20\n": "3.10", "0.00 0.00": "0.00", "12345.67": "12345.67"} {
		if got, err := parseUptime(in); err != nil || got != want {
			t.Errorf("parseUptime(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "\n", "abc 1", "-1 2", "NaN 1"} {
		if got, err := parseUptime(bad); err == nil {
			t.Errorf("parseUptime(%q) = %q, want an error", bad, got)
		}
	}
}

func TestMarker(t *testing.T) {
	if got, want := marker("2.33", 12, 14), "JEOS-READY uptime=2.33 modules=12/14"; got != want {
		t.Errorf("marker = %q, want %q", got, want)
	}
}

// fakeSystem is a system that records what jeosinit does.
type fakeSystem struct {
	files    map[string]string
	modErrs  map[string]error // per module path; missing = loads fine
	calls    []string
	cmdErrs  map[string]error // per command line (argv joined by spaces); missing = exits 0
	cmdOut   string           // what each command prints on its stdout
	spawnErr error            // what spawn returns
	stdout   bytes.Buffer
	stderr   bytes.Buffer
}

// sys returns the system, as pid pid.
func (f *fakeSystem) sys(pid int) *system {
	rec := func(s string) { f.calls = append(f.calls, s) }
	return &system{
		pid: pid,
		readFile: func(p string) ([]byte, error) {
			if s, ok := f.files[p]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		mountBasic: func() error { rec("mount"); return nil },
		releaseTTY: func() error { rec("releasetty"); return nil },
		loadModule: func(p string) error {
			rec("load " + p)
			return f.modErrs[p]
		},
		sync: func() { rec("sync") },
		reboot: func(a action) error {
			// The marker must be out before the machine goes.
			rec("reboot " + a.String() + " after " + strings.TrimSpace(f.stdout.String()))
			return errors.New("fake reboot returned")
		},
		execShell: func(p string) error { rec("exec " + p); return errors.New("no shell") },
		idle:      func() { rec("idle") },
		command: func(argv []string, stdout, stderr io.Writer) error {
			line := strings.Join(argv, " ")
			// What was printed before it runs tells the order.
			rec("run " + line + " after " + lastLine(f.stdout.String()))
			io.WriteString(stdout, f.cmdOut)
			return f.cmdErrs[line]
		},
		now:   func() time.Time { return time.Unix(0, 0) },
		sleep: func(d time.Duration) { rec("sleep " + d.String()) },
		self:  "/bbin/jeosinit",
		spawn: func(argv []string) error {
			rec("spawn " + strings.Join(argv, " ") + " after " + lastLine(f.stdout.String()))
			return f.spawnErr
		},
		ttyShell: func(tty, shell string) error {
			rec("shell " + shell + " on " + tty)
			return nil
		},
		stdout: &f.stdout,
		stderr: &f.stderr,
	}
}

func TestInitGuestLoadsModulesAndPrintsMarker(t *testing.T) {
	f := &fakeSystem{
		files: map[string]string{
			"/proc/cmdline":            "console=ttyS0 jeos.verbose\n",
			"/proc/uptime":             "2.51 1.90\n",
			"/lib/modules/juice/order": "# comment\na.ko\nb.ko\nmissing.ko\nc.ko\n",
		},
		modErrs: map[string]error{
			"/lib/modules/juice/b.ko":       errAlreadyLoaded,
			"/lib/modules/juice/missing.ko": fs.ErrNotExist,
		},
	}
	if rc := initGuest(f.sys(4)); rc != 0 {
		t.Fatalf("initGuest = %d", rc)
	}
	want := []string{
		"load /lib/modules/juice/a.ko",
		"load /lib/modules/juice/b.ko",
		"load /lib/modules/juice/missing.ko",
		"load /lib/modules/juice/c.ko",
		"releasetty",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
	if got := f.stdout.String(); got != "JEOS-READY uptime=2.51 modules=3/4 devices=none\n" {
		t.Errorf("stdout = %q", got)
	}
	if e := f.stderr.String(); !strings.Contains(e, "missing.ko") || !strings.Contains(e, "a.ko loaded") {
		t.Errorf("stderr = %q: want the failed module and verbose lines", e)
	}
}

func TestInitGuestPoweroff(t *testing.T) {
	f := &fakeSystem{files: map[string]string{
		"/proc/cmdline":            "console=ttyS0 jeos.poweroff",
		"/proc/uptime":             "1.00 0.50",
		"/lib/modules/juice/order": "a.ko\n",
	}}
	initGuest(f.sys(7))
	want := []string{
		"load /lib/modules/juice/a.ko",
		"sync",
		"reboot poweroff after JEOS-READY uptime=1.00 modules=1/1 devices=none",
		"releasetty", // the fake reboot returned
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
}

func TestInitGuestWithoutModuleList(t *testing.T) {
	f := &fakeSystem{files: map[string]string{"/proc/cmdline": ""}}
	if rc := initGuest(f.sys(9)); rc != 0 {
		t.Fatalf("initGuest = %d", rc)
	}
	if got := f.stdout.String(); got != "JEOS-READY uptime=unknown modules=0/0 devices=none\n" {
		t.Errorf("stdout = %q", got)
	}
	if e := f.stderr.String(); !strings.Contains(e, "no module list") {
		t.Errorf("stderr = %q, want a note about the missing list", e)
	}
}

func TestInitGuestAsPid1(t *testing.T) {
	f := &fakeSystem{files: map[string]string{
		"/proc/cmdline": "jeos.poweroff",
		"/proc/uptime":  "0.30 0.10",
	}}
	initGuest(f.sys(1))
	want := []string{
		"mount",
		"sync",
		"reboot poweroff after JEOS-READY uptime=0.30 modules=0/0 devices=none",
		"exec /bin/sh",
		"idle",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
}

func TestRunPoweroffAndReboot(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/bbin/jeosinit", "poweroff", "/bin/poweroff"}, "reboot poweroff after "},
		{[]string{"reboot"}, "reboot reboot after "},
	} {
		f := &fakeSystem{}
		if rc := run(f.sys(30), c.argv); rc != 1 {
			t.Errorf("run(%q) = %d, want 1 (reboot returned)", c.argv, rc)
		}
		if want := []string{"sync", c.want}; !reflect.DeepEqual(f.calls, want) {
			t.Errorf("run(%q) calls = %q, want %q", c.argv, f.calls, want)
		}
		if f.stdout.Len() != 0 {
			t.Errorf("run(%q) printed %q", c.argv, f.stdout.String())
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{"console=ttyS0 jeos.poweroff", `a="b c" -- d`, `"`, "=", "a=\"=\"="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range parseCmdline(s) {
			if p.key == "" && !p.hasValue {
				t.Errorf("empty parameter from %q", s)
			}
			if strings.ContainsAny(p.key, " \t\n") && !strings.Contains(s, `"`) {
				t.Errorf("key %q has white space without quotes in %q", p.key, s)
			}
		}
		parseOptions(s)
	})
}

func TestDevices(t *testing.T) {
	f := &fakeSystem{files: map[string]string{"/sys/class/misc/hw_random/rng_current": "virtio_rng.0\n"}}
	sys := f.sys(5)
	tree := map[string][]string{
		"/sys/bus/virtio/devices/virtio*":        {"/sys/bus/virtio/devices/virtio0", "/sys/bus/virtio/devices/virtio1"},
		"/sys/bus/virtio/devices/virtio*/driver": {"/sys/bus/virtio/devices/virtio0/driver", "/sys/bus/virtio/devices/virtio1/driver"},
		"/sys/class/block/vd*":                   {"/sys/class/block/vda", "/sys/class/block/vda1", "/sys/class/block/vdb"},
		"/sys/class/net/eth*":                    {"/sys/class/net/eth0"},
	}
	sys.glob = func(p string) ([]string, error) { return tree[p], nil }
	if got, want := devices(sys), "vda,vdb,eth0,hwrng:virtio_rng.0"; got != want {
		t.Errorf("devices = %q, want %q", got, want)
	}
	sys.glob = func(string) ([]string, error) { return nil, nil }
	f.files = nil
	if got := devices(sys); got != "none" {
		t.Errorf("no devices: %q", got)
	}
}

// lastLine is the last line of s, "" for none.
func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// exitErr is a command that exited with a status.
type exitErr int

func (e exitErr) Error() string { return "exit status " + string(rune('0'+int(e))) }
func (e exitErr) ExitCode() int { return int(e) }

func TestInitGuestNetworkAndExec(t *testing.T) {
	const cmd = "sleep 2; netcat -l 5000 | md5sum"
	f := &fakeSystem{
		files: map[string]string{
			"/proc/cmdline":            `console=ttyS0 jeos.ip=10.0.2.1/24 jeos.exec="` + cmd + `" jeos.poweroff` + "\n",
			"/proc/uptime":             "3.00 1.00",
			"/lib/modules/juice/order": "virtio_net.ko\n",
		},
		cmdErrs: map[string]error{"/bin/sh -c " + cmd: exitErr(3)},
		cmdOut:  "out\n",
	}
	initGuest(f.sys(6))
	const ready = "JEOS-READY uptime=3.00 modules=1/1 devices=none"
	want := []string{
		"load /lib/modules/juice/virtio_net.ko",
		"run /bbin/ip addr add 10.0.2.1/24 dev eth0 after ",
		"run /bbin/ip link set dev eth0 up after ",
		"run /bbin/ip link set dev lo up after ",
		"run /bin/sh -c " + cmd + " after " + ready,
		"sync",
		"reboot poweroff after " + ready + "\nout\nJEOS-EXEC status=3",
		"releasetty",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
	// ip's output goes to stderr, the command's to the console.
	if got, want := f.stdout.String(), ready+"\nout\nJEOS-EXEC status=3\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got := f.stderr.String(); got != "out\nout\nout\njeosinit: power off: fake reboot returned\n" {
		t.Errorf("stderr = %q, want ip's output only", got)
	}
}

func TestInitGuestNetworkErrors(t *testing.T) {
	f := &fakeSystem{
		files:   map[string]string{"/proc/cmdline": "jeos.ip=10.0.2.300/24 jeos.exec=/nonexistent"},
		cmdErrs: map[string]error{"/bin/sh -c /nonexistent": errors.New("fork/exec /bin/sh: no such file")},
	}
	initGuest(f.sys(6))
	want := []string{"run /bin/sh -c /nonexistent after JEOS-READY uptime=unknown modules=0/0 devices=none", "releasetty"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
	if e := f.stderr.String(); !strings.Contains(e, `jeos.ip="10.0.2.300/24"`) || !strings.Contains(e, "jeos.exec: fork/exec") {
		t.Errorf("stderr = %q: want the bad address and the failed command", e)
	}
	if !strings.HasSuffix(f.stdout.String(), "\nJEOS-EXEC status=-1\n") {
		t.Errorf("stdout = %q", f.stdout.String())
	}

	// ip failing is reported and the rest still tried.
	f = &fakeSystem{
		files:   map[string]string{"/proc/cmdline": "jeos.ip=10.0.2.2/24"},
		cmdErrs: map[string]error{"/bbin/ip addr add 10.0.2.2/24 dev eth0": exitErr(1)},
	}
	initGuest(f.sys(6))
	if len(f.calls) != 4 || !strings.Contains(f.stderr.String(), "/bbin/ip addr add 10.0.2.2/24 dev eth0: exit status 1") {
		t.Errorf("calls = %q, stderr = %q", f.calls, f.stderr.String())
	}
}

func TestRunCommand(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this host")
	}
	var out, errOut bytes.Buffer
	err = runCommand([]string{sh, "-c", "echo hello; echo oops >&2; exit 3"}, &out, &errOut)
	if exitStatus(err) != 3 || out.String() != "hello\n" || errOut.String() != "oops\n" {
		t.Errorf("runCommand: %v (status %d), stdout %q, stderr %q", err, exitStatus(err), out.String(), errOut.String())
	}
	if err := runCommand([]string{sh, "-c", "true"}, &out, &out); err != nil || exitStatus(err) != 0 {
		t.Errorf("true: %v", err)
	}
	if err := runCommand([]string{"/nonexistent/cmd"}, &out, &out); err == nil || exitStatus(err) != -1 {
		t.Errorf("missing program: %v, status %d", err, exitStatus(err))
	}
	if err := runCommand(nil, &out, &out); err == nil {
		t.Error("empty argv ran")
	}
}

// withHvc0 is the system with a virtio console: /dev/hvc0 is there.
func withHvc0(sys *system) *system {
	sys.glob = func(p string) ([]string, error) {
		if p == "/dev/hvc0" {
			return []string{p}, nil
		}
		return nil, nil
	}
	return sys
}

func TestInitGuestStartsShellOnHvc0(t *testing.T) {
	const ready = "JEOS-READY uptime=1.00 modules=1/1 devices=none"
	files := func(cmdline string) map[string]string {
		return map[string]string{
			"/proc/cmdline":            cmdline,
			"/proc/uptime":             "1.00 0.50",
			"/lib/modules/juice/order": "virtio_console.ko\n",
		}
	}
	// With hvc0: the getty starts right after the marker, before
	// jeos.exec runs.
	f := &fakeSystem{files: files(`console=ttyS0 jeos.exec="echo hi"`)}
	if rc := initGuest(withHvc0(f.sys(5))); rc != 0 {
		t.Fatalf("initGuest = %d", rc)
	}
	want := []string{
		"load /lib/modules/juice/virtio_console.ko",
		"spawn /bbin/jeosinit getty /dev/hvc0 after " + ready,
		"run /bin/sh -c echo hi after " + ready,
		"releasetty",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %q\nwant %q", f.calls, want)
	}
	// As pid 1 too, before the console shell.
	f = &fakeSystem{files: files("console=ttyS0")}
	initGuest(withHvc0(f.sys(1)))
	want = []string{"mount", "load /lib/modules/juice/virtio_console.ko", "spawn /bbin/jeosinit getty /dev/hvc0 after " + ready, "exec /bin/sh", "idle"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("pid 1: calls = %q\nwant %q", f.calls, want)
	}

	// Not without hvc0, not when hvc0 is the kernel's console (u-root's
	// shell is there), not when the guest powers off anyway.
	for _, c := range []struct {
		cmdline string
		hvc0    bool
	}{
		{"console=ttyS0", false},
		{"console=ttyS0 console=hvc0", true},
		{"console=ttyS0 jeos.poweroff", true},
	} {
		f := &fakeSystem{files: files(c.cmdline)}
		sys := f.sys(5)
		if c.hvc0 {
			sys = withHvc0(sys)
		}
		initGuest(sys)
		for _, call := range f.calls {
			if strings.HasPrefix(call, "spawn") {
				t.Errorf("%q (hvc0 %v): %s", c.cmdline, c.hvc0, call)
			}
		}
		if !strings.HasPrefix(f.stdout.String(), ready+"\n") {
			t.Errorf("%q: stdout %q", c.cmdline, f.stdout.String())
		}
	}

	// A getty that cannot start is reported; the guest carries on.
	f = &fakeSystem{files: files("console=ttyS0"), spawnErr: errors.New("fork failed")}
	initGuest(withHvc0(f.sys(5)))
	if e := f.stderr.String(); !strings.Contains(e, "no shell on /dev/hvc0: fork failed") {
		t.Errorf("stderr = %q", e)
	}
	if n := len(f.calls); n != 3 || f.calls[n-1] != "releasetty" {
		t.Errorf("calls = %q", f.calls)
	}
}

func TestGetty(t *testing.T) {
	// Shells that end at once (or cannot start) are restarted after
	// longer and longer pauses; one that ran a while resets the pause.
	f := &fakeSystem{}
	sys := f.sys(40)
	clock := time.Unix(0, 0)
	sys.now = func() time.Time { return clock }
	runs := []struct {
		d   time.Duration
		err error
	}{
		{time.Second, exitErr(0)},
		{0, errors.New("open /dev/hvc0: no such device")},
		{0, exitErr(1)},
		{time.Hour, nil},
		{time.Second, nil},
		{gettyQuick, exitErr(2)},
		{0, nil},
		{0, nil},
		{0, nil},
		{0, nil},
		{0, nil},
		{0, nil},
	}
	n := 0
	var got []string
	sys.ttyShell = func(tty, shell string) error {
		r := runs[n]
		n++
		clock = clock.Add(r.d)
		got = append(got, shell+" on "+tty)
		return r.err
	}
	sys.sleep = func(d time.Duration) { got = append(got, "sleep "+d.String()) }
	if rc := getty(sys, "/dev/hvc0", len(runs)); rc != 0 {
		t.Errorf("getty = %d", rc)
	}
	var want []string
	for i, pause := range []string{"2s", "4s", "8s", "1s", "2s", "1s", "2s", "4s", "8s", "16s", "32s", "1m0s", ""} {
		if i == len(runs) {
			break
		}
		want = append(want, "/bin/sh on /dev/hvc0")
		if i < len(runs)-1 {
			want = append(want, "sleep "+pause)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("getty did %q\nwant %q", got, want)
	}
	// Only a shell that could not run (or died of a signal) is an error
	// worth a line; exit statuses are the user's business.
	if e := f.stderr.String(); e != "jeosinit: shell on /dev/hvc0: open /dev/hvc0: no such device\n" {
		t.Errorf("stderr = %q", e)
	}
}

func TestRunGetty(t *testing.T) {
	f := &fakeSystem{}
	sys := f.sys(40)
	shells := 0
	sys.ttyShell = func(tty, shell string) error {
		if shells++; shells > 2 {
			panic("getty did not stop") // run's getty never returns: stop it here
		}
		return nil
	}
	func() {
		defer func() { recover() }()
		run(sys, []string{"/bbin/jeosinit", "getty", "/dev/hvc0"})
	}()
	if shells != 3 {
		t.Errorf("run getty started %d shells", shells)
	}
	for _, bad := range [][]string{{"/bbin/jeosinit", "getty"}, {"/bbin/jeosinit", "getty", "hvc0"}, {"/bbin/jeosinit", "getty", "/dev/hvc0", "x"}} {
		f := &fakeSystem{}
		if rc := run(f.sys(40), bad); rc != 2 || !strings.Contains(f.stderr.String(), "usage: jeosinit getty") || len(f.calls) != 0 {
			t.Errorf("run(%q) = %d, stderr %q, calls %q", bad, rc, f.stderr.String(), f.calls)
		}
	}
}
