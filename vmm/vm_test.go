package vmm

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestNewAllocatesZeroedRAMAndVCPUs(t *testing.T) {
	th := newTestHost(t, testHostSize)
	free := th.fr.FreeCount()
	be := newFakeBackend()
	vm, err := New(Config{Name: "a", MemBytes: 1 << 20, VCPUs: 3, HostCPUID: fakeCPUID(intelVendor)}, &th.host, be)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Mem.Size() != 1<<20 {
		t.Fatalf("RAM size %#x", vm.Mem.Size())
	}
	if got := th.fr.FreeCount(); got != free-256 {
		t.Fatalf("free frames %d, want %d", got, free-256)
	}
	ram, _ := vm.Mem.Slice(0, vm.Mem.Size())
	for i, b := range ram {
		if b != 0 {
			t.Fatalf("RAM byte %#x = %#x, want zeroed", i, b)
		}
	}
	// RAM is the host's memory at HPA.
	hostView, _ := th.mem.Bytes(vm.Mem.HPA(), 16)
	ram[3] = 0x77
	if hostView[3] != 0x77 {
		t.Fatal("guest RAM is not the host memory at HPA")
	}
	if len(vm.VCPUs()) != 3 || be.created != 3 || vm.VCPU(2).ID != 2 || vm.VCPU(3) != nil || vm.VCPU(-1) != nil {
		t.Fatalf("vCPUs: %d created %d", len(vm.VCPUs()), be.created)
	}
	for _, v := range vm.VCPUs() {
		if v.VM != vm || v.Regs.RIP != 0xfff0 || v.SRegs.CS.Base != 0xffff0000 || !v.SRegsDirty || !v.MSRDirty || v.MSR.PAT != patPowerOn {
			t.Fatalf("vCPU %d not in the power-on state: %+v", v.ID, v.Regs)
		}
		if v.Regs.RDX != 0x000906ea {
			t.Fatalf("EDX %#x, want the processor signature", v.Regs.RDX)
		}
	}
	vm.Close()
	if got := th.fr.FreeCount(); got != free {
		t.Fatalf("after Close: free frames %d, want %d", got, free)
	}
	if be.closed != 3 {
		t.Fatalf("backends closed %d, want 3", be.closed)
	}
	vm.Close() // idempotent
	if be.closed != 3 || th.fr.FreeCount() != free {
		t.Fatal("second Close released again")
	}
}

func TestNewErrors(t *testing.T) {
	th := newTestHost(t, testHostSize)
	cpuid := fakeCPUID(intelVendor)
	for _, tc := range []struct {
		name string
		cfg  Config
		host *Host
		be   Backend
		want string
	}{
		{"too big", Config{Name: "big", MemBytes: 64 << 20, VCPUs: 1, HostCPUID: cpuid}, &th.host, newFakeBackend(), `vm "big": cannot allocate 64 MiB`},
		{"unaligned", Config{Name: "u", MemBytes: 4097, VCPUs: 1, HostCPUID: cpuid}, &th.host, newFakeBackend(), "multiple of 4 KiB"},
		{"zero", Config{Name: "z", MemBytes: 0, VCPUs: 1, HostCPUID: cpuid}, &th.host, newFakeBackend(), "multiple of 4 KiB"},
		{"vcpus", Config{Name: "c", MemBytes: 4096, VCPUs: 0, HostCPUID: cpuid}, &th.host, newFakeBackend(), "0 vCPUs"},
		{"many vcpus", Config{Name: "c", MemBytes: 4096, VCPUs: MaxVCPUs + 1, HostCPUID: cpuid}, &th.host, newFakeBackend(), "65 vCPUs"},
		{"no cpuid", Config{Name: "n", MemBytes: 4096, VCPUs: 1}, &th.host, newFakeBackend(), "CPUID"},
		{"no host", Config{Name: "h", MemBytes: 4096, VCPUs: 1, HostCPUID: cpuid}, nil, newFakeBackend(), "no host memory"},
		{"no backend", Config{Name: "b", MemBytes: 4096, VCPUs: 1, HostCPUID: cpuid}, &th.host, nil, "no backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			free := th.fr.FreeCount()
			vm, err := New(tc.cfg, tc.host, tc.be)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want error containing %q", vm, err, tc.want)
			}
			if th.fr.FreeCount() != free {
				t.Fatal("failed New leaked frames")
			}
		})
	}
}

func TestNewBackendFailureReleasesEverything(t *testing.T) {
	th := newTestHost(t, testHostSize)
	free := th.fr.FreeCount()
	be := newFakeBackend()
	be.failAt = 2
	_, err := New(Config{Name: "x", MemBytes: 1 << 20, VCPUs: 4, HostCPUID: fakeCPUID(amdVendor)}, &th.host, be)
	if err == nil || !strings.Contains(err.Error(), "vCPU 2: no VMCB for you") {
		t.Fatalf("err %v", err)
	}
	if th.fr.FreeCount() != free || be.closed != 2 {
		t.Fatalf("free %d want %d; closed %d want 2", th.fr.FreeCount(), free, be.closed)
	}
}

