package main

import (
	"bytes"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestChooseAction(t *testing.T) {
	cases := []struct {
		argv []string
		want action
	}{
		{[]string{"/bbin/jeosinit"}, actInit},
		{[]string{"/bin/uinit"}, actInit},
		{[]string{"/init", "-v"}, actInit},
		{nil, actInit},
		{[]string{"poweroff"}, actPoweroff},
		{[]string{"/sbin/reboot", "-f"}, actReboot},
		// u-root's busybox rewrites argv[0]; the shebang scripts pass
		// the verb first, then the script's path.
		{[]string{"/bbin/jeosinit", "poweroff", "/bin/poweroff"}, actPoweroff},
		{[]string{"/bbin/jeosinit", "reboot", "/bin/reboot", "now"}, actReboot},
		// Only argv[0] and argv[1] count.
		{[]string{"/bbin/jeosinit", "-v", "poweroff"}, actInit},
	}
	for _, c := range cases {
		if got := chooseAction(c.argv); got != c.want {
			t.Errorf("chooseAction(%q) = %v, want %v", c.argv, got, c.want)
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
	}
	for _, c := range cases {
		if got := parseOptions(c.cmdline); got != c.want {
			t.Errorf("parseOptions(%q) = %+v, want %+v", c.cmdline, got, c.want)
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
	files   map[string]string
	modErrs map[string]error // per module path; missing = loads fine
	calls   []string
	stdout  bytes.Buffer
	stderr  bytes.Buffer
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
		now:       func() time.Time { return time.Unix(0, 0) },
		stdout:    &f.stdout,
		stderr:    &f.stderr,
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
