package cmdline

import (
	"strings"
	"testing"
)

func def() Config { var c Config; Defaults(&c); return c }

func with(f func(*Config)) Config { c := def(); f(&c); return c }

func TestDefaults(t *testing.T) {
	c := Config{ConsolePort: 1, ConsoleBaud: 2, Mode: ModeSelftest, Panic: PanicPoweroff}
	Defaults(&c)
	if c != (Config{ConsolePort: 0x3f8, ConsoleBaud: 115200, Mode: ModeRun, Panic: PanicHalt}) {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		line string
		want Config
		st   Status
		bad  string // the offending word
	}{
		{"", def(), StatusOK, ""},
		{"   \t ", def(), StatusOK, ""},
		{"BOOT_IMAGE=/boot/juice.elf quiet root=/dev/sda1 juice", def(), StatusOK, ""},
		{"console=ttyS1", with(func(c *Config) { c.ConsolePort = 0x2f8 }), StatusOK, ""},
		{"console=ttyS2,9600", with(func(c *Config) { c.ConsolePort, c.ConsoleBaud = 0x3e8, 9600 }), StatusOK, ""},
		{"console=ttyS3,115200n8", with(func(c *Config) { c.ConsolePort = 0x2e8 }), StatusOK, ""},
		{"console=ttyS0,50", with(func(c *Config) { c.ConsoleBaud = 50 }), StatusOK, ""},
		{"console=uart,io,0x2f8", with(func(c *Config) { c.ConsolePort = 0x2f8 }), StatusOK, ""},
		{"console=uart8250,io,0X3E8,38400n8", with(func(c *Config) { c.ConsolePort, c.ConsoleBaud = 0x3e8, 38400 }), StatusOK, ""},
		{"console=uart,io,0xe000,57600", with(func(c *Config) { c.ConsolePort, c.ConsoleBaud = 0xe000, 57600 }), StatusOK, ""},
		{"console=tty0 console=ttyS1,19200", with(func(c *Config) { c.ConsolePort, c.ConsoleBaud = 0x2f8, 19200 }), StatusOK, ""},
		{"console=ttyS1 console=hvc0", with(func(c *Config) { c.ConsolePort = 0x2f8 }), StatusOK, ""},
		{"console=ttyS1 console=ttyS3", with(func(c *Config) { c.ConsolePort = 0x2e8 }), StatusOK, ""},
		{"console=ttyS4 console=ttyS10 console=ttyS0x console= console", def(), StatusOK, ""},
		{"console=uart,mmio,0xfe000000,115200 console=uart8250,mmio32,0x1000 console=uart,0xfedc9000", def(), StatusOK, ""},
		{"juice.mode=selftest", with(func(c *Config) { c.Mode = ModeSelftest }), StatusOK, ""},
		{"juice.mode=selftest juice.mode=run", def(), StatusOK, ""},
		{"juice.panic=poweroff", with(func(c *Config) { c.Panic = PanicPoweroff }), StatusOK, ""},
		{"\tjuice.panic=poweroff\tjuice.panic=halt\t", def(), StatusOK, ""},
		{"quiet juice.mode=selftest console=ttyS1,9600n8 juice.panic=poweroff BOOT_IMAGE=x",
			Config{ConsolePort: 0x2f8, ConsoleBaud: 9600, Mode: ModeSelftest, Panic: PanicPoweroff}, StatusOK, ""},

		// Errors: the bad word is skipped, the rest still applies.
		{"juice.foo=1 console=ttyS1", with(func(c *Config) { c.ConsolePort = 0x2f8 }), StatusUnknownKey, "juice.foo=1"},
		{"juice.", def(), StatusUnknownKey, "juice."},
		{"juice.modex=run", def(), StatusUnknownKey, "juice.modex=run"},
		{"juice.mode", def(), StatusBadValue, "juice.mode"},
		{"juice.mode=", def(), StatusBadValue, "juice.mode="},
		{"juice.mode=Run", def(), StatusBadValue, "juice.mode=Run"},
		{"juice.mode=run=1", def(), StatusBadValue, "juice.mode=run=1"},
		{"juice.panic=", def(), StatusBadValue, "juice.panic="},
		{"juice.panic=reboot juice.mode=selftest", with(func(c *Config) { c.Mode = ModeSelftest }), StatusBadValue, "juice.panic=reboot"},
		{"console=ttyS0,", def(), StatusBadValue, "console=ttyS0,"},
		{"console=ttyS0,9601", def(), StatusBadValue, "console=ttyS0,9601"},
		{"console=ttyS0,25", def(), StatusBadValue, "console=ttyS0,25"}, // divides 115200 but below 50
		{"console=ttyS0,0", def(), StatusBadValue, "console=ttyS0,0"},
		{"console=ttyS0,230400", def(), StatusBadValue, "console=ttyS0,230400"},
		{"console=ttyS0,9999999999999", def(), StatusBadValue, "console=ttyS0,9999999999999"},
		{"console=ttyS0,115200e7", def(), StatusBadValue, "console=ttyS0,115200e7"},
		{"console=ttyS0,n8", def(), StatusBadValue, "console=ttyS0,n8"},
		{"console=ttyS0,+9600", def(), StatusBadValue, "console=ttyS0,+9600"},
		{"console=uart", def(), StatusBadValue, "console=uart"},
		{"console=uart,io", def(), StatusBadValue, "console=uart,io"},
		{"console=uart,io,", def(), StatusBadValue, "console=uart,io,"},
		{"console=uart,io,3f8", def(), StatusBadValue, "console=uart,io,3f8"},
		{"console=uart,io,0x", def(), StatusBadValue, "console=uart,io,0x"},
		{"console=uart,io,0x0", def(), StatusBadValue, "console=uart,io,0x0"},
		{"console=uart,io,0xfff9", def(), StatusBadValue, "console=uart,io,0xfff9"},
		{"console=uart,io,0x10000", def(), StatusBadValue, "console=uart,io,0x10000"},
		{"console=uart,io,0x3g8", def(), StatusBadValue, "console=uart,io,0x3g8"},
		{"console=uart,io,0x3f8,", def(), StatusBadValue, "console=uart,io,0x3f8,"},
		{"console=uart,io,0x3f8,7", def(), StatusBadValue, "console=uart,io,0x3f8,7"},
		{"console=uart,port,0x3f8", def(), StatusBadValue, "console=uart,port,0x3f8"},
		{"quiet juice.mode=r\x01n", def(), StatusGarbled, "juice.mode=r\x01n"},
		{"BOOT_IMAGE=/boot/\xffjuice", def(), StatusGarbled, "BOOT_IMAGE=/boot/\xffjuice"},
		{"console=ttyS1\x00", def(), StatusGarbled, "console=ttyS1\x00"},
		{"a\nb", def(), StatusGarbled, "a\nb"},
		{"juice.x=1 juice.mode", def(), StatusUnknownKey, "juice.x=1"}, // first error reported
	}
	for _, c := range cases {
		b := []byte(c.line)
		var got Config
		st, s, e := Parse(b, &got)
		if st != c.st || got != c.want {
			t.Errorf("%q: status %v config %+v, want %v %+v", c.line, st, got, c.st, c.want)
			continue
		}
		if st == StatusOK {
			if s != 0 || e != 0 {
				t.Errorf("%q: OK with bad bounds %d,%d", c.line, s, e)
			}
			continue
		}
		if s < 0 || e > len(b) || s > e || string(b[s:e]) != c.bad {
			t.Errorf("%q: bad word [%d,%d) want %q", c.line, s, e, c.bad)
		}
	}
}

