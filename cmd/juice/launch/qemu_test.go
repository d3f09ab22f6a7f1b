package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"juice/cmd/juice/launch/testkernel"
)

// requireQEMU skips the test when QEMU is missing, or fails it when
// JUICE_REQUIRE_EMULATORS=1.
func requireQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(DefaultQEMU); err != nil {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%s not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", DefaultQEMU)
		}
		t.Skipf("%s not found", DefaultQEMU)
	}
}

// requireISOTools is requireQEMU for the GRUB ISO tools.
func requireISOTools(t *testing.T) {
	t.Helper()
	if missing := MissingISOTools(); len(missing) > 0 {
		if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%v not found and JUICE_REQUIRE_EMULATORS=1: run `make setup`", missing)
		}
		t.Skipf("%v not found", missing)
	}
}

// argAfter returns the argument following the first occurrence of flag.
func argAfter(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

func TestQEMUArgsPVH(t *testing.T) {
	args, err := QEMUArgs(Config{Kernel: "k.elf", Append: "juice.mode=selftest a,b"}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-machine q35", "-accel tcg", "-cpu max", "-m 256M", "-smp 1", "-nographic", "-no-reboot",
		"-serial stdio -monitor none", "-device isa-debug-exit,iobase=0xf4,iosize=4", "-kernel k.elf",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q: %s", want, line)
		}
	}
	if got := argAfter(args, "-append"); got != "juice.mode=selftest a,b" {
		t.Errorf("-append %q", got)
	}
	if slices.Contains(args, "-cdrom") || slices.Contains(args, "mon:stdio") || slices.Contains(args, "-initrd") {
		t.Errorf("unexpected options: %s", line)
	}
	args, err = QEMUArgs(Config{Kernel: "k.elf", Initrd: "/tmp/b,1.cpio"}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-initrd"); got != "/tmp/b,1.cpio" {
		t.Errorf("-initrd %q", got)
	}

	args, err = QEMUArgs(Config{Kernel: "k.elf", Mem: "64M", CPUs: 4, Interactive: true, ExtraArgs: []string{"-s"}}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if argAfter(args, "-m") != "64M" || argAfter(args, "-smp") != "4" || argAfter(args, "-serial") != "mon:stdio" {
		t.Errorf("options not applied: %v", args)
	}
	if slices.Contains(args, "-monitor") || slices.Contains(args, "-append") || args[len(args)-1] != "-s" {
		t.Errorf("interactive args wrong: %v", args)
	}
	// One TCG thread per CPU unless SingleTCGThread asks for one in all.
	if got := argAfter(args, "-accel"); got != "tcg" {
		t.Errorf("-accel %q with 4 CPUs", got)
	}
	args, err = QEMUArgs(Config{Kernel: "k.elf", CPUs: 4, SingleTCGThread: true}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-accel"); got != "tcg,thread=single" {
		t.Errorf("-accel %q with SingleTCGThread", got)
	}
	// Guests on several CPUs: one thread (QEMU 7.2's MTTCG and nested SVM).
	args, err = QEMUArgs(Config{Kernel: "k.elf", CPUs: 2, Initrd: "b.cpio"}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-accel"); got != "tcg,thread=single" {
		t.Errorf("-accel %q with guests on 2 CPUs", got)
	}
	// Unless MultiTCGThreads asks for a thread per CPU (juice bench
	// --scale); one CPU needs no threads at all; both at once is an error.
	args, err = QEMUArgs(Config{Kernel: "k.elf", CPUs: 2, Initrd: "b.cpio", MultiTCGThreads: true}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-accel"); got != "tcg,thread=multi" {
		t.Errorf("-accel %q with guests on 2 CPUs and MultiTCGThreads", got)
	}
	args, err = QEMUArgs(Config{Kernel: "k.elf", CPUs: 1, Initrd: "b.cpio", MultiTCGThreads: true}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-accel"); got != "tcg" {
		t.Errorf("-accel %q with one CPU and MultiTCGThreads", got)
	}
	if _, err := QEMUArgs(Config{Kernel: "k.elf", CPUs: 2, SingleTCGThread: true, MultiTCGThreads: true}, Media{}); err == nil {
		t.Error("SingleTCGThread and MultiTCGThreads together were accepted")
	}
}

func TestQEMUArgsGRUB(t *testing.T) {
	args, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBBIOS, Append: "x", Initrd: "b.cpio"}, Media{ISO: "/tmp/j.iso"})
	if err != nil {
		t.Fatal(err)
	}
	if argAfter(args, "-cdrom") != "/tmp/j.iso" || slices.Contains(args, "-kernel") || slices.Contains(args, "-append") ||
		slices.Contains(args, "-bios") || slices.Contains(args, "-initrd") {
		t.Errorf("grub-bios args: %v", args)
	}

	split := Media{ISO: "j.iso", Firmware: Firmware{Code: "/fw/CODE.fd", Vars: "/fw/VARS.fd"}, Vars: "/w,d/vars.fd"}
	args, err = QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBEFI}, split)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	if !strings.Contains(line, "-drive if=pflash,format=raw,readonly=on,file=/fw/CODE.fd -drive if=pflash,format=raw,file=/w,,d/vars.fd") {
		t.Errorf("grub-efi pflash args: %s", line)
	}
	args, err = QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBEFI}, Media{ISO: "j.iso", Firmware: Firmware{Code: "/fw/OVMF.fd"}})
	if err != nil || argAfter(args, "-bios") != "/fw/OVMF.fd" {
		t.Errorf("grub-efi -bios args: %v, %v", args, err)
	}

	if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBBIOS}, Media{}); err == nil {
		t.Error("GRUB boot without an ISO accepted")
	}
	if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBEFI}, Media{ISO: "j.iso"}); err == nil {
		t.Error("UEFI boot without firmware accepted")
	}
	if _, err := QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBEFI}, Media{ISO: "j.iso", Firmware: split.Firmware}); err == nil {
		t.Error("split firmware without a variable store copy accepted")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{Kernel: "k", Boot: "floppy"},
		{Kernel: "k", Mem: "lots"},
		{Kernel: "k", Mem: "-1M"},
		{Kernel: "k", CPUs: -1},
		{Kernel: "k", CPUs: 1000},
	} {
		if _, err := QEMUArgs(c, Media{}); err == nil {
			t.Errorf("QEMUArgs(%+v) accepted", c)
		}
	}
	for _, s := range []string{"pvh", "grub-bios", "grub-efi"} {
		if b, err := ParseBoot(s); err != nil || string(b) != s {
			t.Errorf("ParseBoot(%q) = %q, %v", s, b, err)
		}
	}
	if _, err := ParseBoot("pxe"); err == nil {
		t.Error("ParseBoot(pxe) accepted")
	}
}

