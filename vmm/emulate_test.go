package vmm

import (
	"encoding/binary"
	"testing"
)

// mmioCase is one emulated MMIO instruction.
type mmioCase struct {
	name  string
	code  []byte
	setup func(v *VCPU)
	gpa   uint64 // the exit's faulting address
	write bool
	read  uint64 // what the device returns
	// Expectations.
	adv   uint64                      // RIP advance (ignored when stop or vector is set)
	dev   *devAccess                  // the last device write, if any
	check func(t *testing.T, v *VCPU) // extra checks
	rip   uint64                      // RIP, when not the caller's
	stop  string                      // the VM stops with Fault and this message part
	vec   int                         // an exception is queued (vector+1; 0: none)
	pfec  uint32
}

type devAccess struct {
	off  uint64
	size uint8
	val  uint64
}

func u64le(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}

func u32le(v uint32) []byte {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return b[:]
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

const junk = 0xa5a5a5a5_a5a5a5a5

func regs(f func(r *Regs)) func(v *VCPU) {
	return func(v *VCPU) { f(&v.Regs) }
}

func wantReg(name string, get func(r *Regs) uint64, want uint64) func(t *testing.T, v *VCPU) {
	return func(t *testing.T, v *VCPU) {
		t.Helper()
		if got := get(&v.Regs); got != want {
			t.Fatalf("%s = %#x, want %#x", name, got, want)
		}
	}
}

func rax(r *Regs) uint64 { return r.RAX }
func rcx(r *Regs) uint64 { return r.RCX }
func rdi(r *Regs) uint64 { return r.RDI }
func rsi(r *Regs) uint64 { return r.RSI }

func runMMIOCase(t *testing.T, e *longEnv, tc mmioCase, rip uint64) {
	t.Helper()
	if tc.rip != 0 {
		rip = tc.rip
	}
	v := e.v
	v.Regs = Regs{RAX: junk, RBX: junk, RCX: junk, RDX: junk, RSI: junk, RDI: junk, RBP: junk, R8: junk, RFLAGS: v.Regs.RFLAGS}
	if tc.setup != nil {
		tc.setup(v)
	}
	loadSRegs(v)
	e.dev.readVal = tc.read
	e.dev.writes = 0
	e.script(0, fakeStep{exit: Exit{Reason: ExitMMIO, GPA: tc.gpa, Write: tc.write}, rip: rip, setRIP: true})
	e.step(v)
	r, _, msg := e.Stopped()
	if tc.stop != "" {
		e.wantStop(t, Fault, tc.stop)
		return
	}
	if r != Running {
		t.Fatalf("VM stopped: %s", msg)
	}
	if tc.vec != 0 {
		if !v.HasPending || int(v.Pending.Vector) != tc.vec-1 || v.Pending.ErrCode != tc.pfec {
			t.Fatalf("pending %v %+v, want vector %d error %#x", v.HasPending, v.Pending, tc.vec-1, tc.pfec)
		}
		if v.Regs.RIP != rip {
			t.Fatalf("RIP moved to %#x on an exception", v.Regs.RIP)
		}
		return
	}
	if v.HasPending {
		t.Fatalf("unexpected event %+v", v.Pending)
	}
	if got := v.Regs.RIP - rip; got != tc.adv {
		t.Fatalf("RIP advanced %d, want %d", got, tc.adv)
	}
	if tc.dev != nil {
		if e.dev.writes == 0 || e.dev.lastOff != tc.dev.off || e.dev.lastSize != tc.dev.size || e.dev.lastWrite != tc.dev.val {
			t.Fatalf("device write off %#x size %d val %#x (writes %d), want %+v",
				e.dev.lastOff, e.dev.lastSize, e.dev.lastWrite, e.dev.writes, *tc.dev)
		}
	}
	if tc.check != nil {
		tc.check(t, v)
	}
}

func TestEmulateMMIO64(t *testing.T) {
	dev := uint64(envDevGPA)
	cases := []mmioCase{
		{name: "mov [rax],ebx", code: []byte{0x89, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RBX = dev+8, 0x1122334455667788 }),
			adv:   2, dev: &devAccess{8, 4, 0x55667788}},
		{name: "mov [rax],rbx", code: []byte{0x48, 0x89, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RBX = dev+8, 0x1122334455667788 }),
			adv:   3, dev: &devAccess{8, 8, 0x1122334455667788}},
		{name: "mov [rax],bx", code: []byte{0x66, 0x89, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RBX = dev+8, 0x1122334455667788 }),
			adv:   3, dev: &devAccess{8, 2, 0x7788}},
		{name: "mov [rax],bl", code: []byte{0x88, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RBX = dev+8, 0x1122334455667788 }),
			adv:   2, dev: &devAccess{8, 1, 0x88}},
		{name: "mov [rax],bh", code: []byte{0x88, 0x38}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RBX = dev+8, 0x1122334455667788 }),
			adv:   2, dev: &devAccess{8, 1, 0x77}},
		{name: "mov [rax],dil", code: []byte{0x40, 0x88, 0x38}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.RDI = dev+8, 0x1122334455667799 }),
			adv:   3, dev: &devAccess{8, 1, 0x99}},
		{name: "mov [rax],r8d", code: []byte{0x44, 0x89, 0x00}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX, r.R8 = dev+8, 0x1122334455667788 }),
			adv:   3, dev: &devAccess{8, 4, 0x55667788}},
		{name: "mov [r8],eax", code: []byte{0x41, 0x89, 0x00}, gpa: dev + 0x40, write: true,
			setup: regs(func(r *Regs) { r.R8, r.RAX = dev+0x40, 0xabcdef01 }),
			adv:   3, dev: &devAccess{0x40, 4, 0xabcdef01}},
		{name: "mov eax,[rbx]", code: []byte{0x8b, 0x03}, gpa: dev, read: 0xcafef00d,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   2, check: wantReg("RAX", rax, 0xcafef00d)},
		{name: "mov rax,[rbx]", code: []byte{0x48, 0x8b, 0x03}, gpa: dev, read: 0xdeadbeefcafef00d,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, 0xdeadbeefcafef00d)},
		{name: "mov ax,[rbx]", code: []byte{0x66, 0x8b, 0x03}, gpa: dev, read: 0xf00d,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, junk&^0xffff|0xf00d)},
		{name: "mov ah,[rbx]", code: []byte{0x8a, 0x23}, gpa: dev, read: 0x42,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   2, check: wantReg("RAX", rax, junk&^0xff00|0x4200)},
		{name: "mov al,[rbx]", code: []byte{0x8a, 0x03}, gpa: dev, read: 0x42,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   2, check: wantReg("RAX", rax, junk&^0xff|0x42)},
		{name: "mov r9b,[rbx]", code: []byte{0x44, 0x8a, 0x0b}, gpa: dev, read: 0x42,
			setup: regs(func(r *Regs) { r.RBX, r.R9 = dev, 0x1111 }),
			adv:   3, check: wantReg("R9", func(r *Regs) uint64 { return r.R9 }, 0x1142)},
		{name: "mov dword [rax],imm", code: []byte{0xc7, 0x00, 0x78, 0x56, 0x34, 0x12}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }),
			adv:   6, dev: &devAccess{0, 4, 0x12345678}},
		{name: "mov qword [rax],-1", code: []byte{0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }),
			adv:   7, dev: &devAccess{0, 8, 0xffffffffffffffff}},
		{name: "mov word [rax],imm", code: []byte{0x66, 0xc7, 0x00, 0x34, 0x12}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }),
			adv:   5, dev: &devAccess{0, 2, 0x1234}},
		{name: "mov byte [rax+0x10],imm", code: []byte{0xc6, 0x40, 0x10, 0xab}, gpa: dev + 0x10, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }),
			adv:   4, dev: &devAccess{0x10, 1, 0xab}},
		{name: "movzx eax,byte [rbx]", code: []byte{0x0f, 0xb6, 0x03}, gpa: dev, read: 0x80,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, 0x80)},
		{name: "movzx eax,word [rbx]", code: []byte{0x0f, 0xb7, 0x03}, gpa: dev, read: 0x8001,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, 0x8001)},
		{name: "movzx ax,byte [rbx]", code: []byte{0x66, 0x0f, 0xb6, 0x03}, gpa: dev, read: 0x80,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   4, check: wantReg("RAX", rax, junk&^0xffff|0x80)},
		{name: "movsx rax,byte [rbx]", code: []byte{0x48, 0x0f, 0xbe, 0x03}, gpa: dev, read: 0x80,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   4, check: wantReg("RAX", rax, 0xffffffffffffff80)},
		{name: "movsx eax,word [rbx]", code: []byte{0x0f, 0xbf, 0x03}, gpa: dev, read: 0x8000,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, 0xffff8000)},
		{name: "movsxd rax,[rbx]", code: []byte{0x48, 0x63, 0x03}, gpa: dev, read: 0x80000000,
			setup: regs(func(r *Regs) { r.RBX = dev }),
			adv:   3, check: wantReg("RAX", rax, 0xffffffff80000000)},
		{name: "mov eax,[rbx+rcx*4+0x10]", code: []byte{0x8b, 0x44, 0x8b, 0x10}, gpa: dev + 0x18, read: 7,
			setup: regs(func(r *Regs) { r.RBX, r.RCX = dev, 2 }),
			adv:   4, check: func(t *testing.T, v *VCPU) {
				if v.Regs.RAX != 7 || v.VM.mmio.ranges[0].dev.(*recDevice).lastOff != 0x18 {
					t.Fatalf("RAX %#x", v.Regs.RAX)
				}
			}},
		{name: "mov eax,[rax+r8*4]", code: []byte{0x42, 0x8b, 0x04, 0x80}, gpa: dev + 12, read: 9,
			setup: regs(func(r *Regs) { r.RAX, r.R8 = dev, 3 }),
			adv:   4, check: wantReg("RAX", rax, 9)},
		{name: "mov eax,[rip+disp32]", code: cat([]byte{0x8b, 0x05}, u32le(uint32(envDevNearVA+0x20-(envCodeVA+6)))), gpa: dev + 0x20, read: 5,
			adv: 6, check: wantReg("RAX", rax, 5)},
		{name: "mov dword [rip+disp32],imm32", code: cat([]byte{0xc7, 0x05}, u32le(uint32(envDevNearVA+0x24-(envCodeVA+10))), u32le(0x99)),
			gpa: dev + 0x24, write: true, adv: 10, dev: &devAccess{0x24, 4, 0x99}},
		{name: "mov eax,[moffs64]", code: cat([]byte{0xa1}, u64le(dev+0x30)), gpa: dev + 0x30, read: 3,
			adv: 9, check: wantReg("RAX", rax, 3)},
		{name: "mov [moffs64],eax", code: cat([]byte{0xa3}, u64le(dev+0x34)), gpa: dev + 0x34, write: true,
			setup: regs(func(r *Regs) { r.RAX = 0x1234 }),
			adv:   9, dev: &devAccess{0x34, 4, 0x1234}},
		{name: "mov eax,gs:[rbx]", code: []byte{0x65, 0x8b, 0x03}, gpa: dev + 0x28, read: 1,
			setup: func(v *VCPU) { v.Regs.RBX = 0x28; v.SRegs.GS.Base = dev },
			adv:   3, check: wantReg("RAX", rax, 1)},
		{name: "ds override ignored in 64-bit mode", code: []byte{0x3e, 0x8b, 0x03}, gpa: dev + 0x28, read: 1,
			setup: func(v *VCPU) { v.Regs.RBX = dev + 0x28; v.SRegs.DS.Base = 0x1000 },
			adv:   3, check: wantReg("RAX", rax, 1)},
		{name: "mov eax,[ebx] addr32", code: []byte{0x67, 0x8b, 0x03}, gpa: dev + 0x30, read: 2,
			setup: regs(func(r *Regs) { r.RBX = 0xffffffff_00000000 | (dev + 0x30) }),
			adv:   3, check: wantReg("RAX", rax, 2)},
		{name: "mov eax,[rbp+8] (SS)", code: []byte{0x8b, 0x45, 0x08}, gpa: dev + 8, read: 4,
			setup: regs(func(r *Regs) { r.RBP = dev }),
			adv:   3, check: wantReg("RAX", rax, 4)},
		{name: "stosb", code: []byte{0xaa}, gpa: dev + 0x20, write: true,
			setup: regs(func(r *Regs) { r.RDI, r.RAX = dev+0x20, 0x1234 }),
			adv:   1, dev: &devAccess{0x20, 1, 0x34}, check: wantReg("RDI", rdi, dev+0x21)},
		{name: "rep stosd", code: []byte{0xf3, 0xab}, gpa: dev + 0x20, write: true,
			setup: regs(func(r *Regs) { r.RDI, r.RAX, r.RCX = dev+0x20, 0x55, 3 }),
			adv:   2, dev: &devAccess{0x28, 4, 0x55}, check: func(t *testing.T, v *VCPU) {
				if v.Regs.RCX != 0 || v.Regs.RDI != dev+0x2c {
					t.Fatalf("RCX %#x RDI %#x", v.Regs.RCX, v.Regs.RDI)
				}
			}},
		{name: "rep stosq backwards", code: []byte{0xf3, 0x48, 0xab}, gpa: dev + 0x20, write: true,
			setup: func(v *VCPU) { v.Regs.RDI, v.Regs.RAX, v.Regs.RCX = dev+0x20, 7, 2; v.Regs.RFLAGS |= rflagsDF },
			adv:   3, dev: &devAccess{0x18, 8, 7}, check: wantReg("RDI", rdi, dev+0x10)},
		{name: "rep stosd rcx=0", code: []byte{0xf3, 0xab}, gpa: dev + 0x20, write: true,
			setup: regs(func(r *Regs) { r.RDI, r.RCX = dev+0x20, 0 }),
			adv:   2, check: wantReg("RDI", rdi, dev+0x20)},
		{name: "rep stosd leaves the page", code: []byte{0xf3, 0xab}, gpa: dev + 0xff8, write: true,
			setup: regs(func(r *Regs) { r.RDI, r.RAX, r.RCX = dev+0xff8, 1, 5 }),
			adv:   0, check: func(t *testing.T, v *VCPU) {
				if v.Regs.RCX != 3 || v.Regs.RDI != dev+0x1000 {
					t.Fatalf("RCX %#x RDI %#x: want 2 elements done, RIP kept", v.Regs.RCX, v.Regs.RDI)
				}
			}},
		{name: "lodsb", code: []byte{0xac}, gpa: dev + 5, read: 0x7e,
			setup: regs(func(r *Regs) { r.RSI = dev + 5 }),
			adv:   1, check: func(t *testing.T, v *VCPU) {
				if v.Regs.RAX != junk&^0xff|0x7e || v.Regs.RSI != dev+6 {
					t.Fatalf("RAX %#x RSI %#x", v.Regs.RAX, v.Regs.RSI)
				}
			}},
		{name: "movsb device to RAM", code: []byte{0xa4}, gpa: dev + 3, read: 0x61,
			setup: regs(func(r *Regs) { r.RSI, r.RDI = dev+3, envDataVA+0x10 }),
			adv:   1, check: func(t *testing.T, v *VCPU) {
				b, _ := v.VM.Mem.Read(envDataPA+0x10, 1)
				if b != 0x61 || v.Regs.RSI != dev+4 || v.Regs.RDI != envDataVA+0x11 {
					t.Fatalf("RAM %#x RSI %#x RDI %#x", b, v.Regs.RSI, v.Regs.RDI)
				}
			}},
		{name: "rep movsd RAM to device", code: []byte{0xf3, 0xa5}, gpa: dev + 0x40, write: true,
			setup: func(v *VCPU) {
				v.VM.Mem.Write(envDataPA+0x20, 8, 0x0000000b_0000000a)
				v.Regs.RSI, v.Regs.RDI, v.Regs.RCX = envDataVA+0x20, dev+0x40, 2
			},
			adv: 2, dev: &devAccess{0x44, 4, 0xb}, check: wantReg("RCX", rcx, 0)},
		{name: "movsw RAM straddling pages to device", code: []byte{0x66, 0xa5}, gpa: dev + 0x40, write: true,
			setup: func(v *VCPU) {
				v.VM.Mem.Write(envDataPA+0xfff, 1, 0x34)
				v.VM.Mem.Write(envData1PA, 1, 0x12)
				v.Regs.RSI, v.Regs.RDI = envDataVA+0xfff, dev+0x40
			},
			adv: 2, dev: &devAccess{0x40, 2, 0x1234}, check: wantReg("RSI", rsi, envDataVA+0x1001)},

		// Refusals.
		{name: "add [rax],ebx", code: []byte{0x01, 0x18}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }), stop: "cannot emulate ADD [RAX], EBX at RIP 0x400000"},
		{name: "xchg", code: []byte{0x87, 0x18}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }), stop: "cannot emulate XCHG"},
		{name: "mov ds,[rax]", code: []byte{0x8e, 0x18}, gpa: dev,
			setup: regs(func(r *Regs) { r.RAX = dev }), stop: "cannot emulate MOV DS"},
		{name: "movdqa", code: []byte{0x66, 0x0f, 0x6f, 0x00}, gpa: dev,
			setup: regs(func(r *Regs) { r.RAX = dev }), stop: "cannot emulate MOVDQA"},
		{name: "ud2", code: []byte{0x0f, 0x0b}, gpa: dev, stop: "cannot emulate UD2"},
		{name: "garbage", code: []byte{0x0f, 0x04}, gpa: dev, stop: "cannot emulate the instruction at RIP 0x400000 (bytes 0f 04"},
		{name: "prefixes only", code: []byte{0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66}, gpa: dev,
			stop: "cannot emulate the instruction at RIP 0x400000 (bytes 66 66"},
		{name: "lock mov", code: []byte{0xf0, 0x89, 0x18}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev }), vec: VectorUD + 1},
		{name: "points at RAM", code: []byte{0x89, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX = envDataVA }), stop: "accesses guest-physical 0x30000 (4 bytes), but the MMIO fault was at 0xd0000008"},
		{name: "points at another device page", code: []byte{0x89, 0x18}, gpa: dev + 8, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev + 0x1008 }), stop: "but the MMIO fault was at 0xd0000008"},
		{name: "straddles a page", code: []byte{0x89, 0x18}, gpa: dev + 0xffe, write: true,
			setup: regs(func(r *Regs) { r.RAX = dev + 0xffe }), stop: "MMIO fault was at 0xd0000ffe"},
		{name: "read-only page", code: []byte{0x89, 0x18}, gpa: envDev2GPA, write: true,
			setup: regs(func(r *Regs) { r.RAX = envDev2GPA }), vec: VectorPF + 1, pfec: pfP | pfW},
		{name: "unmapped page", code: []byte{0x89, 0x18}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = 0x7fff0000 }), vec: VectorPF + 1, pfec: pfW},
		{name: "non-canonical", code: []byte{0x89, 0x18}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RAX = 0x0000_8000_0000_0000 }), vec: VectorGP + 1},
		{name: "non-canonical stack", code: []byte{0x89, 0x45, 0x00}, gpa: dev, write: true,
			setup: regs(func(r *Regs) { r.RBP = 0x0000_8000_0000_0000 }), vec: VectorSS + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newLongEnv(t)
			e.code(t, tc.code...)
			runMMIOCase(t, e, tc, envCodeVA)
			if tc.vec == VectorPF+1 {
				if e.v.SRegs.CR2 == 0 || !e.v.SRegsDirty {
					t.Fatalf("CR2 %#x not set", e.v.SRegs.CR2)
				}
			}
		})
	}
}

