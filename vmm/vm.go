package vmm

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"juice/mm"
)

// MaxVCPUs is the most vCPUs a VM may have: APIC IDs are 8-bit without
// x2APIC, and CPUID leaf 4 reports at most 64 cores per package.
const MaxVCPUs = 64

// Config describes a VM to create.
type Config struct {
	// Name names the VM in messages.
	Name string
	// MemBytes is the guest RAM size: a non-zero multiple of 4 KiB,
	// allocated as one physically contiguous run at guest-physical 0.
	MemBytes uint64
	// VCPUs is the number of vCPUs, 1 to MaxVCPUs.
	VCPUs int
	// Console is the VM's console stream (what its console devices
	// print); nil discards.
	Console io.Writer
	// Clock returns monotonic nanoseconds; it times the hypercall timer.
	// Nil: the Go runtime's monotonic clock.
	Clock func() int64

	// HostCPUID executes CPUID on the host (juice/cpu.CPUID on bare
	// metal; a fake in tests). The guest's CPUID table is derived from it
	// once, in New (see cpuid.go). Required.
	HostCPUID CPUIDFunc
	// HostTSC reads the host's time-stamp counter (juice/cpu.RDTSC on
	// bare metal). The guest's TSC is HostTSC()+MSR.TSCOffset, and the
	// guest's RDMSR/WRMSR of IA32_TSC use it. Nil: a 1 GHz counter derived
	// from Clock (tests only: a guest's RDTSC reads the real TSC).
	HostTSC func() uint64
	// VCPUThread, if set, is called first thing in each vCPU's goroutine
	// (StartVCPU), which is locked to its thread then and stays locked:
	// the thread ends with the vCPU. The kernel binds the thread to a
	// host CPU there, so that the backend's per-CPU state (VMXON, the
	// current VMCS, the host save area, ASIDs) stays where it was set up.
	VCPUThread func(id int)
	// HostCPUs, if set, lets an interrupt made pending for a vCPU that
	// is running guest code on another host CPU end that run at once
	// (kernel.HostCPUs on bare metal): each vCPU publishes the host CPU
	// it enters the guest on, and whoever makes an interrupt pending for
	// it from another goroutine kicks that CPU, at most once per entry.
	// Nil: the vCPU notices at its next exit (a host timer tick at the
	// latest).
	HostCPUs HostCPUs
}

// HostCPUs is the host's view of its CPUs that gets a vCPU out of guest
// mode on another host CPU (Config.HostCPUs). Both methods are called on
// the exit path and from device goroutines: they must be allocation-free
// and must not block.
type HostCPUs interface {
	// Current returns the number of the host CPU the calling thread
	// runs on (it may move right after: see "Guest mode and kicks" in
	// core.go).
	Current() int
	// Kick interrupts host CPU cpu, which is not the caller's, so that
	// the guest it runs (if any) exits: the backend intercepts physical
	// interrupts. A kick that finds no guest there is harmless.
	Kick(cpu int)
}

// StopReason says why a VM stopped.
type StopReason uint8

// Stop reasons.
const (
	// Running: the VM has not stopped.
	Running StopReason = iota
	// Exited: the guest asked to stop, through the exit port or the exit
	// hypercall; the status is the value it gave.
	Exited
	// Shutdown: a vCPU shut down (triple fault); the message names the
	// vCPU, RIP and the backend's exit information.
	Shutdown
	// Fault: the guest did something juice refuses (touched a
	// guest-physical address that is neither RAM nor a device, an MMIO
	// access juice cannot emulate, an unhandled exit).
	Fault
	// HaltedForever: a vCPU halted with nothing that could wake it
	// (interrupts disabled, or no timer or interrupt source).
	HaltedForever
	// Error: guest entry failed or juice found its own state broken; the
	// message carries the backend's detail.
	Error
	// Killed: the host stopped the VM (Close, or Stop from outside).
	Killed
	// Reset: the guest reset the machine (a reboot: the reset register,
	// the keyboard controller); the host decides whether to start it
	// again from its images.
	Reset
	// Panicked: the guest reported a kernel panic (pvpanic, or the
	// kernel's panic message on its console); the message carries the
	// reason when the guest gave one.
	Panicked
)

