package main

import (
	"fmt"
	"io"
	"log"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"juice/cpu"
	"juice/kernel"
	"juice/svm"
	"juice/vmm"
	"juice/vmm/bundle"
	"juice/vmm/devices"
	"juice/vmm/loader"
	"juice/vmm/netswitch"
	"juice/vmm/platform"
	"juice/vmm/virtio/blk"
	"juice/vmx"
)

// vmResult is how one VM of the bundle ended.
type vmResult struct {
	name    string
	reason  vmm.StopReason
	status  int
	msg     string
	mallocs uint64 // heap allocations juice made while the VM ran
}

// runBundle starts every VM of the bundle in the first boot module and
// waits for all of them. A VM that cannot be built is reported and left
// out; the others still run. It returns juice's exit status: the first
// VM's exit status, or 125 if that VM did not exit normally.
func runBundle(archive []byte) int {
	b, errs := bundle.Parse(archive)
	for _, err := range errs {
		log.Printf("juice: bundle: %v", err)
	}
	if b == nil || len(b.VMs) == 0 {
		log.Printf("juice: the bundle has no VM that can run")
		return 125
	}
	be, err := backend()
	if err != nil {
		log.Printf("juice: %v", err)
		return 125
	}
	defer memReport(b.VMs)()
	pinBuilder()
	results := make([]vmResult, len(b.VMs))
	var wg sync.WaitGroup
	names := make([]string, len(b.VMs))
	for i, spec := range b.VMs {
		names[i] = spec.Name
	}
	input := newConsoleInput(names)
	switches := map[string]*netswitch.Switch{}
	// Every VM is built before any starts (a running vCPU would slow
	// the others' construction down); a VM that cannot be built is
	// reported and left out.
	type built struct {
		vm     *vmm.VM
		pc     *platform.PC
		devs   *platform.Devices
		devErr error // the devices' back-ends could not be made
	}
	vms := make([]built, len(b.VMs))
	for i, spec := range b.VMs {
		results[i] = vmResult{name: spec.Name, reason: vmm.Error, status: -1}
		vms[i].devs, vms[i].devErr = deviceBackends(spec, switches)
		if err := vms[i].devErr; err != nil {
			log.Printf("juice: vm %s: %v", spec.Name, err)
			results[i].msg = err.Error()
			continue
		}
		vm, pc, err := buildVM(spec, vms[i].devs, be)
		if err != nil {
			log.Printf("juice: vm %s: %v", spec.Name, err)
			results[i].msg = err.Error()
			continue
		}
		vms[i].vm, vms[i].pc = vm, pc
	}
	// netconsole: the network console, only with the manifest's "manage" section (netconsole.go).
	startNetConsole(b.Manage, switches, input)
	var resMu sync.Mutex
	run := func(i int, vm *vmm.VM, pc *platform.PC) {
		defer wg.Done()
		pinBuilder() // it closes and rebuilds the VM
		spec := b.VMs[i]
		r := runVM(spec, vm, pc, vms[i].devs, be, input)
		resMu.Lock()
		results[i] = r
		resMu.Unlock()
		input.ended(spec.Name, endState(r))
	}
	for i, spec := range b.VMs {
		input.describe(spec.Name, spec.MemBytes, spec.VCPUs)
		if vms[i].vm == nil {
			input.ended(spec.Name, "not built: "+results[i].msg)
			continue
		}
		input.active(spec.Name, true)
		wg.Add(1)
		go run(i, vms[i].vm, vms[i].pc)
	}
	// `start NAME` on juice's command line runs a stopped VM again (while
	// juice still runs: it ends when every VM has stopped).
	input.setStart(func(name string) error {
		for i, spec := range b.VMs {
			if spec.Name != name {
				continue
			}
			if vms[i].devErr != nil {
				return vms[i].devErr
			}
			if !input.active(name, true) {
				return fmt.Errorf("vm %s is running", name)
			}
			vm, pc, err := buildVM(spec, vms[i].devs, be)
			if err != nil {
				input.active(name, false)
				return err
			}
			wg.Add(1)
			go run(i, vm, pc)
			return nil
		}
		return fmt.Errorf("no VM %q", name)
	})
	go input.poll()
	go input.flushIdle()
	wg.Wait()
	resMu.Lock()
	first := results[0]
	resMu.Unlock()
	if first.reason != vmm.Exited {
		return 125
	}
	return first.status
}