// TestEmulateMMIOUserMode: CPL 3 code may only use user pages.
func TestEmulateMMIOUserMode(t *testing.T) {
	e := newLongEnv(t)
	e.pt.map4K(envUserVA+0x1000, envDevGPA, fP|fRW|fUS) // the device, user-accessible
	user := func(v *VCPU) {
		v.SRegs.CS.Attr |= SegDPL3
		v.SRegs.SS.Attr |= SegDPL3
	}
	// Code on a supervisor page: the fetch faults.
	e.code(t, 0x89, 0x18)
	runMMIOCase(t, e, mmioCase{code: nil, gpa: envDevGPA, write: true,
		setup: func(v *VCPU) { user(v); v.Regs.RAX = envUserVA + 0x1000 },
		vec:   VectorPF + 1, pfec: pfP | pfU | pfID}, envCodeVA)
	if e.v.SRegs.CR2 != envCodeVA {
		t.Fatalf("CR2 %#x", e.v.SRegs.CR2)
	}
	// Code on the user page, supervisor data: #PF.
	writeRAM(t, e.Mem, envUserPA, []byte{0x89, 0x18})
	e.v.HasPending = false
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true,
		setup: func(v *VCPU) { user(v); v.Regs.RAX = envDevGPA },
		vec:   VectorPF + 1, pfec: pfP | pfU | pfW}, envUserVA)
	// Code and data on user pages: emulated.
	e.v.HasPending = false
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA + 4, write: true,
		setup: func(v *VCPU) { user(v); v.Regs.RAX, v.Regs.RBX = envUserVA+0x1004, 0x77 },
		adv:   2, dev: &devAccess{4, 4, 0x77}}, envUserVA)
	// SMAP: a supervisor access to a user page faults unless RFLAGS.AC.
	e.v.SRegs.CS.Attr &^= SegDPL3
	e.v.SRegs.SS.Attr &^= SegDPL3
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true,
		setup: func(v *VCPU) { v.SRegs.CR4 |= cr4SMAP; v.Regs.RAX = envUserVA + 0x1000 },
		vec:   VectorPF + 1, pfec: pfP | pfW}, envCodeVA)
	e.v.HasPending = false
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true,
		setup: func(v *VCPU) {
			v.SRegs.CR4 |= cr4SMAP
			v.Regs.RFLAGS |= rflagsAC
			v.Regs.RAX, v.Regs.RBX = envUserVA+0x1000, 1
		},
		adv: 2, dev: &devAccess{0, 4, 1}}, envCodeVA)
}