var stopNames = [...]string{"running", "exited", "shutdown", "fault", "halted-forever", "error", "killed", "reset", "panic"}

// String names a stop reason.
func (r StopReason) String() string {
	if int(r) < len(stopNames) {
		return stopNames[r]
	}
	return "unknown"
}

// VM is one virtual machine: its RAM, vCPUs, port-I/O and MMIO buses,
// CPUID table and stop state. Each VM's state is its own; the core keeps
// no global mutable state, so one VM's fault or shutdown never touches
// another VM.
//
// Lifecycle: New, then the loader sets the boot vCPU's state and devices
// are registered on IO and MMIO, then Start (or Run), then Wait, then
// Close. Stop may be called at any time from any goroutine.
type VM struct {
	// Name names the VM in messages.
	Name string
	// Mem is the guest's RAM.
	Mem *GuestMemory
	// Host supplies RAM and the backends' hardware structures.
	Host *Host

	backend  Backend
	vcpus    []*VCPU
	io       IOBus
	mmio     MMIOBus
	cpuid    *CPUIDTable
	plat     Platform
	console  io.Writer
	clock    func() int64
	hostTSC  func() uint64
	onThread func(id int)
	ramHPA   uint64
	ramPages uint64

	// irqSources counts devices that may raise interrupts on their own
	// (AddInterruptSource); a halted vCPU with none and no timer armed
	// can never wake.
	irqSources atomic.Int32
	// state is the StopReason once the VM has stopped (Running before);
	// the vCPU loops poll it once per exit.
	state atomic.Uint32
	// parked counts the vCPUs that only an INIT or a STARTUP IPI can
	// wake (mp.go); when it reaches the vCPU count the VM stops.
	parked atomic.Int32

	mu         sync.Mutex // guards the fields below
	stopStatus int
	stopMsg    string
	started    bool
	closed     bool
	wg         sync.WaitGroup
}

// New creates a VM: cfg.MemBytes of zeroed, physically contiguous guest RAM
// from host, the buses, the CPUID table and cfg.VCPUs vCPUs in the
// architectural power-on state (VCPU.Reset), each with its backend state
// from be. The loader sets the boot vCPU's state before Start.
func New(cfg Config, host *Host, be Backend) (*VM, error) {
	name := cfg.Name
	if name == "" {
		name = "vm"
	}
	switch {
	case host == nil || host.Mem == nil || host.Frames == nil:
		return nil, fmt.Errorf("vm %q: no host memory", name)
	case be == nil:
		return nil, fmt.Errorf("vm %q: no backend", name)
	case cfg.HostCPUID == nil:
		return nil, fmt.Errorf("vm %q: no host CPUID function", name)
	case cfg.MemBytes == 0 || cfg.MemBytes%mm.PageSize != 0:
		return nil, fmt.Errorf("vm %q: memory size %#x is not a non-zero multiple of 4 KiB", name, cfg.MemBytes)
	case cfg.VCPUs < 1 || cfg.VCPUs > MaxVCPUs:
		return nil, fmt.Errorf("vm %q: %d vCPUs, want 1 to %d", name, cfg.VCPUs, MaxVCPUs)
	}
	pages := cfg.MemBytes / mm.PageSize
	ram, hpa, ok := host.AllocPages(pages)
	if !ok {
		return nil, fmt.Errorf("vm %q: cannot allocate %d MiB of guest RAM (%d physically contiguous pages): not enough free host memory",
			name, cfg.MemBytes>>20, pages)
	}
	vm := &VM{
		Name:     name,
		Mem:      NewGuestMemory(ram, hpa),
		Host:     host,
		backend:  be,
		console:  cfg.Console,
		clock:    cfg.Clock,
		hostTSC:  cfg.HostTSC,
		onThread: cfg.VCPUThread,
		ramHPA:   hpa,
		ramPages: pages,
	}
	if vm.console == nil {
		vm.console = io.Discard
	}
	if vm.clock == nil {
		base := time.Now()
		vm.clock = func() int64 { return int64(time.Since(base)) }
	}
	if vm.hostTSC == nil {
		clock := vm.clock
		vm.hostTSC = func() uint64 { return uint64(clock()) }
	}
	vm.mmio.ramSize = cfg.MemBytes
	vm.cpuid = NewCPUIDTable(cfg.HostCPUID, cfg.VCPUs)
	vm.vcpus = make([]*VCPU, cfg.VCPUs)
	for i := range vm.vcpus {
		v := &VCPU{ID: i, VM: vm}
		v.c.init(v)
		v.c.cpus = cfg.HostCPUs
		v.Reset()
		vm.vcpus[i] = v
		b, err := be.NewVCPU(vm, v)
		if err == nil && b == nil {
			err = errors.New("backend returned no vCPU")
		}
		if err != nil {
			vm.release()
			return nil, fmt.Errorf("vm %q: vCPU %d: %v", name, i, err)
		}
		v.backend = b
		if i > 0 {
			// An application processor waits for a STARTUP IPI.
			v.c.mp.Store(mpWaitSIPI)
			vm.park(v)
		}
	}
	return vm, nil
}

