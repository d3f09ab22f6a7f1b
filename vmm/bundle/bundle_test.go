package bundle

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// newc writes a newc archive independently of u-root: name → data, in the
// given order, with mode for each (0 means a regular file), then a
// trailer unless noTrailer.
type entry struct {
	name string
	data []byte
	mode uint32
}

func newc(entries []entry, noTrailer bool) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	put := func(ino int, e entry) {
		mode := e.mode
		if mode == 0 {
			mode = 0o100644
		}
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(e.data), 0, 0, 0, 0, len(e.name)+1, 0)
		b.WriteString(e.name)
		b.WriteByte(0)
		pad()
		b.Write(e.data)
		pad()
	}
	for i, e := range entries {
		put(i+1, e)
	}
	if !noTrailer {
		put(0, entry{name: "TRAILER!!!", mode: 0})
	}
	return b.Bytes()
}

const goodManifest = `{"vms": [
  {"name": "web", "kernel": "guest.elf", "cmdline": "console=ttyS0",
   "modules": [{"file": "initrd.img", "cmdline": "initrd"}], "memory": "64M", "vcpus": 2},
  {"name": "db-1", "kernel": "boot/db.elf", "memory": 2097152}
]}`

func goodFiles() []entry {
	return []entry{
		{name: "manifest.json", data: []byte(goodManifest)},
		{name: "guest.elf", data: []byte("kernel-1")},
		{name: "initrd.img", data: []byte("initrd bytes")},
		{name: "boot", mode: 0o40755},
		{name: "boot/db.elf", data: []byte("kernel-2")},
	}
}

