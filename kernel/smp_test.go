package kernel

import (
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"

	"juice/mm"
)

// decodeRun disassembles b from off in the given mode until (and
// including) the first JMP, returning the instructions as Intel syntax.
func decodeRun(t *testing.T, b []byte, off, mode int) []string {
	t.Helper()
	var out []string
	for off < len(b) {
		in, err := x86asm.Decode(b[off:], mode)
		if err != nil {
			t.Fatalf("mode %d: cannot decode at %#x: %v", mode, off, err)
		}
		out = append(out, strings.ToLower(x86asm.IntelSyntax(in, 0, nil)))
		off += in.Len
		if in.Op == x86asm.JMP || in.Op == x86asm.LJMP {
			return out
		}
	}
	t.Fatalf("mode %d: no JMP after %#x", mode, off)
	return nil
}

// trampolineCopy copies the trampoline byte by byte (go1.26.8's compiler
// trips over a memmove from the unsafe.Slice trampolineCode returns).
func trampolineCopy() []byte {
	src := trampolineCode()
	b := make([]byte, len(src))
	for i := range src {
		b[i] = src[i]
	}
	return b
}

// The trampoline is what its comments say in each of its three modes, its
// data sits at the offsets smp.go patches, and each stage jumps where the
// next one starts.
func TestTrampolineLayout(t *testing.T) {
	b := trampolineCopy()
	// The real-mode entry jumps over the data.
	if got := decodeRun(t, b, 0, 16); len(got) != 1 || got[0] != "jmp .+0x7e" {
		t.Fatalf("entry: %q", got)
	}
	want16 := []string{
		"cli", "cld", "mov ax, cs", "mov ds, ax", "xor ebx, ebx", "mov bx, cs", "shl ebx, 0x4",
		"lgdt ptr [0x8]", "mov eax, cr0", "or eax, 0x1", "mov cr0, eax", "jmp far ptr [0x30]",
	}
	want32 := []string{
		"mov ax, 0x10", "mov ds, ax", "mov es, ax", "mov ss, ax", "mov eax, cr4", "or eax, 0x20",
		"mov cr4, eax", "mov eax, dword ptr [ebx+0x38]", "mov cr3, eax", "mov ecx, 0xc0000080", "rdmsr",
		"or eax, dword ptr [ebx+0x3c]", "wrmsr", "mov eax, cr0", "and eax, 0x9ffffff3", "or eax, 0x80010023",
		"mov cr0, eax", "jmp far ptr [ebx+0x48]",
	}
	want64 := []string{"mov ebx, ebx", "mov rax, qword ptr [rbx+0x40]", "jmp rax"}
	for _, c := range []struct {
		off, mode int
		want      []string
	}{{trampCode16, 16, want16}, {trampCode32, 32, want32}, {trampCode64, 64, want64}} {
		got := decodeRun(t, b, c.off, c.mode)
		if strings.Join(got, "; ") != strings.Join(c.want, "; ") {
			t.Errorf("%d-bit code at %#x:\n got %q\nwant %q", c.mode, c.off, got, c.want)
		}
	}
	// The GDT: flat 32-bit code and data, 64-bit code.
	gdt := []uint64{0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF, 0x00209A0000000000}
	for i, w := range gdt {
		if got := binary.LittleEndian.Uint64(b[trampGDT+8*i:]); got != w {
			t.Errorf("GDT[%d] = %#x, want %#x", i, got, w)
		}
	}
	if lim := binary.LittleEndian.Uint16(b[trampGDTRBase-2:]); lim != uint16(8*len(gdt)-1) {
		t.Errorf("GDT limit %#x", lim)
	}
	if sel := binary.LittleEndian.Uint16(b[trampFar32+4:]); sel != 0x08 {
		t.Errorf("32-bit far pointer selector %#x, want 0x08", sel)
	}
	if sel := binary.LittleEndian.Uint16(b[trampFar64+4:]); sel != 0x18 {
		t.Errorf("64-bit far pointer selector %#x, want 0x18", sel)
	}

	const base = 0x9f000
	if !patchTrampoline(b, base, 0x123000, 0x900, 0x3456789a) {
		t.Fatal("patchTrampoline refused a good trampoline")
	}
	for _, c := range []struct {
		off  int
		want uint32
	}{
		{trampGDTRBase, base + trampGDT}, {trampFar32, base + trampCode32}, {trampCR3, 0x123000},
		{trampEFER, 0x900}, {trampFar64, base + trampCode64},
	} {
		if got := binary.LittleEndian.Uint32(b[c.off:]); got != c.want {
			t.Errorf("offset %#x = %#x, want %#x", c.off, got, c.want)
		}
	}
	if got := binary.LittleEndian.Uint64(b[trampEntry64:]); got != 0x3456789a {
		t.Errorf("entry = %#x", got)
	}
	// The code itself is untouched by patching.
	orig := trampolineCode()
	for off := trampCode16; off < trampSize; off++ {
		if b[off] != orig[off] {
			t.Fatalf("patching changed code byte %#x", off)
		}
	}
	for _, bad := range []uint64{0x9f800, 0x100000, 0x200000} {
		if patchTrampoline(trampolineCopy(), bad, 0, 0, 0) {
			t.Errorf("base %#x accepted", bad)
		}
	}
	if patchTrampoline(make([]byte, trampSize), base, 0, 0, 0) {
		t.Error("a page of zeros accepted as the trampoline")
	}
}

