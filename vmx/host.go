package vmx

import (
	"encoding/binary"
	"errors"

	"juice/vmm"
)

// The host-state area: what a VM exit loads into the CPU (SDM Vol. 3C
// 25.5 "Host-State Area", 28.5 "Loading Host State"). juice's kernel has
// one GDT: null, 64-bit code (0x08), data (0x10), and its TSS (0x18, a
// 16-byte descriptor); FS and GS are null selectors whose bases live in
// IA32_FS_BASE and IA32_GS_BASE.

// Host selectors after a VM exit.
const (
	HostCodeSelector = 0x08
	HostDataSelector = 0x10
	HostTSSSelector  = 0x18
)

// MSRs of the host state and of the MSR lists.
const (
	MSRPAT          = 0x277
	MSREFER         = 0xC0000080
	MSRSTAR         = 0xC0000081
	MSRLSTAR        = 0xC0000082
	MSRCSTAR        = 0xC0000083
	MSRSFMASK       = 0xC0000084
	MSRFSBase       = 0xC0000100
	MSRGSBase       = 0xC0000101
	MSRKernelGSBase = 0xC0000102
)

// sgdt stores GDTR (2-byte limit, then 8-byte base) at p.
//
//go:noescape
func sgdt(p *[10]byte)

// sidt stores IDTR at p.
//
//go:noescape
func sidt(p *[10]byte)

// load64 reads the 8 bytes at host linear address addr (the GDT).
func load64(addr uint64) uint64

// ParseTableRegister decodes what SGDT or SIDT stored: a 16-bit limit,
// then a 64-bit base.
func ParseTableRegister(b *[10]byte) vmm.Table {
	return vmm.Table{Limit: binary.LittleEndian.Uint16(b[0:]), Base: binary.LittleEndian.Uint64(b[2:])}
}

// SystemDescriptorBase is the base address of a 16-byte system-segment
// descriptor (a 64-bit TSS or LDT) whose two quadwords are lo and hi:
// base 15:0 in lo bits 31:16, base 23:16 in lo bits 39:32, base 31:24 in
// lo bits 63:56, base 63:32 in hi bits 31:0.
func SystemDescriptorBase(lo, hi uint64) uint64 {
	return lo>>16&0xffffff | (lo>>56&0xff)<<24 | (hi&0xffffffff)<<32
}

// hostState is what NewVCPU writes into every VMCS's host-state area,
// read from the CPU it runs on.
type hostState struct {
	cr0, cr3, cr4        uint64
	fsBase, gsBase       uint64
	trBase               uint64
	gdtr, idtr           vmm.Table
	efer, pat            uint64
	star, lstar, cstar   uint64
	sfmask, kernelGSBase uint64
}

// readHostState reads the calling CPU's host state through b's hooks.
func (b *Backend) readHostState() (hostState, error) {
	var h hostState
	h.cr0, h.cr3, h.cr4 = b.ReadCR0(), b.ReadCR3(), b.ReadCR4()
	h.fsBase, h.gsBase = b.RDMSR(MSRFSBase), b.RDMSR(MSRGSBase)
	var buf [10]byte
	b.SGDT(&buf)
	h.gdtr = ParseTableRegister(&buf)
	b.SIDT(&buf)
	h.idtr = ParseTableRegister(&buf)
	if uint64(h.gdtr.Limit) < HostTSSSelector+15 {
		return h, errors.New("vmx: the host GDT is too short to hold the TSS descriptor at selector 0x18")
	}
	lo := b.ReadHost64(h.gdtr.Base + HostTSSSelector)
	hi := b.ReadHost64(h.gdtr.Base + HostTSSSelector + 8)
	h.trBase = SystemDescriptorBase(lo, hi)
	h.efer, h.pat = b.RDMSR(MSREFER), b.RDMSR(MSRPAT)
	h.star, h.lstar, h.cstar = b.RDMSR(MSRSTAR), b.RDMSR(MSRLSTAR), b.RDMSR(MSRCSTAR)
	h.sfmask, h.kernelGSBase = b.RDMSR(MSRSFMASK), b.RDMSR(MSRKernelGSBase)
	return h, nil
}