// TestEmulateMMIO32And16: the same instructions decode differently by mode.
func TestEmulateMMIO32And16(t *testing.T) {
	const dev = envDevGPA
	const codeAt = 0x20000 // paging off: linear = physical
	flat := func(f func(v *VCPU)) func(v *VCPU) {
		return func(v *VCPU) {
			setFlat32(v)
			if f != nil {
				f(v)
			}
		}
	}
	// 16-bit code at codeAt: CS base codeAt-0x1000, IP 0x1000.
	pm16 := func(f func(v *VCPU)) func(v *VCPU) {
		return func(v *VCPU) {
			setFlat32(v)
			v.SRegs.CS.Attr &^= SegDB
			v.SRegs.CS.Base = codeAt - 0x1000
			if f != nil {
				f(v)
			}
		}
	}
	cases := []mmioCase{
		{name: "32: mov [eax],ebx", code: []byte{0x89, 0x18}, gpa: dev + 8, write: true,
			setup: flat(func(v *VCPU) { v.Regs.RAX, v.Regs.RBX = dev+8, 0x11223344 }), adv: 2, dev: &devAccess{8, 4, 0x11223344}},
		{name: "32: 48 is dec eax, not REX", code: []byte{0x48, 0x89, 0x18}, gpa: dev + 8, write: true,
			setup: flat(func(v *VCPU) { v.Regs.RAX = dev + 8 }), stop: "cannot emulate DEC EAX"},
		{name: "32: mov [eax],bx", code: []byte{0x66, 0x89, 0x18}, gpa: dev + 8, write: true,
			setup: flat(func(v *VCPU) { v.Regs.RAX, v.Regs.RBX = dev+8, 0x11223344 }), adv: 3, dev: &devAccess{8, 2, 0x3344}},
		{name: "32: mov [bx],eax with 67 and a DS base", code: []byte{0x67, 0x89, 0x07}, gpa: dev + 0x10, write: true,
			setup: flat(func(v *VCPU) { v.SRegs.DS.Base = dev; v.Regs.RBX, v.Regs.RAX = 0xffff0010, 5 }), adv: 3, dev: &devAccess{0x10, 4, 5}},
		{name: "32: eax+disp wraps at 4 GiB", code: []byte{0x8b, 0x80, 0x10, 0x00, 0x00, 0x00}, gpa: dev + 0x10, read: 6,
			setup: flat(func(v *VCPU) { v.Regs.RAX = 0xffffffff_00000000 | dev }), adv: 6, check: wantReg("RAX", rax, 6)},
		{name: "32: mov eax,[moffs32]", code: cat([]byte{0xa1}, u32le(dev+0x30)), gpa: dev + 0x30, read: 3,
			setup: flat(nil), adv: 5, check: wantReg("RAX", rax, 3)},
		{name: "32: rep stosb", code: []byte{0xf3, 0xaa}, gpa: dev + 0x20, write: true,
			setup: flat(func(v *VCPU) { v.Regs.RDI, v.Regs.RCX, v.Regs.RAX = dev+0x20, 4, 0xee }),
			adv:   2, dev: &devAccess{0x23, 1, 0xee}, check: wantReg("RCX", rcx, 0)},
		{name: "16 (pm): mov [bx+si],ax", rip: 0x1000, code: []byte{0x89, 0x00}, gpa: dev + 0x30, write: true,
			setup: pm16(func(v *VCPU) { v.SRegs.DS.Base = dev; v.Regs.RBX, v.Regs.RSI, v.Regs.RAX = 0x10, 0x20, 0xabcd }),
			adv:   2, dev: &devAccess{0x30, 2, 0xabcd}},
		{name: "16 (pm): 66 makes it 32-bit", rip: 0x1000, code: []byte{0x66, 0x89, 0x00}, gpa: dev + 0x30, write: true,
			setup: pm16(func(v *VCPU) { v.SRegs.DS.Base = dev; v.Regs.RBX, v.Regs.RSI, v.Regs.RAX = 0x10, 0x20, 0x12345678 }),
			adv:   3, dev: &devAccess{0x30, 4, 0x12345678}},
		{name: "16 (pm): [bp+di] uses SS", rip: 0x1000, code: []byte{0x8b, 0x03}, gpa: dev + 0x44, read: 0x99,
			setup: pm16(func(v *VCPU) { v.SRegs.SS.Base = dev; v.Regs.RBP, v.Regs.RDI = 0x40, 4 }),
			adv:   2, check: wantReg("RAX", rax, junk&^0xffff|0x99)},
		{name: "16 (pm): offsets wrap at 64 KiB", rip: 0x1000, code: []byte{0x89, 0x47, 0x20}, gpa: dev + 0x10, write: true,
			setup: pm16(func(v *VCPU) { v.SRegs.DS.Base = dev; v.Regs.RBX, v.Regs.RAX = 0xfff0, 1 }),
			adv:   3, dev: &devAccess{0x10, 2, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newLongEnv(t)
			writeRAM(t, e.Mem, codeAt, tc.code)
			runMMIOCase(t, e, tc, codeAt)
		})
	}
}