// maxResets bounds how many times in a row a VM is restarted after it
// resets itself without ever reaching a long run (a reset loop).
const maxQuickResets = 20

// runVM runs one VM (built for its first boot), building and starting it
// again from its images each time the guest resets (reboots) it, and
// returns how it finally ended.
// input learns of each boot (for console input and the escape keys).
func runVM(spec bundle.VMSpec, vm *vmm.VM, pc *platform.PC, devs *platform.Devices, be vmm.Backend, input *consoleInput) vmResult {
	quick := 0
	for boot := 1; ; boot++ {
		if boot > 1 {
			var err error
			if vm, pc, err = buildVM(spec, devs, be); err != nil {
				log.Printf("juice: vm %s: %v", spec.Name, err)
				return vmResult{name: spec.Name, reason: vmm.Error, status: -1, msg: err.Error()}
			}
		}
		if boot == 1 {
			log.Printf("juice: vm %s: starting (%d MiB, %d vCPU)", spec.Name, spec.MemBytes>>20, spec.VCPUs)
		} else {
			log.Printf("juice: vm %s: restarting (boot %d)", spec.Name, boot)
		}
		input.live(spec.Name, vm, pc)
		start := vm.Now()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		reason, status, msg := vm.Run()
		runtime.ReadMemStats(&after)
		input.live(spec.Name, nil, nil)
		r := vmResult{name: vm.Name, reason: reason, status: status, msg: msg, mallocs: after.Mallocs - before.Mallocs}
		report(r, vm)
		ran := vm.Now() - start
		pc.Close()
		vm.Close()
		if reason != vmm.Reset {
			return r
		}
		if ran < int64(time.Second) {
			quick++
		} else {
			quick = 0
		}
		if quick >= maxQuickResets {
			r.reason, r.msg = vmm.Error, fmt.Sprintf("reset %d times in a row within a second of starting: not restarted", quick)
			log.Printf("juice: vm %s: %s", r.name, r.msg)
			return r
		}
	}
}

// endState is how a VM's run ended, for juice's command-line list.
func endState(r vmResult) string {
	switch r.reason {
	case vmm.Exited:
		return fmt.Sprintf("exited (status %d)", r.status)
	case vmm.Killed:
		return "stopped"
	}
	return r.reason.String()
}