func TestNextWord(t *testing.T) {
	b := []byte("  ab\tc  d ")
	var words []string
	for s, e := NextWord(b, 0); s < len(b); s, e = NextWord(b, e) {
		words = append(words, string(b[s:e]))
	}
	if strings.Join(words, "|") != "ab|c|d" {
		t.Fatalf("words %q", words)
	}
	for _, off := range []int{-5, 10, 11, 1 << 40} {
		s, e := NextWord(b, off)
		if off < 0 {
			if s != 2 || e != 4 {
				t.Errorf("off %d: %d,%d", off, s, e)
			}
		} else if s != len(b) || e != len(b) {
			t.Errorf("off %d: %d,%d", off, s, e)
		}
	}
	if s, e := NextWord(nil, 0); s != 0 || e != 0 {
		t.Errorf("nil: %d,%d", s, e)
	}
	if s, e := NextWord([]byte("x"), 0); s != 0 || e != 1 {
		t.Errorf("single: %d,%d", s, e)
	}
}

func TestStrings(t *testing.T) {
	if ModeRun.String() != "run" || ModeSelftest.String() != "selftest" || Mode(9).String() != "invalid" {
		t.Fatal("Mode.String")
	}
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusGarbled; s++ {
		if str := s.String(); str == "" || str == Status(99).String() || seen[str] {
			t.Errorf("status %d: %q", s, str)
		} else {
			seen[str] = true
		}
	}
}

