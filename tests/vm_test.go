package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/cmd/juice/launch"
	"juice/tests/guests/mkguest"
	"juice/vmm"
)

// The VM tests boot juice with a bundle of test guests (tests/guests) as
// `juice run --kernel` and `--bundle` do, and check what the guests print
// (juice shows a guest's COM1 lines as "[vmname] text"), how juice reports
// each VM's end ("juice: vm NAME: ..."), and juice's exit status (the first
// VM's exit status, or 125 when it did not exit normally).

// GuestDirEnv names a directory of prebuilt guests (NAME.elf); without it
// the tests build them into <root>/build/guests once per test binary.
const GuestDirEnv = "JUICE_GUEST_DIR"

// vmMemory is the RAM of every test VM: small, and far below the address
// outside probes.
const vmMemory = "16M"

// guestsOnce builds the guests once.
var guestsOnce struct {
	sync.Mutex
	dir string
	err error
}

// Guest returns the path of test guest name (one of mkguest.Names),
// building all guests on first use unless $JUICE_GUEST_DIR names a
// directory holding them.
func Guest(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv(GuestDirEnv); d != "" {
		p := filepath.Join(d, name+".elf")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (%s is set, so guests are not built)", err, GuestDirEnv)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	guestsOnce.Lock()
	defer guestsOnce.Unlock()
	if guestsOnce.dir == "" && guestsOnce.err == nil {
		dir := filepath.Join(Root(t), "build", "guests")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		_, err := mkguest.Builder{Dir: Root(t)}.BuildAll(ctx, dir)
		cancel()
		guestsOnce.dir, guestsOnce.err = dir, err
	}
	if guestsOnce.err != nil {
		t.Fatalf("building the test guests: %v", guestsOnce.err)
	}
	return filepath.Join(guestsOnce.dir, name+".elf")
}

// BootVMs boots juice (cfg, see Boot) with a bundle of vms as its first
// boot module. A VM without a kernel gets Guest(t, its name); without
// memory, vmMemory.
func BootVMs(t testing.TB, cfg launch.Config, vms ...launch.VMSpec) *Run {
	t.Helper()
	RequireEmulators(t, cfg.Boot)
	for i := range vms {
		if vms[i].Kernel == "" {
			vms[i].Kernel = Guest(t, vms[i].Name)
		}
		if vms[i].Memory == "" {
			vms[i].Memory = vmMemory
		}
	}
	b, err := launch.BuildBundle(vms)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Initrd, err = launch.WriteBundle(t.TempDir(), b); err != nil {
		t.Fatal(err)
	}
	r := Boot(t, cfg)
	stopOnNoVMs(t, r)
	return r
}

// noVMs is the start of juice's line when it found no bundle: with one
// given, waiting any longer is pointless.
const noVMs = "juice: no VMs configured"

// stopOnNoVMs stops r early (the test then fails on its next Expect) if
// juice says it has no VMs.
func stopOnNoVMs(t testing.TB, r *Run) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := r.M.Console.Wait(context.Background(), 0, launch.HasPrefix(noVMs))
		if err == nil {
			t.Logf("juice was given a bundle but says %q: stopping the run", l.Text)
			r.M.Kill()
		}
	}()
	t.Cleanup(func() {
		r.M.Kill()
		<-done
	})
}

// GuestLine is the console text of line text printed by VM vm.
func GuestLine(vm, text string) string { return "[" + vm + "] " + text }

// VMEnd is the start of juice's line about how VM vm ended.
func VMEnd(vm string) string { return "juice: vm " + vm + ": " }

// Juice's statuses for how a VM ended.
const (
	// NotExited is juice's power-off status when the first VM did not
	// exit normally (triple fault, fault).
	NotExited = 125
)

// noFailLines fails t if VM vm printed a line with FAIL (the guests'
// marker for a check that went wrong).
func noFailLines(t *testing.T, r *Run, vm string) {
	t.Helper()
	for _, l := range r.Find(GuestLine(vm, "")) {
		if strings.Contains(l, "FAIL") {
			t.Errorf("guest reported: %s", l)
		}
	}
}

