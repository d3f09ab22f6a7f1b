package main

import (
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"

	"juice/cpu"
	"juice/kernel"
	"juice/svm"
	"juice/vmm"
	"juice/vmm/bundle"
	"juice/vmm/devices"
	"juice/vmm/loader"
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
	results := make([]vmResult, len(b.VMs))
	var wg sync.WaitGroup
	for i, spec := range b.VMs {
		results[i] = vmResult{name: spec.Name, reason: vmm.Error, status: -1}
		vm, err := buildVM(spec, be)
		if err != nil {
			results[i].msg = err.Error()
			log.Printf("juice: vm %s: %v", spec.Name, err)
			continue
		}
		log.Printf("juice: vm %s: starting (%d MiB, %d vCPU)", spec.Name, spec.MemBytes>>20, spec.VCPUs)
		wg.Add(1)
		go func(i int, vm *vmm.VM) {
			defer wg.Done()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			reason, status, msg := vm.Run()
			runtime.ReadMemStats(&after)
			results[i] = vmResult{name: vm.Name, reason: reason, status: status, msg: msg,
				mallocs: after.Mallocs - before.Mallocs}
			report(results[i], vm)
			vm.Close()
		}(i, vm)
	}
	wg.Wait()
	first := results[0]
	if first.reason != vmm.Exited {
		return 125
	}
	return first.status
}

// report prints one VM's end on juice's console.
func report(r vmResult, vm *vmm.VM) {
	// The core's messages name the VM already; say it once.
	r.msg = strings.TrimPrefix(r.msg, fmt.Sprintf("vm %q: ", r.name))
	switch r.reason {
	case vmm.Exited:
		log.Printf("juice: vm %s: exited with status %d", r.name, r.status)
	case vmm.Shutdown:
		log.Printf("juice: vm %s: shut down (triple fault): %s", r.name, r.msg)
	case vmm.Fault:
		log.Printf("juice: vm %s: fault: %s", r.name, r.msg)
	default:
		log.Printf("juice: vm %s: stopped (%v): %s", r.name, r.reason, r.msg)
	}
	var exits uint64
	for _, v := range vm.VCPUs() {
		for _, n := range v.Exits {
			exits += n
		}
	}
	log.Printf("juice: vm %s: %d exits, %d heap allocations by juice while it ran", r.name, exits, r.mallocs)
}

// buildVM creates one VM: RAM, the guest image, COM1, the exit port and
// the scratch MMIO test device (README's "Guest platform").
func buildVM(spec bundle.VMSpec, be vmm.Backend) (*vmm.VM, error) {
	console := devices.PrefixWriter("["+spec.Name+"] ", os.Stdout)
	vm, err := vmm.New(vmm.Config{
		Name:      spec.Name,
		MemBytes:  spec.MemBytes,
		VCPUs:     spec.VCPUs,
		Console:   console,
		HostCPUID: cpu.CPUID,
		HostTSC:   cpu.RDTSC,
	}, kernel.Host(), be)
	if err != nil {
		return nil, err
	}
	mods := make([]loader.Module, len(spec.Modules))
	for i, m := range spec.Modules {
		mods[i] = loader.Module{Data: m.Data, Cmdline: m.Cmdline}
	}
	if _, err := loader.Load(vm.Mem, vm.VCPU(0), spec.KernelData, spec.Cmdline, mods); err != nil {
		vm.Close()
		return nil, fmt.Errorf("kernel %q: %v", spec.Kernel, err)
	}
	if kernel.TestMode() == "entrytest" && spec.Name == "broken" {
		// Fault injection: a task register that is not present is an
		// invalid guest state for VM entry; the VM must stop with a
		// readable message and the other VMs go on.
		v := vm.VCPU(0)
		v.SRegs.TR.Attr = 0
		v.SRegsDirty = true
	}
	uart := devices.NewUART(console)
	if err := vm.IO().Register(devices.COM1, devices.UARTPorts, uart); err != nil {
		vm.Close()
		return nil, err
	}
	exit := devices.NewExitPort(func(code int) { vm.Stop(vmm.Exited, code, "") })
	if err := vm.IO().Register(devices.DebugExitPort, devices.ExitPorts, exit); err != nil {
		vm.Close()
		return nil, err
	}
	// RAM is one run from 0: a VM big enough to reach the scratch page
	// goes without the device rather than failing.
	if spec.MemBytes <= devices.ScratchBase {
		if err := vm.MMIO().Register(devices.ScratchBase, devices.ScratchSize, &devices.Scratch{}); err != nil {
			vm.Close()
			return nil, err
		}
	} else {
		log.Printf("juice: vm %s: no scratch device: its RAM covers %#x", spec.Name, devices.ScratchBase)
	}
	return vm, nil
}

var (
	beOnce sync.Once
	be     vmm.Backend
	beErr  error
)

// backend returns the hardware backend for this CPU (AMD-V or Intel VT-x),
// enabled on it.
func backend() (vmm.Backend, error) {
	beOnce.Do(func() {
		f := kernel.ProbeFeatures()
		switch {
		case f.SVM.Present:
			b, err := svm.New(f.SVM, kernel.Host())
			if err == nil {
				err = b.Enable()
			}
			be, beErr = b, err
		case f.VMX.Present:
			b, err := vmx.New(f.VMX, kernel.Host())
			if err == nil {
				err = b.Enable()
			}
			be, beErr = b, err
		default:
			beErr = fmt.Errorf("no usable hardware virtualization: %s; %s", f.SVM.String(), f.VMX.String())
		}
	})
	if beErr != nil {
		return nil, beErr
	}
	return be, nil
}
