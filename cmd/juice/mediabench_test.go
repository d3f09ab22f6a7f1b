package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch"
)

func TestLineStamper(t *testing.T) {
	var s lineStamper
	s.Write([]byte("\x1b[2Jone\r\ntw"))
	s.Write([]byte("o\nthree"))
	got := s.snapshot()
	if len(got) != 2 || got[0].text != "one" || got[1].text != "two" || got[0].at.IsZero() || got[1].at.Before(got[0].at) {
		t.Errorf("lines %+v", got)
	}
}

func TestMediaStages(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	lines := []stampedLine{
		{at(0.4), "SeaBIOS (version 1.16.2)"},
		{at(0.5), "   Booting `juice' Booting `juice"},
		{at(0.6), "'"},
		{at(2.0), "[    0.000000] juice: booted by multiboot2"},
		{at(3.2), "[    1.250000] juice: vm jeos: starting (256 MiB, 1 vCPU)"},
		{at(3.5), "[jeos] Decompressing Linux... "},
		{at(9.0), "[jeos] JEOS-READY uptime=5.1"},
		{at(9.2), "[    7.000000] juice: vm jeos: exited with status 0"},
	}
	r, err := mediaStages(lines, t0, "jeos", true)
	if err != nil {
		t.Fatal(err)
	}
	want := mediaRun{grub: 0.5, juice: 2.0, vmStart: 3.2, vmStartOwn: 1.25, guest: 3.5, marker: 9.0}
	if r != want {
		t.Errorf("stages %+v, want %+v", r, want)
	}
	// PVH: no GRUB line expected.
	r, err = mediaStages(lines[3:], t0, "jeos", false)
	if err != nil || r.grub != -1 || r.juice != 2.0 || r.marker != 9.0 {
		t.Errorf("PVH stages %+v, %v", r, err)
	}
	// The guest's first line may be its marker.
	short := append(slices.Clone(lines[3:5]), stampedLine{at(8), "[jeos] JEOS-READY"})
	if r, err := mediaStages(short, t0, "jeos", false); err != nil || r.guest != 8 || r.marker != 8 {
		t.Errorf("marker as the first guest line: %+v, %v", r, err)
	}
	// Order matters, and every milestone must be there.
	for name, ls := range map[string][]stampedLine{
		"no marker":        lines[:6],
		"no GRUB line":     lines[3:],
		"another VM":       {lines[1], lines[3], {at(3), "juice: vm web: starting"}, lines[5], lines[6]},
		"marker before VM": {lines[1], lines[3], lines[6], lines[4]},
	} {
		if _, err := mediaStages(ls, t0, "jeos", true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseMediaBoots(t *testing.T) {
	all, err := parseMediaBoots("all")
	if err != nil || len(all) != len(defaultMediaBoots) || all[0] != launch.BootPVH {
		t.Errorf("all = %v, %v", all, err)
	}
	for _, b := range defaultMediaBoots[1:] {
		if b.Medium() == launch.MediumKernel || b == launch.BootGRUBBIOS || b == launch.BootGRUBEFI {
			t.Errorf("default boot %s", b)
		}
	}
	got, err := parseMediaBoots("iso-bios, pxe-efi")
	if err != nil || !slices.Equal(got, []launch.Boot{launch.BootISOBIOS, launch.BootPXEEFI}) {
		t.Errorf("list = %v, %v", got, err)
	}
	if _, err := parseMediaBoots("iso-bios,floppy"); err == nil {
		t.Error("unknown boot path accepted")
	}
	rc, _, errOut := juice("bench", "--media", "--boots", "floppy")
	if rc != 2 || !strings.Contains(errOut, "unknown boot path") {
		t.Errorf("bench --media --boots floppy: %d %q", rc, errOut)
	}
}