// release closes the backends, stops the timers and frees the RAM.
func (vm *VM) release() {
	for _, v := range vm.vcpus {
		if v == nil {
			continue
		}
		v.c.timer.Stop()
		if v.backend != nil {
			v.backend.Close()
			v.backend = nil
		}
	}
	if vm.ramPages != 0 {
		vm.Host.FreePages(vm.ramHPA, vm.ramPages)
		vm.ramPages = 0
	}
}

// VCPUs returns the VM's vCPUs, indexed by ID. The slice is the VM's own:
// do not modify it.
func (vm *VM) VCPUs() []*VCPU { return vm.vcpus }

// VCPU returns vCPU id, or nil.
func (vm *VM) VCPU(id int) *VCPU {
	if id < 0 || id >= len(vm.vcpus) {
		return nil
	}
	return vm.vcpus[id]
}

// IO is the VM's port-I/O bus.
func (vm *VM) IO() *IOBus { return &vm.io }

// MMIO is the VM's memory-mapped I/O bus.
func (vm *VM) MMIO() *MMIOBus { return &vm.mmio }

// CPUID is the VM's guest CPUID table.
func (vm *VM) CPUID() *CPUIDTable { return vm.cpuid }

// Console is the VM's console stream (never nil).
func (vm *VM) Console() io.Writer { return vm.console }

// Backend is the hardware backend the VM runs on.
func (vm *VM) Backend() Backend { return vm.backend }

// HostTSC reads the host's TSC (Config.HostTSC); a vCPU's guest TSC is
// that plus its MSR.TSCOffset.
func (vm *VM) HostTSC() uint64 { return vm.hostTSC() }

// Now is the VM's clock (monotonic nanoseconds).
func (vm *VM) Now() int64 { return vm.clock() }

// Start runs every vCPU in its own goroutine and seals the buses (no
// device may be registered after Start): the boot vCPU (vCPU 0) from the
// state the loader gave it, the others (application processors) waiting
// for the STARTUP IPI the guest sends them (mp.go), so that starting one
// needs no allocation. It fails if vCPU 0 was started already.
func (vm *VM) Start() error {
	if err := vm.StartVCPU(0); err != nil {
		return err
	}
	for id := 1; id < len(vm.vcpus); id++ {
		if err := vm.startVCPU(id, true); err != nil {
			return err
		}
	}
	return nil
}

// StartVCPU runs vCPU id in its own goroutine (each vCPU at most once).
// An application processor's goroutine waits for a STARTUP IPI before
// it enters the guest (mp.go).
func (vm *VM) StartVCPU(id int) error { return vm.startVCPU(id, false) }