func TestTrampolineSpot(t *testing.T) {
	ram := []mm.Range{{Base: 0, End: 0x9fc00}, {Base: 0x100000, End: 0x8000000}}
	if got := trampolineSpot(ram, nil); got != 0x9e000 {
		t.Errorf("spot %#x, want 0x9e000 (the last whole page below the EBDA)", got)
	}
	avoid := []mm.Range{{Base: 0x9d800, End: 0x9e100}}
	if got := trampolineSpot(ram, avoid); got != 0x9c000 {
		t.Errorf("spot %#x, want 0x9c000", got)
	}
	if got := trampolineSpot([]mm.Range{{Base: 0, End: 0x1000}}, nil); got != 0 {
		t.Errorf("page 0 chosen: %#x", got)
	}
	if got := trampolineSpot([]mm.Range{{Base: 0x100000, End: 0x200000}}, nil); got != 0 {
		t.Errorf("a page above 640 KiB chosen: %#x", got)
	}
}

func TestCPUOrder(t *testing.T) {
	var out [4]uint32
	n, skipped := cpuOrder([]uint32{0, 2, 4, 2, 6, 8, 10}, 0, 4, out[:])
	if n != 3 || skipped != 2 || out != [4]uint32{2, 4, 6, 0} {
		t.Errorf("n %d skipped %d order %v", n, skipped, out)
	}
	n, skipped = cpuOrder([]uint32{3, 1, 2}, 1, maxCPUs, out[:])
	if n != 2 || skipped != 0 || out[0] != 3 || out[1] != 2 {
		t.Errorf("boot CPU not first in the MADT: n %d skipped %d order %v", n, skipped, out[:n])
	}
	if n, _ := cpuOrder([]uint32{5}, 5, maxCPUs, out[:]); n != 0 {
		t.Errorf("the boot CPU alone gave %d others", n)
	}
}

// pickThread honours owners (a thread another CPU runs is not taken),
// affinity and round-robin rotation.
func TestPickThread(t *testing.T) {
	defer func() { threads, threadTop = [maxThreads]thread{}, 0 }()
	threadTop = 4
	threads[0] = thread{state: tRunnable, owner: 1}           // running on CPU 0
	threads[1] = thread{state: tRunnable, affinity: 1 << 2}   // CPU 2 only
	threads[2] = thread{state: tFutex}                        // blocked
	threads[3] = thread{state: tRunnable, affinity: 1<<1 | 1} // CPUs 0, 1
	// CPU 0 keeps its thread unless asked to rotate.
	if got := pickThread(0, 0, false, 0, 1<<0); got != 0 {
		t.Errorf("cpu 0 without rotation picked %d", got)
	}
	if got := pickThread(0, 0, true, 0, 1<<0); got != 3 {
		t.Errorf("cpu 0 rotating picked %d, want 3", got)
	}
	// CPU 1 may not take CPU 0's thread nor CPU 2's.
	if got := pickThread(1, -1, false, 0, 1<<1); got != 3 {
		t.Errorf("cpu 1 picked %d, want 3", got)
	}
	if got := pickThread(2, -1, false, 0, 1<<2); got != 1 {
		t.Errorf("cpu 2 picked %d, want 1", got)
	}
	threads[1].state = tDead
	threads[3].owner = 2
	if got := pickThread(2, -1, false, 0, 1<<2); got != -1 {
		t.Errorf("cpu 2 found work: %d", got)
	}
	// A current thread that may no longer run here is passed over.
	threads[0].affinity = 1 << 1
	if got := pickThread(0, 0, false, 0, 1<<0); got != -1 {
		t.Errorf("cpu 0 kept a thread bound elsewhere: %d", got)
	}
}

// The per-CPU block's layout is what entry_amd64.s assumes: the asm
// reaches fields by go_asm.h offsets, but the stand-in g must start with
// the four words a function prologue reads, and the block is 8-aligned.
func TestPerCPULayout(t *testing.T) {
	var c perCPU
	if unsafe.Offsetof(c.self) != 0 {
		t.Error("self is not the first field")
	}
	if unsafe.Sizeof(c)%8 != 0 || unsafe.Offsetof(c.bootG)%8 != 0 || unsafe.Offsetof(c.gdt)%8 != 0 {
		t.Error("perCPU fields misaligned")
	}
	if len(c.bootG) < 4 || len(c.bootTLS) != 2 {
		t.Error("stand-in g too small")
	}
	if maxCPUs > 64 {
		t.Error("affinity masks are one uint64")
	}
}

// A kick goes to another online CPU only: never to the sender's own CPU,
// a CPU that is not online, or a number out of range.
func TestKickTarget(t *testing.T) {
	defer func(m uint64) { onlineMask = m }(onlineMask)
	onlineMask = 1<<0 | 1<<1 | 1<<3
	for _, c := range []struct {
		n    int
		me   int32
		want bool
	}{
		{1, 0, true}, {0, 1, true}, {3, 1, true},
		{0, 0, false}, {1, 1, false}, // the sender's own CPU
		{2, 0, false}, // not online
		{-1, 0, false}, {maxCPUs, 0, false}, {1 << 30, 0, false},
	} {
		got := kickTarget(c.n, c.me)
		if (got != nil) != c.want || got != nil && got != &cpus[c.n] {
			t.Errorf("kickTarget(%d) from cpu %d = %p, want a target: %v", c.n, c.me, got, c.want)
		}
	}
}

// The kick vector has its stub: stub 52 is vector 243, right after the
// other IPIs.
func TestKickVector(t *testing.T) {
	if vecKick != vecWake+numStubs-1-49 || vecKick == vecSpurious {
		t.Fatalf("vecKick %#x is not the last stub's vector (vecWake+%d)", vecKick, numStubs-1-49)
	}
}