// guestCase is one guest run alone under juice.
type guestCase struct {
	name    string
	cmdline string
	modules []launch.ModuleSpec
	lines   []string // guest lines, in order (without the prefix)
	end     string   // juice's line about the VM's end, after "juice: vm NAME: "
	contain string   // text the end line must also contain (lower case; an address in hex, zero-padded or not)
	status  int      // juice's exit status
}

// mmioLines are the mmio guest's lines under juice: one per check of the
// scratch device (vmm/devices.Scratch at 0xd0000000) through juice's MMIO
// emulator, then the read of the page after the device, which must stop
// the VM with a fault naming 0xd0001000.
var mmioLines = []string{
	"mmio: scratch device at 0xd0000000",
	"mmio: id: mov r32 ok",
	"mmio: id: mov eax, moffs32 ok",
	"mmio: id: mov r8 (al, ah) ok",
	"mmio: id: mov r16 keeps the upper half ok",
	"mmio: id: ignores writes ok",
	"mmio: scratch: mov r32 write, read back ok",
	"mmio: scratch: mov r8 writes (cl, dh) ok",
	"mmio: scratch: unaligned mov r16 write ok",
	"mmio: scratch: mov m32, imm32 ok",
	"mmio: scratch: mov m8, imm8 and mov m16, imm16 ok",
	"mmio: movzx r32, m8 ok",
	"mmio: movzx r32, m16 ok",
	"mmio: movsx r32, m8 ok",
	"mmio: movsx r32, m16 ok",
	"mmio: sum: the add register reads 0 ok",
	"mmio: sum: 5 + 7 + 0x100 (byte lane 1) ok",
	"mmio: counter: counts accesses ok",
	"mmio: unused register reads 0, ignores writes ok",
	"mmio: last dword of the page reads 0 ok",
	"mmio: rep stosd: edi advanced, ecx 0 ok",
	"mmio: rep stosd: one device access per dword ok",
	"mmio: rep stosd: 4 dwords written ok",
	"mmio: rep movsd device to RAM: esi advanced ok",
	"mmio: rep movsd device to RAM: dword 1 ok",
	"mmio: rep movsd device to RAM: dword 3 ok",
	"mmio: rep movsd device to RAM: dword 4 ok",
	"mmio: rep movsd RAM to device: dword 1 ok",
	"mmio: rep movsd RAM to device: dword 3 ok",
	"mmio: rep movsb device to device ok",
	"mmio: lodsd ok",
	"mmio: std; rep stosb (backwards) ok",
	"mmio: std; rep stosb: edi moved down ok",
	"mmio: long mode",
	"mmio: 64-bit: mov r64 reads the id, upper half 0 ok",
	"mmio: 64-bit: mov m64, r64 and back ok",
	"mmio: 64-bit: mov r32 zero-extends ok",
	"mmio: 64-bit: mov r10, m64 ok",
	"mmio: 64-bit: mov m64, imm32 sign-extended ok",
	"mmio: 64-bit: movsxd ok",
	"mmio: 64-bit: rep stosq ok",
	"mmio: 64-bit: 64-bit add to the sum ok",
	"mmio: 64-bit: mov rax, moffs64 ok",
	"mmio: reading 0xd0001000, past the device",
}