// startVCPU is StartVCPU; with ifNeeded a vCPU already started is not an
// error.
func (vm *VM) startVCPU(id int, ifNeeded bool) error {
	v := vm.VCPU(id)
	if v == nil {
		return fmt.Errorf("vm %q: no vCPU %d", vm.Name, id)
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	switch {
	case vm.closed:
		return fmt.Errorf("vm %q: closed", vm.Name)
	case v.c.started && ifNeeded:
		return nil
	case v.c.started:
		return fmt.Errorf("vm %q: vCPU %d already started", vm.Name, id)
	}
	vm.started = true
	vm.io.sealed = true
	vm.mmio.sealed = true
	v.c.started = true
	vm.wg.Add(1)
	go func() {
		defer vm.wg.Done()
		if vm.onThread != nil {
			runtime.LockOSThread() // for good: the thread ends with the vCPU
			vm.onThread(v.ID)
		}
		vm.RunVCPU(v)
	}()
	return nil
}

// Wait blocks until every started vCPU's loop has returned (which happens
// once the VM has stopped) and returns why the VM stopped.
func (vm *VM) Wait() (StopReason, int, string) {
	vm.wg.Wait()
	return vm.Stopped()
}

// Run is Start then Wait.
func (vm *VM) Run() (StopReason, int, string) {
	if err := vm.Start(); err != nil {
		vm.Stop(Error, -1, err.Error())
		return vm.Stopped()
	}
	return vm.Wait()
}

// Stop stops the VM: the first call wins and records reason, status and
// msg; later calls change nothing. Every vCPU loop returns at its next
// exit; halted vCPUs are woken. A vCPU running guest code notices at its
// next exit, which a host interrupt guarantees on bare metal (with
// Config.HostCPUs, one that runs on another host CPU is kicked). Stop may be
// called from any goroutine. Stop with reason Running is ignored.
func (vm *VM) Stop(reason StopReason, status int, msg string) {
	if reason == Running {
		return
	}
	vm.mu.Lock()
	if vm.state.Load() != uint32(Running) {
		vm.mu.Unlock()
		return
	}
	vm.stopStatus = status
	vm.stopMsg = msg
	vm.state.Store(uint32(reason))
	vm.mu.Unlock()
	for _, v := range vm.vcpus {
		v.c.kick()
	}
}

// Stopped returns why the VM stopped (Running if it has not), the status
// (the guest's exit status for Exited) and the message.
func (vm *VM) Stopped() (StopReason, int, string) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return StopReason(vm.state.Load()), vm.stopStatus, vm.stopMsg
}

// stopped reports whether the VM has stopped (one atomic load).
func (vm *VM) stopped() bool { return vm.state.Load() != uint32(Running) }

// stopf stops the VM with a formatted message prefixed by the VM's name.
// It allocates: only for stopping.
func (vm *VM) stopf(reason StopReason, status int, format string, args ...any) {
	vm.Stop(reason, status, fmt.Sprintf("vm %q: ", vm.Name)+fmt.Sprintf(format, args...))
}

// Close stops the VM if it is running (Killed), waits for the vCPU loops,
// releases the backends' structures and frees the guest RAM. The VM's
// memory must not be used afterwards. Close is idempotent.
func (vm *VM) Close() {
	vm.Stop(Killed, -1, fmt.Sprintf("vm %q: closed by the host", vm.Name))
	vm.wg.Wait()
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return
	}
	vm.closed = true
	vm.release()
}

// AddInterruptSource declares that a device may call Interrupt on its own
// (from its goroutine: console input, a timer device, a virtio backend).
// A vCPU that halts with interrupts enabled, no interrupt pending, no
// hypercall timer armed and no interrupt source in the VM can never wake:
// the VM stops with HaltedForever instead of hanging.
func (vm *VM) AddInterruptSource() { vm.irqSources.Add(1) }

// HostOr returns the host whose memory serves vm: vm.Host when it is
// usable, else fallback (a backend's own). Backends allocate a VM's
// hardware structures from it.
func (vm *VM) HostOr(fallback *Host) *Host {
	if vm.Host != nil && vm.Host.Mem != nil && vm.Host.Frames != nil {
		return vm.Host
	}
	return fallback
}

// Backend returns v's backend state (the backend's statistics live there).
func (v *VCPU) Backend() VCPUBackend { return v.backend }
