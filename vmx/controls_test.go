package vmx

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// cpuCase is one block of testdata/vmx_msrs.txt.
type cpuCase struct {
	name string
	m    MSRs
	want map[string]uint32
	err  string
}

// loadCPUs parses testdata/vmx_msrs.txt.
func loadCPUs(t *testing.T) []*cpuCase {
	t.Helper()
	f, err := os.Open("testdata/vmx_msrs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cpus []*cpuCase
	var cur *cpuCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		if key == "cpu" {
			cur = &cpuCase{name: rest, want: map[string]uint32{}}
			cpus = append(cpus, cur)
			continue
		}
		if cur == nil {
			t.Fatalf("line %d: %q before any cpu", n, line)
		}
		if key == "error" {
			cur.err = rest
			continue
		}
		if key == "want" {
			word, val, _ := strings.Cut(rest, " ")
			v, err := strconv.ParseUint(val, 0, 32)
			if err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			cur.want[word] = uint32(v)
			continue
		}
		v, err := strconv.ParseUint(rest, 0, 64)
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		dst := map[string]*uint64{
			"basic": &cur.m.Basic, "pinbased": &cur.m.Pinbased, "procbased": &cur.m.Procbased,
			"exit": &cur.m.Exit, "entry": &cur.m.Entry, "misc": &cur.m.Misc,
			"cr0fixed0": &cur.m.Cr0Fixed0, "cr0fixed1": &cur.m.Cr0Fixed1,
			"cr4fixed0": &cur.m.Cr4Fixed0, "cr4fixed1": &cur.m.Cr4Fixed1,
			"procbased2": &cur.m.Procbased2, "eptvpidcap": &cur.m.EPTVPIDCap,
			"truepinbased": &cur.m.TruePinbased, "trueprocbased": &cur.m.TrueProcbased,
			"trueexit": &cur.m.TrueExit, "trueentry": &cur.m.TrueEntry,
		}[key]
		if dst == nil {
			t.Fatalf("line %d: unknown MSR %q", n, key)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cpus) < 5 {
		t.Fatalf("only %d CPUs in testdata", len(cpus))
	}
	return cpus
}

func TestChooseControlsCPUs(t *testing.T) {
	for _, cpu := range loadCPUs(t) {
		t.Run(cpu.name, func(t *testing.T) {
			c, err := ChooseControls(&cpu.m, Options{})
			if cpu.err != "" {
				if err == nil || err.Error() != cpu.err {
					t.Fatalf("error %v, want %q", err, cpu.err)
				}
				if c != (Controls{}) {
					t.Errorf("failed ChooseControls returned %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cpu.want) == 0 {
				t.Fatal("no expectations")
			}
			got := map[string]uint32{"pin": c.Pin, "proc": c.Proc, "proc2": c.Proc2, "exit": c.Exit, "entry": c.Entry}
			for w, v := range cpu.want {
				switch w {
				case "pin+timer":
					ct, err := ChooseControls(&cpu.m, Options{PreemptionTimer: true})
					if err != nil || ct.Pin != v || ct.PreemptionTimer() != (v&PinPreemptionTimer != 0) {
						t.Errorf("pin with timer = %#x, %v; want %#x", ct.Pin, err, v)
					}
				case "exit+ack":
					ca, err := ChooseControls(&cpu.m, Options{AckInterruptOnExit: true})
					if err != nil || ca.Exit != v {
						t.Errorf("exit with ack = %#x, %v; want %#x", ca.Exit, err, v)
					}
				default:
					if g, ok := got[w]; !ok || g != v {
						t.Errorf("%s = %#x, want %#x", w, g, v)
					}
				}
			}
			if c.CR0Fixed0 != cpu.m.Cr0Fixed0 || c.CR0Fixed1 != cpu.m.Cr0Fixed1 ||
				c.CR4Fixed0 != cpu.m.Cr4Fixed0 || c.CR4Fixed1 != cpu.m.Cr4Fixed1 {
				t.Errorf("fixed MSRs not copied: %+v", c)
			}
			checkControlsInvariants(t, &cpu.m, &c)
		})
	}
}

// checkControlsInvariants checks, bit by bit, that every control word
// respects its capability MSR and holds what juice needs.
func checkControlsInvariants(t *testing.T, m *MSRs, c *Controls) {
	t.Helper()
	tc := m.Basic&(1<<55) != 0
	pick := func(plain, tru uint64) uint64 {
		if tc {
			return tru
		}
		return plain
	}
	words := []struct {
		name       string
		v          uint32
		msr        uint64
		must, zero []int // bits that must be 1 / 0
	}{
		{"pin", c.Pin, pick(m.Pinbased, m.TruePinbased), []int{0, 3}, []int{7}},
		{"proc", c.Proc, pick(m.Procbased, m.TrueProcbased),
			[]int{3, 7, 10, 21, 25, 28, 29, 31}, []int{2, 9, 12, 15, 16, 19, 20, 22, 23, 27}},
		{"proc2", c.Proc2, m.Procbased2, []int{1}, []int{0, 2, 3, 4, 6, 8, 9, 11, 12, 13, 14, 17, 20}},
		{"exit", c.Exit, pick(m.Exit, m.TrueExit), []int{9, 18, 19, 20, 21}, []int{15}},
		{"entry", c.Entry, pick(m.Entry, m.TrueEntry), []int{14, 15}, []int{9, 10, 11}},
	}
	for _, w := range words {
		lo, hi := uint32(w.msr), uint32(w.msr>>32)
		for b := 0; b < 32; b++ {
			bit := uint32(1) << b
			if lo&bit != 0 && w.v&bit == 0 {
				t.Errorf("%s bit %d is clear but the CPU requires it", w.name, b)
			}
			if hi&bit == 0 && w.v&bit != 0 {
				t.Errorf("%s bit %d is set but the CPU forbids it", w.name, b)
			}
		}
		for _, b := range w.must {
			if w.v&(1<<b) == 0 {
				t.Errorf("%s bit %d (%s) must be set", w.name, b, controlName(w.name, b))
			}
		}
		for _, b := range w.zero {
			if w.v&(1<<b) != 0 {
				t.Errorf("%s bit %d (%s) must be clear", w.name, b, controlName(w.name, b))
			}
		}
	}
	// Optional features follow the CPU.
	if got, can := c.VirtualNMIs(), uint32(pick(m.Pinbased, m.TruePinbased)>>32)&(1<<5) != 0; got != can {
		t.Errorf("virtual NMIs %v, CPU allows %v", got, can)
	}
	sec := uint32(m.Procbased2 >> 32)
	if c.UnrestrictedGuest() != (sec&(1<<7) != 0) || c.VPID() != (sec&(1<<5) != 0) || c.PauseLoopExiting() != (sec&(1<<10) != 0) {
		t.Errorf("optional secondary controls %#x do not follow allowed-1 %#x", c.Proc2, sec)
	}
}

func controlName(word string, b int) string {
	k := map[string]Control{"pin": CtlPin, "proc": CtlProc, "proc2": CtlProc2, "exit": CtlExit, "entry": CtlEntry}[word]
	return k.BitName(b)
}

func TestAdjust(t *testing.T) {
	cases := []struct {
		name       string
		k          Control
		want, must uint32
		msr        uint64
		out        uint32
		err        string
	}{
		{"forced on and off", CtlPin, 0xff, 0, 0x0000_003f_0000_0016, 0x3f, ""},
		{"must set", CtlProc2, 0, 1 << 1, 0x0000_0002_0000_0000, 2, ""},
		{"want not allowed is dropped", CtlProc2, 1 << 7, 1 << 1, 0x0000_0002_0000_0000, 2, ""},
		{"must not allowed", CtlProc2, 0, 1 << 1, 0x0000_0080_0000_0000, 0,
			`vmx: the CPU cannot enable "EPT" (secondary processor-based control bit 1)`},
		{"lowest missing bit named", CtlExit, 0, 1<<21 | 1<<9, 0x0000_0200_0000_0000, 0,
			`vmx: the CPU cannot enable "load IA32_EFER" (VM-exit control bit 21)`},
		{"reserved bit named by number", CtlPin, 0, 1 << 30, 0, 0,
			`vmx: the CPU cannot enable "bit 30" (pin-based control bit 30)`},
		{"inconsistent MSR", CtlEntry, 0, 0, 0x0000_0001_0000_0003, 0,
			`vmx: the capability MSR of the VM-entry controls requires and forbids "bit 1" (VM-entry control bit 1)`},
		{"all free", CtlProc, 0x1234_5678, 0, 0xffff_ffff_0000_0000, 0x1234_5678, ""},
	}
	for _, c := range cases {
		got, err := c.k.adjust(c.want, c.must, c.msr)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.out {
			t.Errorf("%s: %#x, %v; want %#x", c.name, got, err, c.out)
		}
	}
}

func TestControlNames(t *testing.T) {
	if s := CtlProc2.BitName(1); s != "EPT" {
		t.Errorf("BitName = %q", s)
	}
	if s := CtlProc.BitName(31); s != "activate secondary controls" {
		t.Errorf("BitName = %q", s)
	}
	if s := Control(9).BitName(3); s != "bit 3" {
		t.Errorf("BitName of a bad word = %q", s)
	}
	if s := CtlPin.BitName(40); s != "bit 40" {
		t.Errorf("BitName(40) = %q", s)
	}
	if Control(9).String() != "unknown" || CtlEntry.String() != "VM-entry" {
		t.Error("Control.String")
	}
	// Every bit juice's constants use has a name.
	for k, bits := range map[Control]uint32{
		CtlPin:   pinMust | pinWant | pinNever | PinPreemptionTimer,
		CtlProc:  procMust | procToggle | procNever,
		CtlProc2: proc2Must | proc2Want,
		CtlExit:  exitMust | exitWant | exitNever | ExitCtlAckInterruptOnExit,
		CtlEntry: entryMust | entryWant | entryToggle | entryNever,
	} {
		for b := 0; b < 32; b++ {
			if bits&(1<<b) != 0 && strings.HasPrefix(k.BitName(b), "bit ") {
				t.Errorf("%s control bit %d has no name", k, b)
			}
		}
	}
}

func TestChooseControlsErrors(t *testing.T) {
	if _, err := ChooseControls(nil, Options{}); err == nil {
		t.Error("nil MSRs accepted")
	}
	base := loadCPUs(t)[0].m // Broadwell
	for _, c := range []struct {
		name string
		mod  func(m *MSRs)
		err  string
	}{
		{"interrupt-window exiting not allowed", func(m *MSRs) { m.TrueProcbased &^= 1 << (32 + 2) },
			`vmx: the CPU cannot enable "interrupt-window exiting" (primary processor-based control bit 2)`},
		{"interrupt-window exiting forced on", func(m *MSRs) { m.TrueProcbased |= 1 << 2 },
			`vmx: the CPU cannot disable "interrupt-window exiting" (primary processor-based control bit 2)`},
		{"IA-32e mode guest forced on", func(m *MSRs) { m.TrueEntry |= 1 << 9 },
			`vmx: the CPU cannot disable "IA-32e mode guest" (VM-entry control bit 9)`},
		{"no TPR shadow", func(m *MSRs) { m.TrueProcbased &^= 1 << (32 + 21) },
			`vmx: the CPU cannot enable "use TPR shadow" (primary processor-based control bit 21)`},
		{"RDTSCP forced on", func(m *MSRs) { m.Procbased2 |= 1 << 3 },
			`vmx: the CPU cannot disable "enable RDTSCP" (secondary processor-based control bit 3)`},
		{"entry to SMM forced on", func(m *MSRs) { m.TrueEntry |= 1 << 10 },
			`vmx: the CPU cannot disable "entry to SMM" (VM-entry control bit 10)`},
		{"no NMI exiting", func(m *MSRs) { m.TruePinbased &^= 1 << (32 + 3) },
			`vmx: the CPU cannot enable "NMI exiting" (pin-based control bit 3)`},
	} {
		m := base
		c.mod(&m)
		if _, err := ChooseControls(&m, Options{}); err == nil || err.Error() != c.err {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}

func TestEntryFor(t *testing.T) {
	c := Controls{Entry: 0xd1ff}
	if got := c.EntryFor(EFERLMA | EFERLME); got != 0xd3ff {
		t.Errorf("EntryFor(LMA) = %#x", got)
	}
	if got := c.EntryFor(EFERLME); got != 0xd1ff {
		t.Errorf("EntryFor(LME only) = %#x", got)
	}
	c.Entry |= 1 << 9
	if got := c.EntryFor(0); got != 0xd1ff {
		t.Errorf("EntryFor(0) with stale bit = %#x", got)
	}
}

func TestFixedCRs(t *testing.T) {
	ug := Controls{Proc2: Proc2EnableEPT | Proc2UnrestrictedGuest,
		CR0Fixed0: 0x80000021, CR0Fixed1: 0xffffffff, CR4Fixed0: 0x2000, CR4Fixed1: 0x3767ff}
	noUG := ug
	noUG.Proc2 = Proc2EnableEPT
	cases := []struct {
		c        *Controls
		cr0, out uint64
	}{
		{&ug, 0x60000010, 0x60000030},   // reset CR0: NE forced, PE/PG left alone
		{&ug, 0x11, 0x31},               // protected mode, paging off
		{&ug, 0x80000011, 0x80000031},   // paging
		{&ug, 0x1_0000_0031, 0x31},      // bits 63:32 cleared (FIXED1)
		{&noUG, 0x60000010, 0xe0000031}, // without unrestricted guest PE and PG are forced
		{&noUG, 0x80000031, 0x80000031}, // already fine
	}
	for _, tc := range cases {
		if got := tc.c.GuestCR0(tc.cr0); got != tc.out {
			t.Errorf("GuestCR0(%#x) UG=%v = %#x, want %#x", tc.cr0, tc.c.UnrestrictedGuest(), got, tc.out)
		}
	}
	if got := ug.GuestCR4(0x20); got != 0x2020 {
		t.Errorf("GuestCR4(PAE) = %#x", got)
	}
	if got := ug.GuestCR4(1 << 22); got != 0x2000 { // PKE, not in FIXED1
		t.Errorf("GuestCR4(PKE) = %#x", got)
	}
	if got := ug.CR0Mask(); got != 0xffff_ffff_0000_0020 {
		t.Errorf("CR0Mask UG = %#x", got)
	}
	if got := noUG.CR0Mask(); got != 0xffff_ffff_8000_0021 {
		t.Errorf("CR0Mask no UG = %#x", got)
	}
	if got := ug.CR4Mask(); got != ^uint64(0x3767ff)|0x2000 {
		t.Errorf("CR4Mask = %#x", got)
	}
	// The mask covers exactly the bits GuestCR0 may change.
	for _, c := range []*Controls{&ug, &noUG} {
		for _, v := range []uint64{0, 0x60000010, 0xffff_ffff_ffff_ffff, 0x8000_0001} {
			if changed := c.GuestCR0(v) ^ v; changed&^c.CR0Mask() != 0 {
				t.Errorf("GuestCR0(%#x) changes unmasked bits %#x", v, changed&^c.CR0Mask())
			}
			if changed := c.GuestCR4(v) ^ v; changed&^c.CR4Mask() != 0 {
				t.Errorf("GuestCR4(%#x) changes unmasked bits %#x", v, changed&^c.CR4Mask())
			}
		}
	}
}