func TestVMGuests(t *testing.T) {
	mod := filepath.Join(t.TempDir(), "mod.bin")
	if err := os.WriteFile(mod, []byte("twelve bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []guestCase{
		{
			name:    "hello",
			cmdline: "one two=3",
			modules: []launch.ModuleSpec{launch.ParseModule(mod + " x=1")},
			lines: []string{"hello from guest", "cmdline: [one two=3]", "modules: 0x00000001",
				"module: 0x0000000c [mod.bin x=1]"},
			end: "exited with status 0", status: 0,
		},
		{
			name:  "modes",
			lines: []string{"modes: protected mode", "modes: real mode", "modes: protected mode again", "modes: long mode"},
			end:   "exited with status 0", status: 0,
		},
		{
			name:  "cpuid",
			lines: []string{"cpuid: signature [" + vmm.HypervisorSignature + "]", "cpuid: hypervisor bit set, no VMX, no SVM", "cpuid: ok"},
			end:   "exited with status 0", status: 0,
		},
		{
			name:  "hypercall",
			lines: []string{"hypercall: version 0x00000001", "hypercall: exit with status 7"},
			end:   "exited with status 7", status: 7,
		},
		{
			name:  "timer",
			lines: []string{"timer: one-shot timer, vector 0x30, 1000 us", "timer: tick", "timer: done"},
			end:   "exited with status 0", status: 0,
		},
		{
			name:  "triplefault",
			lines: []string{"triplefault: empty IDT, INT3"},
			end:   "shut down (triple fault)", contain: "at rip 0x", status: NotExited,
		},
		{
			name:  "outside",
			lines: []string{"outside: writing 0x40000000"},
			end:   "fault: ", contain: "40000000", status: NotExited,
		},
		{
			name:  "mmio",
			lines: mmioLines,
			end:   "fault: ", contain: "d0001000", status: NotExited,
		},
		{
			name:  "spin",
			lines: []string{"spin start", "spin round 0x00000001", "spin done"},
			end:   "exited with status 0", status: 0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := BootVMs(t, launch.Config{Mem: "128M"},
				launch.VMSpec{Name: c.name, Cmdline: c.cmdline, Modules: c.modules})
			for _, l := range c.lines {
				r.ExpectNext(GuestLine(c.name, l))
			}
			end := r.ExpectNext(VMEnd(c.name) + c.end)
			if c.contain != "" && !strings.Contains(strings.ToLower(end), c.contain) {
				t.Errorf("%q does not name %s", end, c.contain)
			}
			r.ExpectExit(c.status)
			noFailLines(t, r, c.name)
			ends := 0
			for _, l := range r.Find(VMEnd(c.name)) {
				rest := strings.TrimPrefix(l, VMEnd(c.name))
				if strings.HasPrefix(rest, "exited") || strings.HasPrefix(rest, "shut down") || strings.HasPrefix(rest, "fault:") {
					ends++
				}
			}
			if ends != 1 {
				t.Errorf("%d lines about the VM's end, want 1", ends)
			}
		})
	}
}

// Two VMs at once: one triple-faults, the other keeps running to its end,
// and juice powers off with the first VM's status.
func TestVMTwoVMs(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M"},
		launch.VMSpec{Name: "spin"},
		launch.VMSpec{Name: "triplefault"})
	r.Expect(GuestLine("triplefault", "triplefault: empty IDT, INT3"))
	r.Expect(VMEnd("triplefault") + "shut down (triple fault)")
	r.Expect(GuestLine("spin", "spin start"))
	r.Expect(GuestLine("spin", "spin done"))
	r.Expect(VMEnd("spin") + "exited with status 0")
	r.ExpectExit(0)
	noFailLines(t, r, "spin")
	noFailLines(t, r, "triplefault")
	// The VMs run side by side: the triple fault ends its VM while spin is
	// still spinning, and spin goes on to its end.
	texts := r.Texts()
	idx := func(prefix string) int {
		for i, l := range texts {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		return -1
	}
	fault, done := idx(VMEnd("triplefault")+"shut down"), idx(GuestLine("spin", "spin done"))
	if fault < 0 || done < 0 || fault > done {
		t.Errorf("the triple fault (console line %d) did not happen while spin ran (spin done: line %d)", fault, done)
	}
}

// The first VM's status is juice's, whatever the others do.
func TestVMFirstStatusWins(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M"},
		launch.VMSpec{Name: "hypercall"},
		launch.VMSpec{Name: "hello"})
	r.Expect(VMEnd("hello") + "exited with status 0")
	r.Expect(VMEnd("hypercall") + "exited with status 7")
	r.ExpectExit(7)
}

// The bundle also reaches juice through GRUB (module2 on the ISO).
func TestVMGRUB(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Boot: launch.BootGRUBBIOS, Mem: "128M"},
		launch.VMSpec{Name: "hello", Cmdline: "via grub"})
	r.Expect("juice: booted by multiboot2")
	r.ExpectNext(GuestLine("hello", "hello from guest"))
	r.ExpectNext(GuestLine("hello", "cmdline: [via grub]"))
	r.ExpectNext(VMEnd("hello") + "exited with status 0")
	r.ExpectExit(0)
}

