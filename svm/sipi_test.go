package svm

import (
	"testing"

	"juice/vmm"
)

// TestSIPIStateEnters: the real-mode state in which an application
// processor starts (an INIT, then a STARTUP IPI with vector VV: CS VV00,
// base VV000, IP 0) passes VMRUN's consistency checks.
func TestSIPIStateEnters(t *testing.T) {
	for _, vec := range []uint8{0x01, 0x10, 0x9a, 0xff} {
		var v vmm.VCPU
		v.ResetToSIPI(vec)
		if v.SRegs.CS.Selector != uint16(vec)<<8 || v.SRegs.CS.Base != uint64(vec)<<12 || v.Regs.RIP != 0 {
			t.Fatalf("vector %#x: CS %+v IP %#x", vec, v.SRegs.CS, v.Regs.RIP)
		}
		if err := CheckState(&v.SRegs); err != nil {
			t.Errorf("vector %#x: %v", vec, err)
		}
	}
}

// recBackend records the vCPUs a Backend creates.
type recBackend struct {
	*Backend
	vcpus []*VCPU
}

func (r *recBackend) NewVCPU(vm *vmm.VM, v *vmm.VCPU) (vmm.VCPUBackend, error) {
	c, err := r.Backend.NewVCPU(vm, v)
	if err == nil {
		r.vcpus = append(r.vcpus, c.(*VCPU))
	}
	return c, err
}

// TestPAUSEInterceptedWithSeveralVCPUs: without the PAUSE filter (QEMU's
// SVM), a VM of one vCPU runs PAUSE without exits, but every vCPU of a VM
// with several intercepts it: their spin loops wait for another vCPU,
// which the exit lets run.
func TestPAUSEInterceptedWithSeveralVCPUs(t *testing.T) {
	host := testHost(t, 64*mib)
	cpuid := func(leaf, sub uint32) (uint32, uint32, uint32, uint32) { return 0, 0, 0, 0 }
	for _, n := range []int{1, 2} {
		b, err := New(qemuCaps, host)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recBackend{Backend: b}
		vm, err := vmm.New(vmm.Config{Name: "p", MemBytes: mib, VCPUs: n, HostCPUID: cpuid}, host, rec)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range rec.vcpus {
			if got, want := c.VMCB().InterceptMisc1()&InterceptPAUSE != 0, n > 1; got != want {
				t.Errorf("%d vCPUs: vCPU %d intercepts PAUSE: %v, want %v", n, i, got, want)
			}
		}
		vm.Close()
	}
}