// TestEmulateRealMode: real mode, CS:IP and DS from selectors.
func TestEmulateRealMode(t *testing.T) {
	tv := newTestVM(t, Config{})
	dev := &recDevice{}
	if err := tv.MMIO().Register(0xa0000, 0x10000, dev); err != nil {
		t.Fatal(err)
	}
	v := tv.VCPU(0)
	// After Reset: real mode. Put code at 0x7c00 (CS 0, IP 0x7c00).
	v.SRegs.CS = Segment{Selector: 0, Base: 0, Limit: 0xffff, Attr: SegP | SegS | 0xb}
	v.SRegs.DS = Segment{Selector: 0xa000, Base: 0xa0000, Limit: 0xffff, Attr: SegP | SegS | 0x3}
	writeRAM(t, tv.Mem, 0x7c00, []byte{0xc7, 0x47, 0x02, 0x41, 0x0f}) // mov word [bx+2], 0x0f41
	v.Regs.RBX = 0x100
	tv.script(0, fakeStep{exit: Exit{Reason: ExitMMIO, GPA: 0xa0102, Write: true}, rip: 0x7c00, setRIP: true})
	tv.step(v)
	tv.wantRunning(t)
	if dev.lastOff != 0x102 || dev.lastSize != 2 || dev.lastWrite != 0x0f41 || v.Regs.RIP != 0x7c05 {
		t.Fatalf("device %+v RIP %#x", dev, v.Regs.RIP)
	}
}