func TestParseHandWritten(t *testing.T) {
	b, errs := Parse(newc(goodFiles(), false))
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(b.VMs) != 2 {
		t.Fatalf("VMs = %+v", b.VMs)
	}
	web, db := b.VMs[0], b.VMs[1]
	if web.Name != "web" || web.Kernel != "guest.elf" || string(web.KernelData) != "kernel-1" ||
		web.Cmdline != "console=ttyS0" || web.MemBytes != 64<<20 || web.VCPUs != 2 {
		t.Errorf("web = %+v", web)
	}
	if len(web.Modules) != 1 || web.Modules[0].File != "initrd.img" || web.Modules[0].Cmdline != "initrd" ||
		string(web.Modules[0].Data) != "initrd bytes" {
		t.Errorf("web modules = %+v", web.Modules)
	}
	if db.Name != "db-1" || string(db.KernelData) != "kernel-2" || db.MemBytes != 2<<20 || db.VCPUs != 1 || len(db.Modules) != 0 {
		t.Errorf("db = %+v", db)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	m := Manifest{VMs: []ManifestVM{
		{Name: "a", Kernel: "k", Cmdline: "x y", Memory: "1G", VCPUs: 4,
			Modules: []ManifestModule{{File: "m1", Cmdline: "one"}, {File: "dir/m2"}}},
		{Name: "b", Kernel: "k", Memory: "16M"},
	}}
	files := map[string][]byte{"k": bytes.Repeat([]byte{7}, 1001), "m1": {1, 2, 3}, "dir/m2": {}, "extra": []byte("unused")}
	arc, err := Build(m, files)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Build(m, files)
	if !bytes.Equal(arc, again) {
		t.Error("Build is not reproducible")
	}
	b, errs := Parse(arc)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if len(b.VMs) != 2 {
		t.Fatalf("VMs = %+v", b.VMs)
	}
	a := b.VMs[0]
	if a.Name != "a" || !bytes.Equal(a.KernelData, files["k"]) || a.MemBytes != 1<<30 || a.VCPUs != 4 || a.Cmdline != "x y" {
		t.Errorf("a = %+v", a)
	}
	if len(a.Modules) != 2 || !bytes.Equal(a.Modules[0].Data, files["m1"]) || a.Modules[0].Cmdline != "one" ||
		a.Modules[1].File != "dir/m2" || len(a.Modules[1].Data) != 0 {
		t.Errorf("a modules = %+v", a.Modules)
	}
	if b.VMs[1].MemBytes != 16<<20 || b.VMs[1].VCPUs != 1 {
		t.Errorf("b = %+v", b.VMs[1])
	}
	// Build's archive is plain newc: the manifest is the first member.
	if !bytes.HasPrefix(arc, []byte("070701")) || !bytes.Contains(arc[:200], []byte("manifest.json\x00")) {
		t.Error("archive does not start with a newc manifest.json")
	}
}

func TestPerVMErrors(t *testing.T) {
	vm := func(body string) string { return body }
	cases := []struct {
		name string
		vm   string
		want string
	}{
		{"missing kernel", vm(`{"name":"web","kernel":"nope.elf","memory":"16M"}`), `vm "web": kernel "nope.elf" is not in the bundle`},
		{"missing module", vm(`{"name":"web","kernel":"k","memory":"16M","modules":[{"file":"m"}]}`), `vm "web": module 0 "m" is not in the bundle`},
		{"directory kernel", vm(`{"name":"web","kernel":"d","memory":"16M"}`), "not a regular file"},
		{"manifest as kernel", vm(`{"name":"web","kernel":"manifest.json","memory":"16M"}`), "is the manifest"},
		{"dotdot", vm(`{"name":"web","kernel":"../k","memory":"16M"}`), `".." element`},
		{"dotdot inside", vm(`{"name":"web","kernel":"d/../k","memory":"16M"}`), `".." element`},
		{"absolute", vm(`{"name":"web","kernel":"/k","memory":"16M"}`), "absolute"},
		{"unclean", vm(`{"name":"web","kernel":"./k","memory":"16M"}`), "clean"},
		{"double slash", vm(`{"name":"web","kernel":"d//k","memory":"16M"}`), "clean"},
		{"empty kernel", vm(`{"name":"web","memory":"16M"}`), "empty file name"},
		{"uppercase name", vm(`{"name":"Web","kernel":"k","memory":"16M"}`), `vm #1 (name "Web"): name must be`},
		{"long name", vm(`{"name":"` + strings.Repeat("a", 33) + `","kernel":"k","memory":"16M"}`), "name must be"},
		{"dash name", vm(`{"name":"-x","kernel":"k","memory":"16M"}`), "name must be"},
		{"empty name", vm(`{"kernel":"k","memory":"16M"}`), "name must be"},
		{"duplicate name", vm(`{"name":"ok","kernel":"k","memory":"16M"}`), `vm "ok": name used by an earlier VM`},
		{"no memory", vm(`{"name":"web","kernel":"k"}`), "memory is missing"},
		{"small memory", vm(`{"name":"web","kernel":"k","memory":"512K"}`), "less than 1 MiB"},
		{"big memory", vm(`{"name":"web","kernel":"k","memory":"65G"}`), "more than 64 GiB"},
		{"huge memory", vm(`{"name":"web","kernel":"k","memory":"99999999999999999999999"}`), "out of range"},
		{"unaligned memory", vm(`{"name":"web","kernel":"k","memory":"1048577"}`), "multiple of 4 KiB"},
		{"memory unit", vm(`{"name":"web","kernel":"k","memory":"16T"}`), "unknown unit"},
		{"memory junk", vm(`{"name":"web","kernel":"k","memory":"M"}`), "not a size"},
		{"vcpus high", vm(`{"name":"web","kernel":"k","memory":"16M","vcpus":65}`), "vcpus 65"},
		{"vcpus negative", vm(`{"name":"web","kernel":"k","memory":"16M","vcpus":-1}`), "vcpus -1"},
		{"cmdline NUL", vm(`{"name":"web","kernel":"k","memory":"16M","cmdline":"a\u0000b"}`), "cmdline has a NUL"},
		{"module cmdline NUL", vm(`{"name":"web","kernel":"k","memory":"16M","modules":[{"file":"k","cmdline":"\u0000"}]}`), "module 0 cmdline has a NUL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			man := `{"vms":[{"name":"ok","kernel":"k","memory":"16M"},` + c.vm + `]}`
			arc := newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}, {name: "d", mode: 0o40755}}, false)
			b, errs := Parse(arc)
			if b == nil || len(b.VMs) != 1 || b.VMs[0].Name != "ok" {
				t.Fatalf("good VM not returned: %+v", b)
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
				t.Fatalf("errors = %v, want one containing %q", errs, c.want)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	for s, want := range map[string]uint64{
		"1M": 1 << 20, "16m": 16 << 20, "16MiB": 16 << 20, "16MB": 16 << 20, "1G": 1 << 30, "64G": 64 << 30,
		"4096K": 4 << 20, "1048576": 1 << 20, "68719476736": 64 << 30,
	} {
		if got, err := Memory(s).Bytes(); err != nil || got != want {
			t.Errorf("Memory(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "4095", "1048575", "68719480832", "1.5G", "-1M", " 1M", "1M ", "16MiBB"} {
		if got, err := Memory(s).Bytes(); err == nil {
			t.Errorf("Memory(%q) = %d, want an error", s, got)
		}
	}
}

func TestBrokenArchive(t *testing.T) {
	good := newc(goodFiles(), false)
	withManifest := func(m string) []byte {
		return newc([]entry{{name: "manifest.json", data: []byte(m)}, {name: "k", data: []byte("K")}}, false)
	}
	hugeName := append([]byte(nil), good...)
	copy(hugeName[94:], "7FFFFFFF")
	hugeFile := append([]byte(nil), good...)
	copy(hugeFile[54:], "7FFFFFFF")
	cases := []struct {
		name string
		arc  []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"garbage", bytes.Repeat([]byte("x"), 200), "magic"},
		{"crc format", append([]byte("070702"), good[6:]...), "magic"},
		{"bad hex", append([]byte("070701zz"), good[8:]...), "hex"},
		{"truncated", good[:len(good)/2], "archive"},
		{"no trailer", newc(goodFiles(), true), "no TRAILER"},
		{"huge name", hugeName, "name runs past"},
		{"file past end", hugeFile, "run past the end"},
		{"duplicate member", newc([]entry{{name: "manifest.json", data: []byte(goodManifest)}, {name: "a"}, {name: "a"}}, false), "appears twice"},
		{"duplicate after normalize", newc([]entry{{name: "manifest.json", data: []byte(goodManifest)}, {name: "a"}, {name: "/a"}}, false), "appears twice"},
		{"no manifest", newc([]entry{{name: "k", data: []byte("K")}}, false), "no manifest.json"},
		{"manifest is a directory", newc([]entry{{name: "manifest.json", mode: 0o40755}}, false), "no manifest.json"},
		{"manifest too big", withManifest(`{"vms":[]}` + strings.Repeat(" ", MaxManifestSize)), "more than"},
		{"unknown field", withManifest(`{"vms":[{"name":"a","kernel":"k","memory":"16M","colour":"red"}]}`), `unknown field "colour"`},
		{"unknown top field", withManifest(`{"vms":[],"extra":1}`), `unknown field "extra"`},
		{"trailing data", withManifest(`{"vms":[{"name":"a","kernel":"k","memory":"16M"}]} {}`), "after the JSON"},
		{"trailing brace", withManifest(`{"vms":[{"name":"a","kernel":"k","memory":"16M"}]}}`), "after the JSON"},
		{"bad json", withManifest(`{"vms":[`), "manifest.json"},
		{"wrong type", withManifest(`{"vms":[{"name":"a","kernel":"k","memory":"16M","vcpus":"2"}]}`), "manifest.json"},
		{"memory bool", withManifest(`{"vms":[{"name":"a","kernel":"k","memory":true}]}`), "memory must be"},
		{"no vms", withManifest(`{"vms":[]}`), "no VMs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, errs := Parse(c.arc)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
				t.Fatalf("errors = %v, want one containing %q", errs, c.want)
			}
			if b != nil && len(b.VMs) != 0 {
				t.Errorf("VMs returned from a broken bundle: %+v", b.VMs)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	ok := Manifest{VMs: []ManifestVM{{Name: "a", Kernel: "k", Memory: "16M"}}}
	cases := []struct {
		name  string
		m     Manifest
		files map[string][]byte
		want  string
	}{
		{"bad file name", ok, map[string][]byte{"k": {1}, "../x": {2}}, ".."},
		{"manifest file", ok, map[string][]byte{"k": {1}, "manifest.json": {2}}, "may not be named"},
		{"missing kernel", ok, map[string][]byte{}, `vm "a": kernel "k" is not in the bundle`},
		{"bad vm", Manifest{VMs: []ManifestVM{{Name: "a", Kernel: "k", Memory: "1K"}}}, map[string][]byte{"k": {1}}, "less than 1 MiB"},
		{"no vms", Manifest{}, map[string][]byte{"k": {1}}, "no VMs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(c.m, c.files)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestDevices(t *testing.T) {
	man := `{"vms":[{"name":"web","kernel":"k","memory":"16M","devices":{
		"disks":[{"file":"disk.img"},{"size":"64M","readonly":true,"serial":"data"}],
		"nets":[{"network":"lan"},{"network":"lan2","mac":"52:54:00:12:34:56"}],
		"rng":true,"console":true}},
		{"name":"db","kernel":"k","memory":"16M","devices":{"transport":"mmio","nets":[{"network":"lan"}]}}]}`
	img := make([]byte, 4096)
	img[0] = 7
	b, errs := Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}, {name: "disk.img", data: img}}, false))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	d := b.VMs[0].Devices
	if d == nil || d.Transport != "pci" || !d.RNG || !d.Console || len(d.Disks) != 2 || len(d.Nets) != 2 {
		t.Fatalf("devices %+v", d)
	}
	if d.Disks[0].Size != 4096 || d.Disks[0].Image[0] != 7 || d.Disks[0].Serial != "juice-web-0" || d.Disks[0].ReadOnly {
		t.Errorf("disk 0 %+v", d.Disks[0])
	}
	if d.Disks[1].Size != 64<<20 || d.Disks[1].Image != nil || !d.Disks[1].ReadOnly || d.Disks[1].Serial != "data" {
		t.Errorf("disk 1 %+v", d.Disks[1])
	}
	if d.Nets[1].MAC != [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56} || d.Nets[0].MAC != DerivedMAC("web", 0) {
		t.Errorf("nets %+v", d.Nets)
	}
	if m := DerivedMAC("web", 0); m[0] != 0x52 || m == DerivedMAC("db", 0) || m == DerivedMAC("web", 1) || m != DerivedMAC("web", 0) {
		t.Errorf("derived MACs not distinct and stable: %x", m)
	}
	if db := b.VMs[1].Devices; db.Transport != "mmio" || db.Nets[0].MAC == d.Nets[0].MAC {
		t.Errorf("db devices %+v", db)
	}
	if b.VMs[1].Devices == nil || b.VMs[0].Devices == nil {
		t.Fatal("devices lost")
	}

	for _, c := range []struct{ dev, want string }{
		{`{"transport":"usb"}`, `transport "usb"`},
		{`{"disks":[{}]}`, "disk 0: needs a file or a size"},
		{`{"disks":[{"file":"k","size":"1M"}]}`, "not both"},
		{`{"disks":[{"file":"nope"}]}`, `disk 0 "nope" is not in the bundle`},
		{`{"disks":[{"file":"k"}]}`, "not a non-zero multiple of 512"},
		{`{"disks":[{"size":"1000"}]}`, "not a non-zero multiple of 512"},
		{`{"disks":[{"size":"2000G"}]}`, "too large"},
		{`{"disks":[{"size":"1M","serial":"` + strings.Repeat("s", 21) + `"}]}`, "longer than 20"},
		{`{"disks":[` + strings.Repeat(`{"size":"1M"},`, 8) + `{"size":"1M"}]}`, "9 disks"},
		{`{"nets":[{"network":"LAN"}]}`, "network name"},
		{`{"nets":[{"network":"a","mac":"01:00:00:00:00:01"}]}`, "multicast"},
		{`{"nets":[{"network":"a","mac":"00:00:00:00:00:00"}]}`, "all zeros"},
		{`{"nets":[{"network":"a","mac":"52:54:00:12:34"}]}`, "six hex bytes"},
		{`{"nets":[{"network":"a","mac":"52:54:00:12:34:zz"}]}`, "six hex bytes"},
		{`{"nets":[{"network":"a","mac":"52:54:00:12:34:56"},{"network":"b","mac":"52:54:00:12:34:56"}]}`, "repeats"},
		{`{"bogus":1}`, "unknown field"},
	} {
		man := `{"vms":[{"name":"ok","kernel":"k","memory":"16M"},{"name":"bad","kernel":"k","memory":"16M","devices":` + c.dev + `}]}`
		b, errs := Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
		if c.want == "unknown field" {
			if b != nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
				t.Errorf("%s: %v", c.dev, errs)
			}
			continue
		}
		if b == nil || len(b.VMs) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), `vm "bad": `+c.want) && !strings.Contains(errs[0].Error(), c.want) {
			t.Errorf("%s: errors %v, want %q", c.dev, errs, c.want)
		}
	}
}

