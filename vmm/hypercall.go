package vmm

import "time"

// juice hypercalls (VMMCALL on AMD, VMCALL on Intel; CPUID leaf 4000_0001
// EAX bit 0 says they exist). RAX holds the function number, RBX, RCX and
// RDX the arguments; the result is returned in RAX. Only CPL 0 may call:
// from any other privilege level every function returns HypercallEPERM
// (so a guest's user programs cannot stop the VM), as KVM does.
//
// Results are 0 or positive on success and small negative numbers on
// failure, in the style of KVM's -KVM_ENOSYS/-KVM_EPERM (juice's own
// numbering, below).
const (
	// HypercallVersion returns the hypercall ABI version (1) in RAX.
	HypercallVersion = 0
	// HypercallSetTimer arms the calling vCPU's one-shot timer: external
	// interrupt vector RBX (32-255) is raised after RCX microseconds
	// (0 to MaxTimerDelayMicros). A new call replaces the pending one.
	// This is the test guests' timer until the APIC model exists.
	HypercallSetTimer = 1
	// HypercallExit stops the VM with reason Exited and status RBX (its
	// low 32 bits, as an unsigned number); like writing the exit port.
	HypercallExit = 2
)

// Hypercall results (RAX), as signed 64-bit values.
const (
	HypercallOK     = 0
	HypercallENOSYS = -1 // unknown function
	HypercallEINVAL = -2 // an argument is out of range
	HypercallEPERM  = -3 // called from CPL > 0
)

// HypercallABIVersion is what HypercallVersion returns.
const HypercallABIVersion = 1

// hypercall executes the hypercall in v's registers (RIP not yet advanced).
func (vm *VM) hypercall(v *VCPU) {
	r := &v.Regs
	if v.CPL() != 0 {
		r.RAX = hcResult(HypercallEPERM)
		return
	}
	switch r.RAX {
	case HypercallVersion:
		r.RAX = HypercallABIVersion
	case HypercallSetTimer:
		if r.RBX < MinIRQVector || r.RBX > 255 || r.RCX > MaxTimerDelayMicros {
			r.RAX = hcResult(HypercallEINVAL)
			return
		}
		vm.armTimer(v, uint8(r.RBX), time.Duration(r.RCX)*time.Microsecond)
		r.RAX = HypercallOK
	case HypercallExit:
		status := uint32(r.RBX)
		vm.stopf(Exited, int(status), "vCPU %d: guest exited with status %d (exit hypercall)", v.ID, status)
		r.RAX = HypercallOK
	default:
		r.RAX = hcResult(HypercallENOSYS)
	}
}

// hcResult converts a (possibly negative) hypercall result for RAX.
func hcResult(x int64) uint64 { return uint64(x) }