// The guests themselves, without juice: QEMU loads them by multiboot v1
// (-kernel) on the bare emulated machine. This checks the guests, so that
// a failure of TestVMGuests points at juice. (The guests that need juice's
// hypercalls, CPUID leaves or faults have no bare-metal counterpart.)
func TestGuestsBare(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		reset bool // ends in a triple fault (a reset under -no-reboot)
	}{
		{"hello", []string{"hello from guest", "cmdline: [", "modules: 0x00000000"}, false},
		{"modes", []string{"modes: protected mode", "modes: real mode", "modes: protected mode again", "modes: long mode"}, false},
		{"spin", []string{"spin start", "spin round 0x0000000a", "spin round 0x0000001e", "spin done"}, false},
		{"triplefault", []string{"triplefault: empty IDT, INT3"}, true},
		{"bench", []string{"bench: no juice, mmio reads the HPET", "bench: cpuid ", "bench: pio ", "bench: mmio ",
			"bench: hypercall skipped (not under juice)", "bench: total "}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := Boot(t, launch.Config{Kernel: Guest(t, c.name), Mem: "64M"})
			for _, l := range c.lines {
				// The first line follows the firmware's text.
				r.ExpectMatch(fmt.Sprintf("a line with %q", l), func(s string) bool { return strings.Contains(s, l) })
			}
			res := r.Wait()
			switch {
			case c.reset && res.Outcome != launch.Reset:
				t.Errorf("run ended: %v; want a triple fault", res)
			case !c.reset && (!res.Exited() || res.Status != 0):
				t.Errorf("run ended: %v; want status 0", res)
			}
			for _, l := range r.Texts() {
				if strings.Contains(l, "FAIL") {
					t.Errorf("guest reported: %s", l)
				}
			}
		})
	}
}

// The exit path allocates nothing: spin makes ~50,000 port-I/O exits and
// juice reports the heap allocations it made while that VM ran (the few
// left are its start and end messages).
func TestVMExitPathAllocations(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M"}, launch.VMSpec{Name: "spin"})
	r.Expect(VMEnd("spin") + "exited with status 0")
	stats := r.ExpectMatch("the exit statistics line", func(s string) bool {
		return strings.HasPrefix(s, VMEnd("spin")) && strings.Contains(s, " exits, ")
	})
	var exits, allocs uint64
	if _, err := fmt.Sscanf(strings.TrimPrefix(stats, VMEnd("spin")), "%d exits, %d heap allocations", &exits, &allocs); err != nil {
		t.Fatalf("cannot parse %q: %v", stats, err)
	}
	if exits < 50000 {
		t.Errorf("only %d exits; spin makes 50,000 port reads", exits)
	}
	if allocs > 16 {
		t.Errorf("%d heap allocations over %d exits: the exit path allocates", allocs, exits)
	}
	r.ExpectExit(0)
}

// A VM whose kernel is missing from the bundle, or does not fit in its
// RAM, is reported by name; the other VMs still start and run.
func TestVMBadBundleEntries(t *testing.T) {
	t.Parallel()
	garbage := filepath.Join(t.TempDir(), "garbage.elf")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a kernel ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := BootVMs(t, launch.Config{Mem: "128M"},
		launch.VMSpec{Name: "hello"},
		launch.VMSpec{Name: "toobig", Kernel: Guest(t, "modes"), Memory: "1M"},
		launch.VMSpec{Name: "garbage", Kernel: garbage, Memory: "16M"})
	r.Expect(GuestLine("hello", "hello from guest"))
	r.Expect(VMEnd("hello") + "exited with status 0")
	r.ExpectExit(0)
	// modes is linked at 1 MiB: in 1 MiB of RAM it cannot fit.
	if f := r.Find(VMEnd("toobig") + "kernel "); len(f) == 0 {
		t.Errorf("no line names VM toobig and its problem")
	}
	if f := r.Find(VMEnd("garbage") + "kernel "); len(f) == 0 || !strings.Contains(f[0], "multiboot") && !strings.Contains(f[0], "format") {
		t.Errorf("no line names VM garbage and its unrecognised image: %q", f)
	}
}

