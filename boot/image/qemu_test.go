package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"juice/boot/image/testkernel"
)

// bootQEMU boots QEMU with args plus an isa-debug-exit device and returns
// its exit status; the test kernel's entry ends the run by writing to
// port 0xf4.
func bootQEMU(t *testing.T, timeout time.Duration, args ...string) int {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append([]string{"-machine", "q35", "-m", "128M",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=4",
		"-display", "none", "-nographic", "-no-reboot", "-monitor", "none"}, args...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not exit within %v; output:\n%s", timeout, out)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running QEMU: %v", err)
	}
	if cmd.ProcessState.ExitCode() == 1 {
		t.Logf("QEMU output:\n%s", out)
	}
	return cmd.ProcessState.ExitCode()
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := WriteFileAtomic(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestQEMUDirectKernel boots the patched test kernel with QEMU -kernel.
// The plain image must be entered through the PVH note (QEMU refuses an
// ELF without it); the Multiboot1Test image must be entered through
// QEMU's multiboot v1 loader (which QEMU tries first), i.e. loaded as a
// flat binary via the a.out-kludge fields.
func TestQEMUDirectKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU")
	}
	raw := kernel(t)
	for _, c := range []struct {
		name string
		mb1  bool
		code int
	}{
		{"pvh", false, testkernel.CodePVH},
		{"multiboot1", true, testkernel.CodeMultiboot1},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, _, err := Patch(raw, Options{EntrySymbol: testkernel.EntrySymbol, Multiboot1Test: c.mb1})
			if err != nil {
				t.Fatal(err)
			}
			got := bootQEMU(t, 20*time.Second, "-kernel", writeTemp(t, "k.elf", img))
			if want := testkernel.ExitStatus(c.code); got != want {
				t.Fatalf("QEMU exit status %d, want %d (entry code %#x)", got, want, c.code)
			}
		})
	}
	t.Run("unpatched", func(t *testing.T) {
		// The control: without the note QEMU refuses the ELF.
		if got := bootQEMU(t, 20*time.Second, "-kernel", writeTemp(t, "raw.elf", raw)); got != 1 {
			t.Fatalf("QEMU exit status %d for the unpatched ELF, want 1 (no PVH note)", got)
		}
	})
}

// TestGRUBMultiboot2 puts the patched test kernel on a GRUB rescue ISO
// with "multiboot2 /boot/juice.elf" and checks that GRUB enters it with
// the multiboot2 magic.
func TestGRUBMultiboot2(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a GRUB ISO and boots QEMU")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	mkrescue, err := exec.LookPath("grub-mkrescue")
	if err != nil {
		t.Skip("grub-mkrescue not installed")
	}
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso not installed")
	}
	if _, err := os.Stat("/usr/lib/grub/i386-pc/multiboot2.mod"); err != nil {
		t.Skip("GRUB i386-pc modules not installed")
	}
	img, _, err := Patch(kernel(t), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "iso")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "set timeout=0\nmenuentry juice {\n  multiboot2 /boot/juice.elf\n  boot\n}\n"
	if err := os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "boot", "juice.elf"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "juice.iso")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, mkrescue, "-d", "/usr/lib/grub/i386-pc", "-o", iso, root).CombinedOutput(); err != nil {
		t.Skipf("grub-mkrescue failed (incomplete GRUB install?): %v\n%s", err, out)
	}
	got := bootQEMU(t, 60*time.Second, "-cdrom", iso, "-boot", "d")
	if want := testkernel.ExitStatus(testkernel.CodeMultiboot2); got != want {
		t.Fatalf("QEMU exit status %d, want %d (entered with the multiboot2 magic)", got, want)
	}
}