func TestShellQuote(t *testing.T) {
	got := ShellQuote([]string{"qemu", "-append", "a b", "it's", ""})
	if want := `qemu -append 'a b' 'it'\''s' ''`; got != want {
		t.Errorf("ShellQuote = %s, want %s", got, want)
	}
}

// writeKernel writes a test kernel for p into a temporary directory.
func writeKernel(t *testing.T, p testkernel.Program) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.elf")
	if err := testkernel.Write(path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// boot starts cfg and fails the test if the emulator cannot start.
func boot(t *testing.T, cfg Config) *Machine {
	t.Helper()
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("command: %s\nconsole:\n%s\nstderr:\n%s", m.CommandLine(), m.Console, m.Stderr())
		}
	})
	return m
}

// The boot paths, with the test kernel: the status the guest writes comes
// back through Result, and the command line arrives unchanged.
func TestBootPaths(t *testing.T) {
	requireQEMU(t)
	cmdline := `juice.mode=selftest it's "q" $HOME a\b ;x {y} é`
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] hello\n", ShowCmdline: true, Status: 5})
	for _, b := range []Boot{BootPVH, BootGRUBBIOS, BootGRUBEFI} {
		t.Run(string(b), func(t *testing.T) {
			if b != BootPVH {
				requireISOTools(t)
			}
			if b == BootGRUBEFI {
				if _, err := FindFirmware(); err != nil {
					if os.Getenv("JUICE_REQUIRE_EMULATORS") == "1" {
						t.Fatal(err)
					}
					t.Skip(err)
				}
			}
			t.Parallel()
			m := boot(t, Config{Kernel: kernel, Boot: b, Mem: "64M", Append: cmdline, Timeout: 2 * time.Minute})
			r := m.Wait()
			if r.Outcome != DebugExit || r.Status != 5 || r.QEMUCode != 11 || r.ExitCode() != 5 {
				t.Errorf("result %+v, want debug-exit status 5", r)
			}
			texts := m.Console.Texts()
			if !slices.Contains(texts, "hello") {
				t.Errorf("no hello line in %q", texts)
			}
			want := "cmdline: [" + cmdline + "]"
			if b != BootPVH {
				// GRUB joins the words with single spaces and
				// backslash-escapes quotes and backslashes.
				want = `cmdline: [juice.mode=selftest it\'s \"q\" $HOME a\\b ;x {y} é]`
			}
			if !slices.Contains(texts, want) {
				t.Errorf("command line not passed through: want %q in %q", want, texts)
			}
		})
	}
}