// report prints one VM's end on juice's console.
func report(r vmResult, vm *vmm.VM) {
	// The core's messages name the VM already; say it once.
	r.msg = strings.TrimPrefix(r.msg, fmt.Sprintf("vm %q: ", r.name))
	switch r.reason {
	case vmm.Exited:
		if r.msg != "" && !strings.Contains(r.msg, "guest exited") {
			log.Printf("juice: vm %s: exited with status %d: %s", r.name, r.status, r.msg)
		} else {
			log.Printf("juice: vm %s: exited with status %d", r.name, r.status)
		}
	case vmm.Reset:
		if strings.Contains(r.msg, "juice's console") {
			log.Printf("juice: vm %s: %s", r.name, r.msg)
		} else {
			log.Printf("juice: vm %s: the guest reset the machine (reboot)", r.name)
		}
	case vmm.Panicked:
		log.Printf("juice: vm %s: stopped: %s", r.name, r.msg)
	case vmm.Shutdown:
		log.Printf("juice: vm %s: shut down (triple fault): %s", r.name, r.msg)
	case vmm.Fault:
		log.Printf("juice: vm %s: fault: %s", r.name, r.msg)
	default:
		log.Printf("juice: vm %s: stopped (%v): %s", r.name, r.reason, r.msg)
	}
	var exits, run uint64
	var by, ticks [64]uint64
	for _, v := range vm.VCPUs() {
		run += v.RunTicks
		for i, n := range v.Exits {
			exits += n
			if i < len(by) {
				by[i] += n
				ticks[i] += v.HandleTicks[i]
			}
		}
	}
	log.Printf("juice: vm %s: %d exits, %d heap allocations by juice while it ran", r.name, exits, r.mallocs)
	if vcpusMove {
		var moves uint64
		for _, v := range vm.VCPUs() {
			if c, ok := v.Backend().(*svm.VCPU); ok {
				moves += c.Moves
			}
		}
		log.Printf("juice: vm %s: its vCPUs changed host CPU %d times", r.name, moves)
	}
	var b strings.Builder
	us := func(t uint64) uint64 {
		if hz := kernel.TSCHz(); hz != 0 {
			return t * 1e6 / hz
		}
		return 0
	}
	var handled uint64
	for i, n := range by {
		if n != 0 {
			fmt.Fprintf(&b, " %s=%d (%d us)", vmm.ExitReason(i), n, us(ticks[i]))
			if vmm.ExitReason(i) != vmm.ExitHLT {
				handled += ticks[i]
			}
		}
	}
	log.Printf("juice: vm %s: exits by reason (count, time handling them; HLT's is idle time):%s", r.name, b.String())
	log.Printf("juice: vm %s: time in guest entry (guest code and world switches) %d ms, handling exits other than HLT %d ms, halted %d ms",
		r.name, us(run)/1000, us(handled)/1000, us(ticks[vmm.ExitHLT])/1000)
	if pc, ok := vm.Platform().(*platform.PC); ok {
		if stats := pc.VirtioStats(); len(stats) > 0 {
			b.Reset()
			seen := map[string]int{}
			for i, st := range stats {
				if i > 0 {
					b.WriteString(";")
				}
				fmt.Fprintf(&b, " %s%d", st.Type, seen[st.Type])
				seen[st.Type]++
				for q := range st.Kicks {
					fmt.Fprintf(&b, " q%d %d/%d", q, st.Kicks[q], st.Interrupts[q])
				}
				if n := st.Net; n != nil {
					fmt.Fprintf(&b, " (frames sent %d, received %d; dropped sending %d, receiving %d)", n.TxFrames, n.RxFrames, n.TxDropped, n.RxDropped)
				}
			}
			log.Printf("juice: vm %s: notifications per device queue (driver kicks/device interrupts):%s", r.name, b.String())
		}
	}
}

// vmClock is the VMs' clock (vmm.Config.Clock): juice's TSC-based
// monotonic nanoseconds, read directly. The default, time.Since, is a
// clock_gettime system call into juice's kernel on every read (the
// runtime has no vDSO here), and the VM core reads the clock several
// times per exit.
func vmClock() int64 { return int64(kernel.Now()) }

