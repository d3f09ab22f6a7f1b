package launch

import (
	"strings"
	"testing"
)

func TestQEMUArgsAHCIDisks(t *testing.T) {
	args, err := QEMUArgs(Config{Kernel: "k.elf", AHCIDisks: []AHCIDisk{
		{Path: "/tmp/a,b.img", Port: 0, Serial: "juice-data"},
		{Path: "c.img", Port: 3, ReadOnly: true},
	}}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-drive if=none,id=ahci0,format=raw,file=/tmp/a,,b.img -device ide-hd,drive=ahci0,bus=ide.0,serial=juice-data",
		"-drive if=none,id=ahci3,format=raw,file=c.img,readonly=on -device ide-hd,drive=ahci3,bus=ide.3",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q: %s", want, line)
		}
	}
	// The disks come before -kernel's options end and ExtraArgs, so
	// ExtraArgs can still override; the machine stays q35.
	if argAfter(args, "-machine") != "q35" || strings.Index(line, "ide-hd") > strings.Index(line, "-kernel") {
		t.Errorf("args %s", line)
	}
	// On an ISO boot path port 2 is the CD's.
	if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootISOBIOS, AHCIDisks: []AHCIDisk{{Path: "a", Port: 2}}}, Media{ISO: "x.iso"}); err == nil ||
		!strings.Contains(err.Error(), "port 2 holds the boot CD (--boot iso-bios)") {
		t.Errorf("port 2 beside a CD: %v", err)
	}
	if args, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootUSBBIOS, AHCIDisks: []AHCIDisk{{Path: "a", Port: 2}}}, Media{Disk: "u.img"}); err != nil ||
		!strings.Contains(strings.Join(args, " "), "bus=ide.2") {
		t.Errorf("port 2 on a USB boot: %v %v", args, err)
	}
	for _, c := range []struct {
		disks []AHCIDisk
		want  string
	}{
		{[]AHCIDisk{{Port: 0}}, "AHCI disk on port 0: no image"},
		{[]AHCIDisk{{Path: "a", Port: 6}}, "port 6 is not 0 to 5"},
		{[]AHCIDisk{{Path: "a", Port: -1}}, "port -1 is not 0 to 5"},
		{[]AHCIDisk{{Path: "a"}, {Path: "b"}}, "AHCI disk b: port 0 has another disk"},
		{[]AHCIDisk{{Path: "a", Serial: "x,drive=y"}}, "bad serial"},
		{[]AHCIDisk{{Path: "a", Serial: strings.Repeat("s", 21)}}, "bad serial"},
	} {
		if _, err := QEMUArgs(Config{Kernel: "k.elf", AHCIDisks: c.disks}, Media{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.disks, err, c.want)
		}
	}
	if _, err := BochsRC(Config{Kernel: "k.elf", Emulator: EmulatorBochs, AHCIDisks: []AHCIDisk{{Path: "a"}}}); err == nil ||
		!strings.Contains(err.Error(), "AHCI disks need QEMU") {
		t.Errorf("Bochs: %v", err)
	}
}