// The bench guest (`juice bench --vm`) runs to its end under juice and
// prints a figure for each kind of exit it times. No timing is asserted.
func TestVMBench(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M"}, launch.VMSpec{Name: "bench"})
	r.ExpectNext(GuestLine("bench", "bench: hypervisor juice, mmio reads the scratch device's id at 0xd0000000"))
	r.ExpectNext(GuestLine("bench", "bench: operations per kind: 2000"))
	r.ExpectNext(GuestLine("bench", "bench: the mmio register reads 0x6a756963"))
	for _, kind := range launch.VMBenchKinds {
		line := r.ExpectNext(GuestLine("bench", "bench: "+kind+" "))
		if !strings.HasSuffix(line, " ticks/op") {
			t.Errorf("%q is not a figure", line)
		}
	}
	r.ExpectNext(GuestLine("bench", "bench: total "))
	r.ExpectNext(VMEnd("bench") + "exited with status 0")
	r.ExpectExit(0)
	noFailLines(t, r, "bench")
	b, err := launch.ParseVMBench(r.Texts(), launch.GuestLinePrefix("bench"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range launch.VMBenchKinds {
		if b.TicksPerOp[kind] <= 0 {
			t.Errorf("%s: %v ticks/op", kind, b.TicksPerOp[kind])
		}
	}
	// 2000 of each of CPUID, IN, MMIO read and VMMCALL are exits.
	if n, ok := launch.VMExits(r.Texts(), "bench"); !ok || n < 4*2000 {
		t.Errorf("juice counted %d exits (found: %v), want at least 8000", n, ok)
	}
}

// The same guests, unchanged, on Intel VT-x with EPT: one Bochs boot
// (corei7_skylake_x) runs them all at once as one bundle, and each ends
// as it does on AMD-V.
func TestVMGuestsVTx(t *testing.T) {
	t.Parallel()
	type want struct {
		name, line, end string
	}
	cases := []want{
		{"hello", "hello from guest", "exited with status 0"},
		{"modes", "modes: long mode", "exited with status 0"},
		{"cpuid", "cpuid: ok", "exited with status 0"},
		{"mmio", "mmio: 64-bit: mov rax, moffs64 ok", "fault: "},
		{"timer", "timer: tick", "exited with status 0"},
		{"hypercall", "hypercall: version 0x00000001", "exited with status 7"},
		{"triplefault", "triplefault: empty IDT, INT3", "shut down (triple fault)"},
		{"outside", "outside: writing 0x40000000", "fault: "},
	}
	var vms []launch.VMSpec
	for _, c := range cases {
		vms = append(vms, launch.VMSpec{Name: c.name})
	}
	r := BootVMs(t, launch.Config{Mem: "256M", Emulator: launch.EmulatorBochs}, vms...)
	for _, c := range cases {
		r.Expect(GuestLine(c.name, c.line))
		r.Expect(VMEnd(c.name) + c.end)
		noFailLines(t, r, c.name)
	}
	if f := r.Find(VMEnd("mmio") + "fault: "); len(f) == 0 || !strings.Contains(f[0], "d0001000") {
		t.Errorf("mmio's fault does not name 0xd0001000: %q", f)
	}
	r.ExpectExit(0) // hello's status: the first VM's
}

// A VM whose state VM entry refuses (juice.mode=entrytest breaks the task
// register of the VM named "broken") stops with a readable message naming
// the guest-state field; juice and the other VM keep running.
func TestVMEntryFailureVTx(t *testing.T) {
	t.Parallel()
	r := BootVMs(t, launch.Config{Mem: "128M", Emulator: launch.EmulatorBochs, Append: "juice.mode=entrytest"},
		launch.VMSpec{Name: "hello"},
		launch.VMSpec{Name: "broken", Kernel: Guest(t, "hello")})
	f := r.Expect(VMEnd("broken") + "stopped (error): ")
	for _, want := range []string{"guest entry failed", "invalid guest state", "TR"} {
		if !strings.Contains(f, want) {
			t.Errorf("entry-failure line %q lacks %q", f, want)
		}
	}
	r.Expect(GuestLine("hello", "hello from guest"))
	r.Expect(VMEnd("hello") + "exited with status 0")
	r.ExpectExit(0)
}