// buildVM creates one VM: RAM, the virtual PC (vmm/platform: APICs,
// PIC, PIT, RTC, COM1, ACPI), the guest image, the exit port and the
// scratch MMIO test device (README's "Guest platform").
func buildVM(spec bundle.VMSpec, devs *platform.Devices, be vmm.Backend) (*vmm.VM, *platform.PC, error) {
	var vm *vmm.VM
	watch := platform.NewPanicWatcher(console.Stream("["+spec.Name+"] "), func(reason string) {
		vm.Stop(vmm.Panicked, -1, "guest kernel panic: "+reason)
	})
	onThread, err := vcpuThread(spec.Name, spec.VCPUs, spec.Pin)
	if err != nil {
		return nil, nil, err
	}
	vm, err = vmm.New(vmm.Config{
		Name:       spec.Name,
		MemBytes:   spec.MemBytes,
		VCPUs:      spec.VCPUs,
		Console:    watch,
		HostCPUID:  cpu.CPUID,
		HostTSC:    cpu.RDTSC,
		Clock:      vmClock,
		VCPUThread: onThread,
		HostCPUs:   kernel.HostCPUs{},
	}, kernel.Host(), be)
	if err != nil {
		return nil, nil, err
	}
	var pc *platform.PC
	fail := func(err error) (*vmm.VM, *platform.PC, error) {
		if pc != nil {
			pc.Close() // the network ports
		}
		vm.Close()
		return nil, nil, err
	}
	if devs != nil && devs.Console != nil {
		devs.Console = watch
	}
	pc, err = platform.New(vm, platform.Config{
		Devices:  devs,
		TSCHz:    kernel.TSCHz(),
		PowerOff: func() { vm.Stop(vmm.Exited, 0, "guest powered off (ACPI S5)") },
		Reset:    func() { vm.Stop(vmm.Reset, 0, "guest reset the machine") },
		Panic: func(ev uint8) {
			reason := watch.Reason()
			if reason == "" {
				reason = fmt.Sprintf("reported through pvpanic (event %#x)", ev)
			}
			vm.Stop(vmm.Panicked, -1, "guest kernel panic: "+reason)
		},
	}, watch)
	if err != nil {
		return fail(err)
	}
	mods := make([]loader.Module, len(spec.Modules))
	for i, m := range spec.Modules {
		mods[i] = loader.Module{Data: m.Data, Cmdline: m.Cmdline}
	}
	img, err := loader.Load(vm.Mem, vm.VCPU(0), spec.KernelData, spec.Cmdline, mods)
	if err != nil {
		return fail(fmt.Errorf("kernel %q: %v", spec.Kernel, err))
	}
	if err := loader.SetRSDP(vm.Mem, img, pc.RSDP()); err != nil {
		return fail(err)
	}
	if kernel.TestMode() == "entrytest" && spec.Name == "broken" {
		// Fault injection: a task register that is not present is an
		// invalid guest state for VM entry; the VM must stop with a
		// readable message and the other VMs go on.
		v := vm.VCPU(0)
		v.SRegs.TR.Attr = 0
		v.SRegsDirty = true
	}
	exit := devices.NewExitPort(func(code int) { vm.Stop(vmm.Exited, code, "") })
	if err := vm.IO().Register(devices.DebugExitPort, devices.ExitPorts, exit); err != nil {
		return fail(err)
	}
	// RAM is one run from 0: a VM big enough to reach the scratch page
	// goes without the device rather than failing.
	if spec.MemBytes <= devices.ScratchBase {
		if err := vm.MMIO().Register(devices.ScratchBase, devices.ScratchSize, &devices.Scratch{}); err != nil {
			return fail(err)
		}
	}
	return vm, pc, nil
}

// deviceBackends makes the back-ends of a VM's virtio devices: they live
// as long as juice does, so that a guest's disk writes survive its
// reboots, and the networks are shared by name among the bundle's VMs.
// Disks on host disks are claimed here (hostdisk.go); a VM whose host
// disk regions are missing, out of range or taken gets an error and no
// back-ends.
func deviceBackends(spec bundle.VMSpec, switches map[string]*netswitch.Switch) (*platform.Devices, error) {
	d := spec.Devices
	if d == nil {
		return nil, nil
	}
	// Networks bridged to a host NIC (uplink.go); first, so that a VM
	// refused here has claimed no host disk.
	if err := attachUplinks(d.Nets, switches); err != nil {
		return nil, err
	}
	onHost, err := claimHostDisks(spec.Name, d.Disks)
	if err != nil {
		return nil, err
	}
	out := &platform.Devices{MMIO: d.Transport == "mmio"}
	for i, disk := range d.Disks {
		var be blk.Backend
		switch {
		case disk.Host != "":
			be = onHost[i] // read-only already when the disk is
		case disk.Image != nil:
			be = blk.NewOverlay(disk.Image, int64(disk.Size))
		default:
			be = blk.NewRAMDisk(int64(disk.Size))
		}
		if disk.ReadOnly && disk.Host == "" {
			be = blk.NewReadOnly(be)
		}
		out.Disks = append(out.Disks, platform.Disk{Backend: be, Serial: disk.Serial})
	}
	for _, n := range d.Nets {
		sw := switches[n.Network]
		if sw == nil {
			sw = netswitch.New(n.Network)
			switches[n.Network] = sw
		}
		out.Nets = append(out.Nets, platform.Net{Switch: sw, MAC: netswitch.MAC(n.MAC)})
	}
	if d.RNG {
		out.RNG = kernel.Entropy
	}
	if d.Console {
		out.Console = io.Discard // replaced by the VM's console stream in buildVM
	}
	return out, nil
}