// TestEmulateFetchEdgeCases: instruction bytes across pages and
// page tables outside RAM.
func TestEmulateFetchEdgeCases(t *testing.T) {
	e := newLongEnv(t)
	// "mov [rax], ebx" split across the 2nd and 3rd code pages.
	writeRAM(t, e.Mem, envCodePA+0x1fff, []byte{0x89})
	writeRAM(t, e.Mem, envCodePA+0x2000, []byte{0x18})
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true,
		setup: regs(func(r *Regs) { r.RAX, r.RBX = envDevGPA, 3 }), adv: 2, dev: &devAccess{0, 4, 3}}, envCodeVA+0x1fff)

	// Split onto an unmapped page: #PF at the second page.
	writeRAM(t, e.Mem, envCodePA+0x2fff, []byte{0x89})
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true,
		setup: regs(func(r *Regs) { r.RAX = envDevGPA }), vec: VectorPF + 1, pfec: pfID}, envCodeVA+0x2fff)
	if e.v.SRegs.CR2 != envCodeVA+0x3000 {
		t.Fatalf("CR2 %#x", e.v.SRegs.CR2)
	}

	// Code mapped on device memory: the VM stops.
	e.v.HasPending = false
	e.pt.map4K(0x800000, envDevGPA, fP|fRW)
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, stop: "instruction fetch at linear 0x800000: guest-physical 0xd0000000 is not RAM"}, 0x800000)

	// A page table pointing outside RAM: the VM stops.
	e2 := newLongEnv(t)
	e2.Mem.Write(envPT, 8, 0xfe000000|pteP|pteRW) // PML4[0] -> non-RAM
	runMMIOCase(t, e2, mmioCase{gpa: envDevGPA, stop: "guest page-table entry at guest-physical 0xfe000000 is not RAM"}, envCodeVA)

	// CR3 itself outside RAM.
	e3 := newLongEnv(t)
	runMMIOCase(t, e3, mmioCase{gpa: envDevGPA, setup: func(v *VCPU) { v.SRegs.CR3 = 1 << 40 },
		stop: "guest page-table entry at guest-physical 0x10000000000 is not RAM"}, envCodeVA)
}

