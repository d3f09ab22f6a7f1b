// Package vmm is juice's architecture-neutral virtual-machine core: the
// VM and VCPU objects, guest-physical memory, the neutral exit record and
// the exit dispatch (CPUID and MSR policy, port-I/O and MMIO buses, MMIO
// instruction emulation, HLT, event injection, shutdown). The hardware
// backends (juice/svm for AMD-V, juice/vmx for Intel VT-x) implement
// Backend and VCPUBackend, as bhyve's vmm_ops does; nothing here knows
// which one runs.
//
// The exit path (VM.RunVCPU's loop: backend entry, decode, dispatch) is hot:
// it allocates nothing, takes no lock across guest entry and does bounded
// work per exit.
package vmm

// Regs is a vCPU's general-purpose register state plus RIP and RFLAGS.
// Backends load it before guest entry and store it after every exit.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RBP, RSP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment is a segment register in the form both backends can express.
// Attr uses AMD's VMCB layout of the descriptor's attribute bits: bits
// 0-3 type, 4 S, 5-6 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G.
type Segment struct {
	Selector uint16
	Attr     uint16
	Limit    uint32
	Base     uint64
}

// Segment attribute bits (Attr).
const (
	SegS    = 1 << 4
	SegP    = 1 << 7
	SegL    = 1 << 9
	SegDB   = 1 << 10
	SegG    = 1 << 11
	SegDPL3 = 3 << 5
)

// Table is a descriptor-table register (GDTR, IDTR).
type Table struct {
	Base  uint64
	Limit uint16
}

// SRegs is a vCPU's system state: segments, descriptor tables, control
// registers and EFER.
type SRegs struct {
	CS, DS, ES, FS, GS, SS, TR, LDTR Segment
	GDTR, IDTR                       Table
	CR0, CR2, CR3, CR4, CR8, EFER    uint64
}

// ExitReason is why the guest stopped running, in neutral terms.
type ExitReason uint16

// Exit reasons.
const (
	ExitNone       ExitReason = iota
	ExitIO                    // port I/O: Port, Size, In, String, Rep; data in RAX (non-string)
	ExitMMIO                  // nested-paging fault on a guest-physical address that is not RAM: GPA, Write, Fetch
	ExitCPUID                 // CPUID: leaf in RAX, subleaf in RCX
	ExitRDMSR                 // RDMSR: index in RCX
	ExitWRMSR                 // WRMSR: index in RCX, value in EDX:EAX
	ExitHLT                   // HLT
	ExitHypercall             // VMMCALL or VMCALL: function in RAX, arguments in RBX, RCX, RDX, RSI
	ExitShutdown              // the guest triple-faulted (or otherwise shut down)
	ExitIntrWindow            // the guest can take an interrupt now (requested window)
	ExitExtIntr               // a host interrupt arrived; nothing to emulate
	ExitException             // an intercepted guest exception: Vector, ErrCode, HasErr
	ExitPause                 // PAUSE (spin-loop detection)
	ExitInvalid               // guest entry failed: the backend's message is in Detail
	ExitUnhandled             // an exit juice does not handle: Raw
	numExitReasons
)

// String names an exit reason.
func (r ExitReason) String() string {
	if int(r) < len(exitNames) {
		return exitNames[r]
	}
	return "unknown"
}

var exitNames = [...]string{"none", "io", "mmio", "cpuid", "rdmsr", "wrmsr", "hlt", "hypercall",
	"shutdown", "interrupt-window", "external-interrupt", "exception", "pause", "invalid-state", "unhandled"}

// Exit is the neutral exit record a backend fills after every guest exit.
// It holds no pointers so that filling it never needs a write barrier.
type Exit struct {
	Reason ExitReason
	// Raw is the backend's own exit code (SVM EXITCODE or VMX basic exit
	// reason) and Info1/Info2 its qualification words (EXITINFO1/2, or
	// the exit qualification and guest-physical/linear address).
	Raw, Info1, Info2 uint64
	// InstrLen is the length of the instruction that exited, or 0 when
	// the backend does not know it (no NRIP save): the core decodes it.
	InstrLen uint8

	// Port I/O.
	Port            uint16
	Size            uint8 // 1, 2 or 4
	In, String, Rep bool

	// Nested-paging faults.
	GPA          uint64
	Write, Fetch bool

	// Exceptions.
	Vector  uint8
	HasErr  bool
	ErrCode uint32

	// Detail is a short fixed message for ExitInvalid (no allocation).
	Detail [96]byte
	// DetailLen is the used length of Detail.
	DetailLen uint8
}

// EventKind says what an injected event is.
type EventKind uint8

// Event kinds.
const (
	EventExtInt    EventKind = iota // external interrupt (vector)
	EventNMI                        // non-maskable interrupt
	EventException                  // exception (vector, optional error code)
	EventSoftInt                    // software interrupt (INTn)
)

// Event is an interrupt or exception to deliver at the next guest entry.
type Event struct {
	Kind    EventKind
	Vector  uint8
	HasErr  bool
	ErrCode uint32
}

// Backend is a hardware virtualization backend (AMD-V or Intel VT-x).
type Backend interface {
	// Name is "svm" or "vmx".
	Name() string
	// NewVCPU creates the backend state of vCPU id of vm: a VMCB or VMCS
	// with nested paging over vm's memory, intercepts, and the guest's
	// initial state (from v.SRegs and v.Regs).
	NewVCPU(vm *VM, v *VCPU) (VCPUBackend, error)
}

// VCPUBackend runs one vCPU. Every method except Close is on the exit path:
// it must not allocate.
type VCPUBackend interface {
	// Run loads v.Regs (and v.SRegs if v.SRegsDirty), enters the guest
	// with any pending event from v.Pending, runs until the next exit,
	// stores the guest's registers back into v.Regs and fills v.Exit.
	Run(v *VCPU) error
	// GetSRegs copies the guest's system state into s.
	GetSRegs(s *SRegs)
	// CanInjectInterrupt reports whether the guest would take an external
	// interrupt now (RFLAGS.IF set, no interrupt shadow, no event pending).
	CanInjectInterrupt(v *VCPU) bool
	// RequestInterruptWindow asks for an ExitIntrWindow as soon as the
	// guest can take an interrupt (on) or cancels the request (off).
	RequestInterruptWindow(on bool)
	// Close releases the backend's hardware structures.
	Close()
}