func TestNoAllocs(t *testing.T) {
	b := []byte("BOOT_IMAGE=/x console=uart8250,io,0x2f8,9600n8 juice.mode=selftest juice.panic=poweroff juice.bad")
	var c Config
	if n := testing.AllocsPerRun(100, func() { Parse(b, &c); NextWord(b, 3) }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

// validConfig checks what Parse promises on StatusOK.
func validConfig(t *testing.T, c Config) {
	if c.ConsolePort == 0 || c.ConsolePort > 0xfff8 {
		t.Fatalf("port %#x", c.ConsolePort)
	}
	if c.ConsoleBaud < 50 || 115200%c.ConsoleBaud != 0 {
		t.Fatalf("baud %d", c.ConsoleBaud)
	}
	if c.Mode > ModeSelftest || c.Panic > PanicPoweroff {
		t.Fatalf("mode %d panic %d", c.Mode, c.Panic)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "console=ttyS1,9600n8 juice.mode=selftest juice.panic=poweroff",
		"console=uart,io,0x2f8,57600 quiet", "juice.x=1", "console=uart8250,mmio,0x1000",
		"a\tb\x00c", "console=ttyS0,", "juice.mode=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		st, s, e := Parse(b, &c)
		validConfig(t, c) // Parse only ever applies valid settings
		switch st {
		case StatusOK:
			if s != 0 || e != 0 {
				t.Fatalf("OK with bounds %d,%d", s, e)
			}
		case StatusUnknownKey, StatusBadValue, StatusGarbled:
			if s < 0 || e > len(b) || s >= e {
				t.Fatalf("bad word bounds %d,%d of %d", s, e, len(b))
			}
			for _, ch := range b[s:e] {
				if ch == ' ' || ch == '\t' {
					t.Fatalf("bad word [%d,%d) spans a separator", s, e)
				}
			}
			if (s > 0 && b[s-1] != ' ' && b[s-1] != '\t') || (e < len(b) && b[e] != ' ' && b[e] != '\t') {
				t.Fatalf("bad word [%d,%d) is not a whole word", s, e)
			}
		default:
			t.Fatalf("status %d", st)
		}
		var c2 Config
		if st2, s2, e2 := Parse(b, &c2); st2 != st || s2 != s || e2 != e || c2 != c {
			t.Fatal("Parse is not deterministic")
		}
	})
}

func TestStressSeconds(t *testing.T) {
	for _, c := range []struct {
		w    string
		st   Status
		secs uint16
	}{
		{"juice.mode=smpstress juice.stress=90", StatusOK, 90},
		{"juice.stress=1", StatusOK, 1},
		{"juice.stress=3600", StatusOK, 3600},
		{"juice.stress=3601", StatusBadValue, 0},
		{"juice.stress=0", StatusBadValue, 0},
		{"juice.stress=", StatusBadValue, 0},
		{"juice.stress", StatusBadValue, 0},
		{"juice.stress=1m", StatusBadValue, 0},
	} {
		var cfg Config
		if st, _, _ := Parse([]byte(c.w), &cfg); st != c.st || cfg.StressSeconds != c.secs {
			t.Errorf("%q: status %v, %d s; want %v, %d s", c.w, st, cfg.StressSeconds, c.st, c.secs)
		}
	}
}

func TestVCPUPlacement(t *testing.T) {
	for _, c := range []struct {
		w  string
		st Status
		v  uint8
	}{
		{"", StatusOK, VCPUsAuto},
		{"juice.vcpus=boot", StatusOK, VCPUsBoot},
		{"juice.vcpus=spread", StatusOK, VCPUsSpread},
		{"juice.vcpus=all", StatusBadValue, VCPUsAuto},
		{"juice.vcpus", StatusBadValue, VCPUsAuto},
	} {
		var cfg Config
		if st, _, _ := Parse([]byte(c.w), &cfg); st != c.st || cfg.VCPUs != c.v {
			t.Errorf("%q: status %v, vcpus %d; want %v, %d", c.w, st, cfg.VCPUs, c.st, c.v)
		}
	}
}

func TestFaultInjectionModes(t *testing.T) {
	for _, m := range []Mode{ModeCrashtest, ModeSyscalltest, ModeOOMtest, ModeEntrytest, ModeSMPFailtest, ModeSMPStress} {
		var c Config
		w := []byte("juice.mode=" + m.String())
		if st, _, _ := Parse(w, &c); st != StatusOK || c.Mode != m {
			t.Errorf("%s: status %v, mode %v", w, st, c.Mode)
		}
	}
}
