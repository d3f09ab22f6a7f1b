package vmm

import "testing"

// walkEnv is a vCPU whose system state the test sets directly.
func walkEnv(t *testing.T) (*testVM, *VCPU) {
	tv := newTestVM(t, Config{})
	v := tv.VCPU(0)
	v.SRegsValid = true
	return tv, v
}

func put32(m *GuestMemory, gpa, v uint64) { m.Write(gpa, 4, v) }
func put64(m *GuestMemory, gpa, v uint64) { m.Write(gpa, 8, v) }

type walkCase struct {
	name string
	la   uint64
	acc  access
	cpl  uint8
	gpa  uint64
	st   xlate
	pfec uint32
}

func checkWalk(t *testing.T, v *VCPU, cases []walkCase) {
	t.Helper()
	for _, c := range cases {
		gpa, pfec, st := v.translate(c.la, c.acc, c.cpl)
		if st != c.st || (st == xlOK || st == xlBadTable) && gpa != c.gpa || st == xlPF && pfec != c.pfec {
			t.Errorf("%s: translate(%#x) = %#x, pfec %#x, st %d; want %#x, %#x, %d", c.name, c.la, gpa, pfec, st, c.gpa, c.pfec, c.st)
		}
	}
}

func TestWalkPagingOff(t *testing.T) {
	_, v := walkEnv(t)
	v.SRegs.CR0 = cr0PE
	checkWalk(t, v, []walkCase{
		{name: "identity", la: 0xd0000123, gpa: 0xd0000123},
		{name: "32-bit", la: 0x1_0000_0010, gpa: 0x10},
	})
}

func TestWalk32Bit(t *testing.T) {
	tv, v := walkEnv(t)
	m := tv.Mem
	const pd, pt = 0x10000, 0x11000
	v.SRegs.CR0 = cr0PE | cr0PG
	v.SRegs.CR3 = pd | 0x18                       // PWT/PCD ignored
	put32(m, pd+1*4, pt|pteP|pteRW|pteUS)         // 0x00400000: via PT
	put32(m, pt+2*4, 0x33000|pteP|pteUS)          // 0x00402000: read-only user page
	put32(m, pt+3*4, 0x34000|pteP|pteRW)          // 0x00403000: supervisor page
	put32(m, pd+2*4, 0x00c00000|pteP|pteRW|ptePS) // 0x00800000: 4 MiB page
	put32(m, pd+3*4, 0x01000000|3<<13|pteP|ptePS) // 0x00c00000: PSE-36, PA bits 33:32 = 3
	put32(m, pd+4*4, 0xfff00000|pteP)             // 0x01000000: PT outside RAM
	checkWalk(t, v, []walkCase{
		{name: "4K without PSE", la: 0x00402abc, gpa: 0x33abc},
		{name: "PS without CR4.PSE is a PT pointer", la: 0x00800000, gpa: 0xc00000, st: xlBadTable},
		{name: "not present PDE", la: 0x00000123, st: xlPF, pfec: 0},
		{name: "not present PTE", la: 0x00404000, acc: accWrite, cpl: 3, st: xlPF, pfec: pfW | pfU},
		{name: "user read ok", la: 0x00402000, cpl: 3, gpa: 0x33000},
		{name: "user write to read-only", la: 0x00402000, acc: accWrite, cpl: 3, st: xlPF, pfec: pfP | pfW | pfU},
		{name: "supervisor write to read-only, WP=0", la: 0x00402000, acc: accWrite, gpa: 0x33000},
		{name: "user to supervisor page", la: 0x00403000, cpl: 3, st: xlPF, pfec: pfP | pfU},
		{name: "PT outside RAM", la: 0x01000000, st: xlBadTable, gpa: 0xfff00000},
		{name: "la is 32-bit", la: 0xffffffff_00402abc, gpa: 0x33abc},
	})
	v.SRegs.CR0 |= cr0WP
	v.SRegs.CR4 = cr4PSE
	checkWalk(t, v, []walkCase{
		{name: "supervisor write to read-only, WP=1", la: 0x00402000, acc: accWrite, st: xlPF, pfec: pfP | pfW},
		{name: "4 MiB page", la: 0x00812345, gpa: 0xc12345},
		{name: "PSE-36", la: 0x00c00010, gpa: 0x3_0100_0010},
	})
	// Fetches: no NX in 32-bit paging; SMEP applies.
	v.SRegs.CR4 |= cr4SMEP
	checkWalk(t, v, []walkCase{
		{name: "SMEP", la: 0x00402000, acc: accFetch, st: xlPF, pfec: pfP | pfID},
		{name: "supervisor fetch", la: 0x00403000, acc: accFetch, gpa: 0x34000},
	})
}