func TestStopFirstWins(t *testing.T) {
	tv := newTestVM(t, Config{})
	if r, _, _ := tv.Stopped(); r != Running {
		t.Fatalf("new VM stopped: %v", r)
	}
	tv.Stop(Running, 1, "ignored")
	tv.Stop(Exited, 7, "first")
	tv.Stop(Fault, 9, "second")
	r, st, msg := tv.Stopped()
	if r != Exited || st != 7 || msg != "first" {
		t.Fatalf("Stopped = %v %d %q", r, st, msg)
	}
	if Exited.String() != "exited" || HaltedForever.String() != "halted-forever" || StopReason(99).String() != "unknown" {
		t.Fatal("StopReason strings")
	}
}

func TestStopConcurrent(t *testing.T) {
	tv := newTestVM(t, Config{})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tv.Stop(Fault, i, "x")
		}()
	}
	wg.Wait()
	if r, _, _ := tv.Stopped(); r != Fault {
		t.Fatalf("reason %v", r)
	}
}

func TestRunExitPortAndConsole(t *testing.T) {
	var out bytes.Buffer
	tv := newTestVM(t, Config{Console: &out})
	if err := tv.AddExitPort(DefaultExitPort); err != nil {
		t.Fatal(err)
	}
	if err := tv.AddDebugConsole(DefaultDebugConsolePort); err != nil {
		t.Fatal(err)
	}
	var steps []fakeStep
	for _, c := range []byte("hi\n") {
		c := c
		steps = append(steps, fakeStep{exit: Exit{Reason: ExitIO, Port: 0xe9, Size: 1, InstrLen: 1},
			pre: func(v *VCPU) { v.Regs.RAX = uint64(c) }})
	}
	steps = append(steps, fakeStep{exit: Exit{Reason: ExitIO, Port: 0xf4, Size: 4, InstrLen: 1},
		pre: func(v *VCPU) { v.Regs.RAX = 42 }})
	tv.script(0, steps...)
	r, st, msg := tv.Run()
	if r != Exited || st != 42 || !strings.Contains(msg, "status 42 (exit port)") {
		t.Fatalf("Run = %v %d %q", r, st, msg)
	}
	if out.String() != "hi\n" {
		t.Fatalf("console %q", out.String())
	}
	// Devices cannot be added once started, nor vCPUs started twice.
	if err := tv.IO().Register(0x80, 1, &recDevice{}); err == nil {
		t.Fatal("Register after Start succeeded")
	}
	if err := tv.MMIO().Register(1<<32, 0x1000, &recDevice{}); err == nil {
		t.Fatal("MMIO Register after Start succeeded")
	}
	if err := tv.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := tv.StartVCPU(5); err == nil {
		t.Fatal("StartVCPU(5) succeeded")
	}
}

func TestCloseStopsRunningVM(t *testing.T) {
	tv := newTestVM(t, Config{})
	tv.AddInterruptSource()
	v := tv.VCPU(0)
	v.Regs.RFLAGS = rflagsFixed | rflagsIF
	tv.script(0, fakeStep{exit: Exit{Reason: ExitHLT, InstrLen: 1}})
	if err := tv.Start(); err != nil {
		t.Fatal(err)
	}
	tv.Close() // the vCPU is blocked in HLT: Close must wake it
	r, _, msg := tv.Stopped()
	if r != Killed || !strings.Contains(msg, "closed by the host") {
		t.Fatalf("%v %q", r, msg)
	}
	if !tv.fake(0).closed {
		t.Fatal("backend not closed")
	}
}

// TestVMsAreIndependent: one VM's triple fault leaves another running.
func TestVMsAreIndependent(t *testing.T) {
	a := newTestVM(t, Config{Name: "a"})
	b := newTestVM(t, Config{Name: "b"})
	a.script(0, fakeStep{exit: Exit{Reason: ExitShutdown, Raw: 0x7f}, rip: 0x1234, setRIP: true})
	b.script(0, fakeStep{exit: Exit{Reason: ExitCPUID, InstrLen: 2}})
	a.step(a.VCPU(0))
	b.step(b.VCPU(0))
	a.wantStop(t, Shutdown, `vm "a": vCPU 0 shut down (triple fault) at RIP 0x1234 (exit code 0x7f`)
	b.wantRunning(t)
}

// VCPUThread runs in each started vCPU's goroutine, with the vCPU's ID,
// before the vCPU's first guest entry.
func TestVCPUThreadHook(t *testing.T) {
	var mu sync.Mutex
	var got []int
	entered := false
	tv := newTestVM(t, Config{VCPUThread: func(id int) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, id)
	}})
	if err := tv.AddExitPort(DefaultExitPort); err != nil {
		t.Fatal(err)
	}
	tv.script(0, fakeStep{exit: Exit{Reason: ExitIO, Port: 0xf4, Size: 4, InstrLen: 1},
		pre: func(v *VCPU) {
			mu.Lock()
			defer mu.Unlock()
			entered = len(got) == 1
			v.Regs.RAX = 3
		}})
	if r, st, _ := tv.Run(); r != Exited || st != 3 {
		t.Fatalf("Run = %v %d", r, st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != 0 || !entered {
		t.Fatalf("hook calls %v, before the first entry: %v", got, entered)
	}
}