// TestDecodeCache: a hit reuses the decode; different bytes or mode miss.
func TestDecodeCache(t *testing.T) {
	e := newLongEnv(t)
	e.code(t, 0x89, 0x18)
	tc := mmioCase{gpa: envDevGPA, write: true, setup: regs(func(r *Regs) { r.RAX, r.RBX = envDevGPA, 1 }), adv: 2, dev: &devAccess{0, 4, 1}}
	runMMIOCase(t, e, tc, envCodeVA)
	if e.v.c.decodeNext != 1 {
		t.Fatalf("decodes %d", e.v.c.decodeNext)
	}
	runMMIOCase(t, e, tc, envCodeVA)
	if e.v.c.decodeNext != 1 {
		t.Fatal("hit decoded again")
	}
	// The guest rewrites the instruction: the new bytes are decoded.
	e.code(t, 0x88, 0x18)
	tc.dev = &devAccess{0, 1, 1}
	runMMIOCase(t, e, tc, envCodeVA)
	if e.v.c.decodeNext != 2 {
		t.Fatal("changed bytes hit the cache")
	}
	// More distinct instructions than slots: still correct.
	for i := 0; i < 2*decodeCacheSize; i++ {
		e.code(t, 0xc6, 0x00, byte(i)) // mov byte [rax], i
		runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true, setup: regs(func(r *Regs) { r.RAX = envDevGPA }),
			adv: 3, dev: &devAccess{0, 1, uint64(i)}}, envCodeVA)
	}
}