func TestHaltKeepsRunning(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] juice: fatal: unknown boot loader\n", Action: testkernel.Halt})
	m := boot(t, Config{Kernel: kernel, Mem: "32M", Timeout: 2 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Console.Wait(ctx, 0, HasPrefix("juice: fatal: unknown boot loader")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if !m.Running() {
		t.Fatalf("QEMU ended after a halt: %v", m.Wait())
	}
	r := m.Kill()
	if r.Outcome != Killed || r.ExitCode() != ExitKilled || m.Running() {
		t.Errorf("after Kill: %+v", r)
	}
	select {
	case <-m.Done():
	default:
		t.Error("Done not closed after Kill")
	}
}

func TestTripleFaultIsReset(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] about to fault\n", Action: testkernel.TripleFault})
	m := boot(t, Config{Kernel: kernel, Mem: "32M", Timeout: 2 * time.Minute})
	if r := m.Wait(); r.Outcome != Reset || r.ExitCode() != ExitReset {
		t.Errorf("result %+v, want reset", r)
	}
}

func TestTimeout(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] halting\n", Action: testkernel.Halt})
	m := boot(t, Config{Kernel: kernel, Mem: "32M", Timeout: 3 * time.Second})
	start := time.Now()
	r := m.Wait()
	if r.Outcome != TimedOut || r.ExitCode() != ExitTimeout {
		t.Errorf("result %+v, want timed out", r)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("timeout took %v", d)
	}
	if !slices.Contains(m.Console.Texts(), "halting") {
		t.Errorf("console lost: %q", m.Console.Texts())
	}
}

func TestContextCancelKills(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{Action: testkernel.Halt})
	ctx, cancel := context.WithCancel(context.Background())
	m, err := Start(ctx, Config{Kernel: kernel, Mem: "32M"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := m.Wait(); r.Outcome != Killed {
		t.Errorf("result %+v, want killed", r)
	}
}

func TestQEMUFailure(t *testing.T) {
	requireQEMU(t)
	kernel := writeKernel(t, testkernel.Program{})
	m := boot(t, Config{Kernel: kernel, ExtraArgs: []string{"-no-such-option"}, Timeout: time.Minute})
	r := m.Wait()
	if r.Outcome != QEMUFailed || r.ExitCode() != ExitQEMUFailed || !strings.Contains(r.Stderr, "no-such-option") {
		t.Errorf("result %+v, want QEMU failure naming the option", r)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), Config{Kernel: filepath.Join(t.TempDir(), "missing.elf")}); err == nil {
		t.Error("Start accepted a missing kernel")
	}
	kernel := writeKernel(t, testkernel.Program{})
	_, err := Start(context.Background(), Config{Kernel: kernel, QEMU: filepath.Join(t.TempDir(), "no-qemu")})
	if !errors.Is(err, ErrNoEmulator) {
		t.Errorf("Start with a missing emulator: err = %v, want ErrNoEmulator", err)
	}
	_, err = Start(context.Background(), Config{Kernel: kernel, QEMU: "no-such-qemu-binary"})
	if !errors.Is(err, ErrNoEmulator) {
		t.Errorf("Start with an emulator not on $PATH: err = %v, want ErrNoEmulator", err)
	}
}