var (
	beOnce sync.Once
	be     vmm.Backend
	beErr  error

	// guestCPUs are the host CPUs vCPUs run on (the backend is enabled
	// there); nextCPU spreads the vCPUs over them round-robin. With one
	// CPU nothing is pinned.
	guestCPUs []int
	nextCPU   atomic.Uint32
	// builderCPU: the CPU that goroutines building and closing VT-x VMs
	// are pinned to when VT-x is not on on every online CPU (see
	// backend); -1: they run anywhere.
	builderCPU = -1
	// vcpusMove: vCPU threads are not pinned; the backend follows them
	// (svm.Backend.CPUMoves).
	vcpusMove bool
)

// backend returns the hardware backend (AMD-V or Intel VT-x), enabled on
// the CPUs that will run vCPUs. AMD-V is enabled on every CPU (EFER.SVME
// and a host save area each) and a vCPU's goroutine runs wherever the Go
// scheduler puts it: each guest entry checks which CPU it is on and
// flushes the vCPU's ASID after a move (svm.Backend.CPUMoves). With
// juice.vcpus=boot (kernel.SpreadVCPUs), or where the CPU numbers cannot
// be read at entry (no RDTSCP), AMD-V runs on the boot CPU only and the
// vCPUs' threads are pinned there.
// VT-x is enabled (VMXON) on every CPU too, and each vCPU stays on the CPU
// vcpuThread places it on: a VMCS may only move between CPUs after a
// VMCLEAR where it is active. The backend builds a VMCS on whichever CPU
// builds the VM and VMCLEARs it there; the vCPU's first entry binds it to
// its own CPU (host state of that CPU, VMLAUNCH); an entry anywhere else
// is refused; closing a vCPU VMCLEARs its VMCS on its CPU (OnCPU). The
// backend learns the CPU from kernel.CPU. With juice.vcpus=boot, or where
// VMXON fails on some CPU, the goroutines that build and close VMs are
// pinned to a CPU where VT-x is on (pinBuilder).
func backend() (vmm.Backend, error) {
	beOnce.Do(func() {
		f := kernel.ProbeFeatures()
		switch {
		case f.SVM.Present:
			b, err := svm.New(f.SVM, kernel.Host())
			if err == nil {
				online := kernel.OnlineCPUs()
				cpus := []int{0}
				if kernel.SpreadVCPUs() && kernel.TSCAuxHoldsCPU() {
					cpus = online
				}
				guestCPUs, err = onEachCPU(cpus, b.Enable)
				// vCPUs move freely when AMD-V is on everywhere; else
				// each stays on one CPU where it is (vcpuThread).
				b.CPUMoves = err == nil && len(online) > 1 && len(guestCPUs) == len(online)
				vcpusMove = b.CPUMoves
			}
			be, beErr = b, err
		case f.VMX.Present:
			b, err := vmx.New(f.VMX, kernel.Host())
			if err == nil {
				online := kernel.OnlineCPUs()
				cpus := []int{0}
				if kernel.SpreadVCPUs() {
					cpus = online
				}
				b.CPU = kernel.CPU
				b.OnCPU = func(n int, f func()) error {
					if len(online) == 1 {
						f() // one CPU: the caller is on it
						return nil
					}
					return onCPU(n, func() error { f(); return nil })
				}
				guestCPUs, err = onEachCPU(cpus, b.Enable)
				if err == nil && len(online) > 1 && len(guestCPUs) < len(online) {
					builderCPU = guestCPUs[0]
				}
			}
			be, beErr = b, err
		default:
			beErr = fmt.Errorf("no usable hardware virtualization: %s; %s", f.SVM.String(), f.VMX.String())
		}
		if beErr == nil && len(kernel.OnlineCPUs()) > 1 {
			how := "vCPUs stay on the CPU they are placed on"
			if vcpusMove {
				how = "vCPUs run on any of them"
			}
			log.Printf("juice: %s enabled on cpus %v; %s", be.Name(), guestCPUs, how)
		}
	})
	if beErr != nil {
		return nil, beErr
	}
	return be, nil
}