// TestEmulateBadDeviceAccess: accesses that do not fit one device stop
// the VM.
func TestEmulateBadDeviceAccess(t *testing.T) {
	e := newLongEnv(t)
	small := &recDevice{}
	if err := e.MMIO().Register(0xd0010000, 4, small); err != nil {
		t.Fatal(err)
	}
	e.pt.map4K(0xd0010000, 0xd0010000, fP|fRW)
	e.code(t, 0x48, 0x8b, 0x03) // mov rax, [rbx]
	runMMIOCase(t, e, mmioCase{gpa: 0xd0010000, setup: regs(func(r *Regs) { r.RBX = 0xd0010000 }),
		stop: "guest-physical address 0xd0010000 (8 bytes) is not RAM or a device"}, envCodeVA)
	if small.reads != 0 {
		t.Fatal("the device saw a read wider than itself")
	}

	// MOVSW from the device to a word that straddles RAM and device memory.
	e = newLongEnv(t)
	e.pt.map4K(0x900000, 0x50000, fP|fRW)
	e.pt.map4K(0x901000, envDevGPA+0x1000, fP|fRW)
	e.code(t, 0x66, 0xa5)
	runMMIOCase(t, e, mmioCase{gpa: envDevGPA, setup: regs(func(r *Regs) { r.RSI, r.RDI = envDevGPA, 0x900fff }),
		stop: "cannot emulate a page-straddling access to device memory"}, envCodeVA)
}

// TestDecodeCacheHoldsADriver: a driver's worth of distinct MMIO
// instructions (24 sites, more than the old 8-entry cache held) all stay
// cached: a second pass over them decodes nothing, so it allocates
// nothing.
func TestDecodeCacheHoldsADriver(t *testing.T) {
	e := newLongEnv(t)
	const sites = 24
	pass := func() {
		for i := 0; i < sites; i++ {
			imm := uint32(i)*0x01030507 + 1
			e.code(t, 0xc7, 0x00, byte(imm), byte(imm>>8), byte(imm>>16), byte(imm>>24)) // mov dword [rax], imm
			runMMIOCase(t, e, mmioCase{gpa: envDevGPA, write: true, setup: regs(func(r *Regs) { r.RAX = envDevGPA }),
				adv: 6, dev: &devAccess{0, 4, uint64(imm)}}, envCodeVA)
		}
	}
	pass()
	if e.v.c.decodeNext != sites {
		t.Fatalf("%d decodes for %d new instructions", e.v.c.decodeNext, sites)
	}
	pass()
	if e.v.c.decodeNext != sites {
		t.Fatalf("%d decodes after a second pass over %d cached instructions: the cache evicted some", e.v.c.decodeNext, sites)
	}
}