// The console echo sees the same bytes as the console.
func TestEcho(t *testing.T) {
	requireQEMU(t)
	t.Parallel()
	kernel := writeKernel(t, testkernel.Program{Output: "[    0.000001] echoed\n", Status: 0})
	var echo lockedBuffer
	m := boot(t, Config{Kernel: kernel, Mem: "32M", Echo: &echo, Timeout: 2 * time.Minute})
	r := m.Wait()
	if r.Outcome != DebugExit || r.Status != 0 {
		t.Errorf("result %+v, want debug-exit status 0", r)
	}
	if echo.String() != string(m.Console.Raw()) || !strings.Contains(echo.String(), "echoed") {
		t.Errorf("echo %q differs from console %q", echo.String(), m.Console.Raw())
	}
}

// TestQEMUArgsHostNIC: a host NIC is a virtio-net-pci device without an
// option ROM on a user-mode netdev, with its MAC, slot and forwarding
// rules; bad values are refused, and Bochs refuses a host NIC.
func TestQEMUArgsHostNIC(t *testing.T) {
	args, err := QEMUArgs(Config{Kernel: "k.elf", HostNIC: &HostNIC{}}, Media{})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-netdev"); got != "user,id=hostnic" {
		t.Errorf("-netdev %q", got)
	}
	if got := argAfter(args, "-device"); got != "isa-debug-exit,iobase=0xf4,iosize=4" {
		t.Errorf("first -device %q", got)
	}
	line := strings.Join(args, " ")
	if !strings.Contains(line, "-device virtio-net-pci,netdev=hostnic,mac="+DefaultHostNICMAC+",romfile= ") {
		t.Errorf("NIC device missing: %s", line)
	}
	if !strings.Contains(line, "-nic none") {
		t.Errorf("QEMU's default NIC is back: %s", line)
	}

	args, err = QEMUArgs(Config{Kernel: "k.elf", Boot: BootGRUBBIOS, HostNIC: &HostNIC{MAC: "52:54:00:AB:CD:EF", Slot: 7,
		HostFwd: []string{"tcp:127.0.0.1:8022-:22", "udp::5353-10.0.2.15:53"}}}, Media{ISO: "j.iso"})
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(args, "-netdev"); got != "user,id=hostnic,hostfwd=tcp:127.0.0.1:8022-:22,hostfwd=udp::5353-10.0.2.15:53" {
		t.Errorf("-netdev %q", got)
	}
	if line := strings.Join(args, " "); !strings.Contains(line, "-device virtio-net-pci,netdev=hostnic,mac=52:54:00:ab:cd:ef,romfile=,addr=7") {
		t.Errorf("NIC device: %s", line)
	}
	if argAfter(args, "-cdrom") != "j.iso" {
		t.Errorf("boot medium lost: %v", args)
	}

	for _, n := range []HostNIC{
		{MAC: "52:54:00:12:34"},
		{MAC: "01:00:5e:00:00:01"},
		{MAC: "52:54:00:12:34:56,netdev=x"},
		{Slot: 32},
		{Slot: -1},
		{HostFwd: []string{"tcp::80-:80,restrict=on"}},
		{HostFwd: []string{"80-:80"}},
	} {
		if _, err := QEMUArgs(Config{Kernel: "k.elf", HostNIC: &n}, Media{}); err == nil || !strings.Contains(err.Error(), "host NIC") {
			t.Errorf("%+v: %v", n, err)
		}
	}
	if _, err := BochsRC(Config{Kernel: "k.elf", Emulator: EmulatorBochs, HostNIC: &HostNIC{}}); err == nil {
		t.Error("Bochs accepted a host NIC")
	}
}
