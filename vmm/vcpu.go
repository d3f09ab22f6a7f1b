package vmm

// GuestMemory is a VM's RAM: guest-physical addresses [0, Size()) backed
// by one contiguous run of host memory. On bare metal the host view is the
// kernel's direct map of frames juice allocated for the VM and HPA is
// their physical address; in host tests the view is a byte slice and HPA
// is whatever the test chooses. Every access is bounds-checked: an address
// outside the RAM gets ok=false, never another VM's or juice's memory.
type GuestMemory struct {
	ram []byte
	hpa uint64
}

// NewGuestMemory wraps host memory ram (whose first byte is at host-physical
// address hpa) as guest-physical [0, len(ram)).
func NewGuestMemory(ram []byte, hpa uint64) *GuestMemory {
	return &GuestMemory{ram: ram, hpa: hpa}
}

// Size is the RAM size in bytes.
func (m *GuestMemory) Size() uint64 { return uint64(len(m.ram)) }

// HPA is the host-physical address of guest-physical address 0; guest
// RAM is contiguous in host-physical memory, so gpa maps to HPA()+gpa.
func (m *GuestMemory) HPA() uint64 { return m.hpa }

// In reports whether [gpa, gpa+n) is inside the RAM.
func (m *GuestMemory) In(gpa, n uint64) bool {
	size := uint64(len(m.ram))
	return gpa <= size && n <= size-gpa
}

// Slice returns [gpa, gpa+n) of guest RAM, aliasing it.
func (m *GuestMemory) Slice(gpa, n uint64) ([]byte, bool) {
	if !m.In(gpa, n) {
		return nil, false
	}
	return m.ram[gpa : gpa+n : gpa+n], true
}

// VCPU is one virtual CPU. The core owns it; the backend reads and writes
// Regs, SRegs, Pending and Exit around each guest entry.
type VCPU struct {
	ID int
	VM *VM

	// Regs is the guest's register state between exits.
	Regs Regs
	// SRegs is the guest's system state when SRegsValid; the backend
	// loads it at the next entry when SRegsDirty.
	SRegs      SRegs
	SRegsValid bool
	SRegsDirty bool

	// Pending is an event to inject at the next entry (HasPending).
	Pending    Event
	HasPending bool

	// Exit is the last exit.
	Exit Exit

	// Exits counts exits by reason (statistics, benchmarks).
	Exits [numExitReasons]uint64
	// HandleTicks sums, by exit reason, the host TSC ticks the core spent
	// handling exits (dispatch, device models included); RunTicks sums
	// the ticks spent in the backend's Run (guest execution plus the
	// hardware's world switches). Statistics and benchmarks.
	HandleTicks [numExitReasons]uint64
	RunTicks    uint64

	// MSR is the guest MSR state that lives in the hardware's guest-state
	// area (the VMCB save area; VMCS guest fields or MSR-load lists), kept
	// by the core because every guest RDMSR and WRMSR is intercepted (see
	// msr.go). The backend loads it at the next entry when MSRDirty and
	// then clears MSRDirty; New sets MSRDirty.
	MSR      MSRState
	MSRDirty bool

	backend VCPUBackend

	// c is the core's private per-vCPU state (pending interrupts, timer,
	// decode cache, emulated MSRs); see core.go.
	c vcpuCore
}