// onCPU runs f on a new thread pinned to CPU n and returns its error (or
// the pinning's). The thread ends with f: it is locked for good, so that
// no other goroutine inherits its binding.
func onCPU(n int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := kernel.PinThread(n); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// onEachCPU runs enable on each of cpus, on a thread pinned there, and
// returns the CPUs where it succeeded. A CPU where it fails is reported
// and left out; it is an error only if it fails everywhere.
func onEachCPU(cpus []int, enable func() error) ([]int, error) {
	if len(cpus) == 1 && cpus[0] == 0 && len(kernel.OnlineCPUs()) == 1 {
		return cpus, enable() // one CPU: nothing to pin
	}
	var ok []int
	var first error
	for _, n := range cpus {
		if err := onCPU(n, enable); err != nil {
			log.Printf("juice: cpu %d left out of running guests: %v", n, err)
			if first == nil {
				first = err
			}
			continue
		}
		ok = append(ok, n)
	}
	if len(ok) == 0 {
		return nil, first
	}
	return ok, nil
}

// vcpuThread places VM name's vCPUs on host CPUs and returns the hook
// (vmm.Config.VCPUThread) that binds each vCPU's thread there. A VM with
// "pin" in the manifest gets exactly those CPUs (vCPU i on
// pin[i mod len(pin)]): every one must be running guests (guestCPUs),
// else the VM is refused with an error naming the CPU. Otherwise the
// vCPUs go round-robin over guestCPUs across all VMs, and nothing is
// bound when there is one CPU or when vCPUs move freely. It says where
// each vCPU runs. The hook allocates nothing (the exit-path allocation
// count covers the vCPU's whole life).
func vcpuThread(name string, n int, pin []int) (func(int), error) {
	if len(pin) > 0 {
		for _, c := range pin {
			if !slices.Contains(guestCPUs, c) {
				return nil, fmt.Errorf("pin: host cpu %d does not run guests here (cpus running guests: %v)", c, guestCPUs)
			}
		}
		if len(kernel.OnlineCPUs()) < 2 {
			return nil, nil // one CPU: every thread is there already
		}
	} else if len(kernel.OnlineCPUs()) < 2 || len(guestCPUs) == 0 || n < 1 || vcpusMove {
		return nil, nil
	}
	base := 0
	if len(pin) == 0 {
		base = int(nextCPU.Add(uint32(n))) - n
	}
	on := make([]int, n)
	for id := range on {
		if len(pin) > 0 {
			on[id] = pin[id%len(pin)]
			log.Printf("juice: vm %s: vCPU %d runs on cpu %d (pinned)", name, id, on[id])
		} else {
			on[id] = guestCPUs[(base+id)%len(guestCPUs)]
			log.Printf("juice: vm %s: vCPU %d runs on cpu %d", name, id, on[id])
		}
	}
	return func(id int) {
		if id < 0 || id >= len(on) {
			return
		}
		if err := kernel.PinThread(on[id]); err != nil {
			log.Printf("juice: vm %s: vCPU %d: %v", name, id, err)
		}
	}, nil
}

// pinBuilder pins the calling goroutine for good to a CPU where VT-x is
// on, when the VT-x backend is not on everywhere (see backend); it does
// nothing otherwise.
func pinBuilder() {
	if builderCPU < 0 {
		return
	}
	runtime.LockOSThread()
	if err := kernel.PinThread(builderCPU); err != nil {
		log.Printf("juice: %v", err)
	}
}