func TestWalkPAE(t *testing.T) {
	tv, v := walkEnv(t)
	m := tv.Mem
	const pdpt, pd, pt = 0x10020, 0x11000, 0x12000
	v.SRegs.CR0 = cr0PE | cr0PG
	v.SRegs.CR4 = cr4PAE
	v.SRegs.CR3 = pdpt
	v.SRegs.EFER = eferNXE
	put64(m, pdpt+0*8, pd|pteP)
	put64(m, pdpt+1*8, pd|pteP|pteRW) // reserved bit 1 set in a PAE PDPTE
	put64(m, pd+0*8, pt|pteP|pteRW|pteUS)
	put64(m, pd+1*8, 0x00600000|pteP|pteRW|ptePS|pteNX) // 2 MiB, no-execute
	put64(m, pt+5*8, 0x45000|pteP|pteRW)
	checkWalk(t, v, []walkCase{
		{name: "4K", la: 0x5123, gpa: 0x45123},
		{name: "2M", la: 0x00212345, gpa: 0x612345},
		{name: "NX fetch", la: 0x00200000, acc: accFetch, st: xlPF, pfec: pfP | pfID},
		{name: "reserved PDPTE", la: 0x40000000, st: xlPF, pfec: pfP | pfRSVD},
		{name: "not present PDPTE", la: 0x80000000, st: xlPF},
	})
	v.SRegs.EFER = 0
	checkWalk(t, v, []walkCase{
		{name: "NX bit without EFER.NXE is reserved", la: 0x00200000, st: xlPF, pfec: pfP | pfRSVD},
	})
}

func TestWalk4And5Level(t *testing.T) {
	tv, v := walkEnv(t)
	m := tv.Mem
	const pml5, pml4, pdpt, pd, pt = 0x10000, 0x11000, 0x12000, 0x13000, 0x14000
	v.SRegs.CR0 = cr0PE | cr0PG | cr0WP
	v.SRegs.CR4 = cr4PAE
	v.SRegs.EFER = eferLME | eferLMA | eferNXE
	v.SRegs.CR3 = pml4
	put64(m, pml4+0*8, pdpt|pteP|pteRW|pteUS)
	put64(m, pml4+511*8, pdpt|pteP|pteRW) // kernel half: same PDPT
	put64(m, pml4+1*8, pdpt|pteP|pteRW|ptePS)
	put64(m, pdpt+0*8, pd|pteP|pteRW|pteUS)
	put64(m, pdpt+1*8, 0x40000000|pteP|pteRW|ptePS) // 1 GiB
	put64(m, pdpt+2*8, pd|pteP|pteUS|pteNX)         // read-only and no-execute above
	put64(m, pd+0*8, pt|pteP|pteRW|pteUS)
	put64(m, pd+1*8, 0x00200000|pteP|pteRW|pteUS|ptePS)
	put64(m, pt+3*8, 0x33000|pteP|pteRW|pteUS)
	checkWalk(t, v, []walkCase{
		{name: "4K", la: 0x3456, gpa: 0x33456},
		{name: "2M", la: 0x201234, gpa: 0x201234},
		{name: "1G", la: 0x40001234, gpa: 0x40001234},
		{name: "kernel half", la: 0xffffff80_00003000, gpa: 0x33000},
		{name: "kernel half is supervisor", la: 0xffffff80_00003000, cpl: 3, st: xlPF, pfec: pfP | pfU},
		{name: "non-canonical", la: 0x00008000_00000000, st: xlGP},
		{name: "PS in PML4E", la: 0x80_00000000, st: xlPF, pfec: pfP | pfRSVD},
		{name: "R/W=0 above, WP", la: 0x80003000, acc: accWrite, st: xlPF, pfec: pfP | pfW},
		{name: "NX above", la: 0x80003000, acc: accFetch, st: xlPF, pfec: pfP | pfID},
		{name: "read through read-only", la: 0x80003000, gpa: 0x33000},
	})
	// 5-level paging: one more level on top.
	v.SRegs.CR4 |= cr4LA57
	v.SRegs.CR3 = pml5
	put64(m, pml5+0*8, pml4|pteP|pteRW|pteUS)
	checkWalk(t, v, []walkCase{
		{name: "5-level 4K", la: 0x3456, gpa: 0x33456},
		{name: "57-bit canonical", la: 0x00008000_00000000, st: xlPF}, // PML4[256] not present
		{name: "57-bit non-canonical", la: 0x01000000_00000000, st: xlGP},
	})
}