func TestHostDisks(t *testing.T) {
	man := `{"vms":[{"name":"web","kernel":"k","memory":"16M","devices":{"disks":[
		{"host":"vda"},
		{"host":"vdb","partition":2,"readonly":true,"serial":"root"},
		{"host":"vdz","offset":"1M","size":"4M"},
		{"host":"vdc","offset":0},
		{"host":"vdc","size":4096}]}}]}`
	b, errs := Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []DiskSpec{
		{Host: "vda", Serial: "juice-web-0"},
		{Host: "vdb", Partition: 2, ReadOnly: true, Serial: "root"},
		{Host: "vdz", Offset: 1 << 20, Size: 4 << 20, Serial: "juice-web-2"},
		{Host: "vdc", Serial: "juice-web-3"},
		{Host: "vdc", Size: 4096, Serial: "juice-web-4"},
	}
	got := b.VMs[0].Devices.Disks
	if len(got) != len(want) {
		t.Fatalf("disks %+v", got)
	}
	for i := range want {
		if g := got[i]; g.Host != want[i].Host || g.Partition != want[i].Partition || g.Offset != want[i].Offset ||
			g.Size != want[i].Size || g.ReadOnly != want[i].ReadOnly || g.Serial != want[i].Serial || g.Image != nil {
			t.Errorf("disk %d: %+v, want %+v", i, g, want[i])
		}
	}

	for _, c := range []struct{ disk, want string }{
		{`{"host":"vda","file":"k"}`, "disk 0: give a file or a host disk, not both"},
		{`{"host":"sda"}`, `disk 0: host disk "sda" is not a name juice gives host disks (vda to vdz)`},
		{`{"host":"vdaa"}`, "not a name juice gives"},
		{`{"host":"VDA"}`, "not a name juice gives"},
		{`{"partition":1}`, "name the disk with host"},
		{`{"offset":"1M","size":"1M"}`, "name the disk with host"},
		{`{"host":"vda","partition":0}`, "partition 0 on host disk vda: partitions are numbered from 1"},
		{`{"host":"vda","partition":-3}`, "partition -3"},
		{`{"host":"vda","partition":5000}`, "partition 5000"},
		{`{"host":"vda","partition":1,"offset":"1M"}`, "give a partition or an offset and size on host disk vda, not both"},
		{`{"host":"vda","partition":1,"size":"1M"}`, "not both"},
		{`{"host":"vda","offset":"1000"}`, `offset "1000" is not a multiple of 512 bytes`},
		{`{"host":"vda","offset":"1X"}`, "offset: "},
		{`{"host":"vda","size":"1000"}`, `size "1000" is not a non-zero multiple of 512`},
		{`{"host":"vda","size":0}`, "not a non-zero multiple of 512"},
		{`{"host":"vda","size":"5000G"}`, "too large"},
		{`{"host":"vda","serial":"` + strings.Repeat("s", 21) + `"}`, "longer than 20"},
	} {
		man := `{"vms":[{"name":"ok","kernel":"k","memory":"16M","devices":{"disks":[{"host":"vda"}]}},` +
			`{"name":"bad","kernel":"k","memory":"16M","devices":{"disks":[` + c.disk + `]}}]}`
		b, errs := Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
		if b == nil || len(b.VMs) != 1 || b.VMs[0].Name != "ok" || len(errs) != 1 || !strings.Contains(errs[0].Error(), `vm "bad": `) ||
			!strings.Contains(errs[0].Error(), c.want) {
			t.Errorf("%s: errors %v, want %q", c.disk, errs, c.want)
		}
	}

	// The host side builds the same manifest from Go values.
	m := Manifest{VMs: []ManifestVM{{Name: "a", Kernel: "k", Memory: "16M", Devices: &ManifestDevices{Disks: []ManifestDisk{
		{Host: "vda", Partition: new(1)}, {Host: "vdb", Offset: "512", Size: "1M", ReadOnly: true}}}}}}
	arc, err := Build(m, map[string][]byte{"k": []byte("K")})
	if err != nil {
		t.Fatal(err)
	}
	if b, errs := Parse(arc); len(errs) != 0 || b.VMs[0].Devices.Disks[0].Partition != 1 || b.VMs[0].Devices.Disks[1].Offset != 512 {
		t.Fatalf("round trip: %+v, %v", b, errs)
	}
	m.VMs[0].Devices.Disks[0].Offset = "1M"
	if _, err := Build(m, map[string][]byte{"k": []byte("K")}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("Build of a partition with an offset: %v", err)
	}
}
