// Package platform assembles the virtual PC a stock guest kernel expects
// from the device models of juice/vmm/apic, juice/vmm/devices and
// juice/vmm/acpi, and plugs it into the core as the VM's vmm.Platform:
//
//	local APIC per vCPU   xAPIC page at FEE0_0000 (per-vCPU window), x2APIC MSRs, TSC-deadline
//	I/O APIC              FEC0_0000, 24 pins; ISA IRQ n on GSI n except IRQ 0 on GSI 2
//	8259 PIC pair         0x20, 0xA0, ELCR 0x4D0 (the guest masks it once it uses the I/O APIC)
//	8254 PIT              0x40-0x43, port 0x61 (IRQ 0)
//	RTC/CMOS              0x70-0x71, memory size in CMOS
//	16550 UART (COM1)     0x3F8, IRQ 4: output to the VM's console, input fed by the host
//	ACPI PM1a / PM timer  0x600 / 0x604 / 0x608 (S5 powers the VM off)
//	reset                 0xCF9 (the FADT's reset register) and the 8042 at 0x60/0x64
//	pvpanic               0x505: a guest kernel panic stops the VM
//	ACPI tables           RSDP at 0xE0000, XSDT, FADT, FACS, MADT, DSDT (\_S5_, pvpanic)
//	kvmclock              MSRs 4B56_4D00/01 with the KVM signature at CPUID 4000_0100
//
// The guest learns its TSC frequency from kvmclock (Linux's
// kvm_get_tsc_khz), so it never calibrates against a timer.
//
// Building the platform allocates; its exit-path methods (Poll, Pending,
// Ack, the MSR and local-window accessors) do not, and take only the
// device models' own short locks, never across guest entry.
package platform

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"time"

	"juice/vmm"
	"juice/vmm/acpi"
	"juice/vmm/apic"
	"juice/vmm/devices"
	"juice/vmm/pci"
	vnet "juice/vmm/virtio/net"
)

// Fixed addresses.
const (
	// COM1IRQ is the ISA IRQ of COM1.
	COM1IRQ = 4
	// MaxRAM is the most RAM a VM with this platform may have: guest RAM
	// is one run from 0 and must stay below the I/O APIC and local APIC
	// pages (FEC0_0000, FEE0_0000) and the PCI hole a later PCI model
	// needs.
	MaxRAM = 3 << 30
	// KVM paravirtual-clock MSRs (the "new" pair, KVM_FEATURE_CLOCKSOURCE2).
	MSRKVMWallClock  = 0x4b564d00
	MSRKVMSystemTime = 0x4b564d01
	// IA32_TSC_DEADLINE.
	MSRTSCDeadline = 0x6e0
)

// Config is what the platform needs from the VM builder.
type Config struct {
	// TSCHz is the guest TSC's rate (the host's TSC rate): kvmclock and
	// the TSC-deadline timer are scaled by it. Required.
	TSCHz uint64
	// Wall returns the wall-clock time (RTC, kvmclock's wall clock).
	// Nil: time.Now.
	Wall func() time.Time
	// PowerOff is called when the guest enters ACPI S5 (poweroff).
	PowerOff func()
	// Reset is called when the guest resets the machine (reboot).
	Reset func()
	// Panic is called when the guest reports a kernel panic (pvpanic
	// event bits).
	Panic func(event uint8)
	// Devices are the VM's virtio devices (nil: none).
	Devices *Devices
}

// PC is one VM's virtual PC.
type PC struct {
	vm       *vmm.VM
	cfg      Config
	lapics   []*apic.LAPIC
	ioapic   *apic.IOAPIC
	pic      *devices.PIC
	pit      *devices.PIT
	rtc      *devices.RTC
	pm       *devices.PM1
	pmt      *devices.PMTimer
	reset    *devices.Reset
	uart     *devices.UART
	pvp      *devices.PVPanic
	tables   acpi.Tables
	bus      *pci.Bus
	virtio   []virtioDev
	nets     []*vnet.Device
	mmioACPI []acpi.MMIODevice
	// kvmclock state per vCPU: the MSR values the guest wrote.
	sysTime []uint64
	wallMSR uint64
	// yield: a vCPU that sends another an IPI yields its host CPU to it
	// (the vCPUs share one).
	yield bool
}

// New builds the PC for vm (which must not have started), registers its
// devices on the VM's buses, copies the ACPI tables into guest RAM,
// extends the guest's CPUID (vmm.CPUIDTable.EnablePlatform) and attaches
// itself as the VM's platform. console receives COM1's output.
func New(vm *vmm.VM, cfg Config, console io.Writer) (*PC, error) {
	if cfg.TSCHz == 0 {
		return nil, fmt.Errorf("vm %q: platform: unknown TSC frequency", vm.Name)
	}
	if vm.Mem.Size() > MaxRAM {
		return nil, fmt.Errorf("vm %q: %d MiB of RAM: this platform supports at most %d MiB (RAM must stay below the APIC pages)",
			vm.Name, vm.Mem.Size()>>20, uint64(MaxRAM)>>20)
	}
	if cfg.Wall == nil {
		cfg.Wall = time.Now
	}
	p := &PC{vm: vm, cfg: cfg}
	n := len(vm.VCPUs())
	p.yield = n > 1 && runtime.GOMAXPROCS(0) == 1
	p.sysTime = make([]uint64, n)

	// Interrupt controllers.
	p.ioapic = apic.NewIOAPIC(uint8(n), p.route) // I/O APIC ID after the vCPUs' APIC IDs
	p.lapics = make([]*apic.LAPIC, n)
	for i, v := range vm.VCPUs() {
		id := i
		a := apic.New(uint32(i), vm.Now, cfg.TSCHz, func(uint8) { vm.Kick(id) }, p.sendIPI)
		a.SetGuestTSC(func() uint64 { return guestTSC(v) })
		a.SetEOIBroadcast(p.ioapic.EOI)
		p.lapics[i] = a
	}
	p.pic = devices.NewPIC(p.picDeliver)
	p.pit = devices.NewPIT(vm.Now, p.pitIRQ)
	p.rtc = devices.NewRTC(cfg.Wall)
	p.rtc.SetMemory(vm.Mem.Size(), 0)
	p.pm = devices.NewPM1(acpi.SlpTypS5, func() {
		if cfg.PowerOff != nil {
			cfg.PowerOff()
		}
	})
	p.pmt = devices.NewPMTimer(vm.Now)
	p.reset = devices.NewReset(func() {
		if cfg.Reset != nil {
			cfg.Reset()
		}
	})
	p.uart = devices.NewUART(console)
	p.uart.SetIRQ(func(level bool) { p.isaIRQ(COM1IRQ, level) })
	p.pvp = devices.NewPVPanic(func(ev uint8) {
		if cfg.Panic != nil {
			cfg.Panic(ev)
		}
	})

	// Buses.
	io := vm.IO()
	regs := []struct {
		port uint16
		n    uint32
		dev  vmm.PortDevice
		what string
	}{
		{devices.PICMasterPort, devices.PICPorts, p.pic.Master(), "PIC master"},
		{devices.PICSlavePort, devices.PICPorts, p.pic.Slave(), "PIC slave"},
		{devices.ELCRPort, devices.ELCRPorts, p.pic.ELCR(), "ELCR"},
		{devices.PITPort, devices.PITPorts, p.pit, "PIT"},
		{devices.Port61, 1, p.pit.Port61(), "port 0x61"},
		{devices.RTCPort, devices.RTCPorts, p.rtc, "RTC"},
		{acpi.DefaultPM1aEvtPort, acpi.PM1EvtLen, p.pm.Event(), "PM1a event block"},
		{acpi.DefaultPM1aCntPort, acpi.PM1CntLen, p.pm.Control(), "PM1a control block"},
		{acpi.DefaultPMTimerPort, acpi.PMTimerLen, p.pmt, "PM timer"},
		{devices.KBCDataPort, 1, p.reset.KBCData(), "8042 data"},
		{devices.KBCCommandPort, 1, p.reset.KBCCommand(), "8042 command"},
		{devices.COM1, devices.UARTPorts, p.uart, "COM1"},
		{devices.PVPanicPort, devices.PVPanicPorts, p.pvp, "pvpanic"},
	}
	for _, r := range regs {
		if err := io.Register(r.port, r.n, r.dev); err != nil {
			return nil, fmt.Errorf("vm %q: %s: %v", vm.Name, r.what, err)
		}
	}
	if err := vm.MMIO().Register(acpi.DefaultIOAPICAddr, 0x1000, p.ioapic); err != nil {
		return nil, fmt.Errorf("vm %q: I/O APIC: %v", vm.Name, err)
	}
	// The PCI bus (it also serves the reset register at 0xCF9, inside
	// its configuration-address ports) and the virtio devices.
	if err := p.addPCI(); err != nil {
		return nil, fmt.Errorf("vm %q: PCI: %v", vm.Name, err)
	}
	if err := p.addDevices(cfg.Devices); err != nil {
		p.Close()
		return nil, fmt.Errorf("vm %q: %v", vm.Name, err)
	}

	// ACPI tables.
	ac := acpi.DefaultConfig(n, vm.Mem.Size())
	ac.PVPanicPort = devices.PVPanicPort
	pc := acpi.DefaultPCIConfig()
	ac.PCI = &pc
	ac.VirtioMMIO = p.mmioACPI
	t, err := acpi.Build(ac)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("vm %q: ACPI tables: %v", vm.Name, err)
	}
	for _, b := range t.Blobs {
		dst, ok := vm.Mem.Slice(b.GPA, uint64(len(b.Data)))
		if !ok {
			p.Close()
			return nil, fmt.Errorf("vm %q: ACPI table at %#x does not fit in guest RAM", vm.Name, b.GPA)
		}
		copy(dst, b.Data)
	}
	p.tables = t

	vm.CPUID().EnablePlatform()
	if err := vm.SetPlatform(p); err != nil {
		p.Close()
		return nil, err
	}
	// The UART's input and the timers raise interrupts from other
	// goroutines or on their own.
	vm.AddInterruptSource()
	return p, nil
}

// RSDP is the guest-physical address of the RSDP (for boot protocols
// that pass it: Linux's acpi_rsdp_addr, PVH's rsdp_paddr).
func (p *PC) RSDP() uint64 { return p.tables.RSDPAddr }

// UART is COM1 (the host feeds console input with its Feed).
func (p *PC) UART() *devices.UART { return p.uart }

// LAPIC returns vCPU id's local APIC (tests, statistics).
func (p *PC) LAPIC(id int) *apic.LAPIC { return p.lapics[id] }

// guestTSC is v's TSC: the host's plus the vCPU's offset.
func guestTSC(v *vmm.VCPU) uint64 { return v.VM.HostTSC() + v.MSR.TSCOffset }

// isaIRQ sets ISA interrupt line irq on the PIC and on its I/O APIC pin.
func (p *PC) isaIRQ(irq uint8, level bool) {
	if level {
		p.pic.Raise(irq)
	} else {
		p.pic.Lower(irq)
	}
	p.ioapic.SetIRQ(isaGSI(irq), level)
}

// isaGSI maps an ISA IRQ to its GSI (the MADT's override: IRQ 0 is GSI 2).
func isaGSI(irq uint8) int {
	if irq == 0 {
		return 2
	}
	return int(irq)
}

// pitIRQ is the PIT's counter-0 edge.
func (p *PC) pitIRQ() {
	p.pic.Pulse(0)
	p.ioapic.SetIRQ(2, true)
	p.ioapic.SetIRQ(2, false)
}

// picDeliver takes a vector the PIC delivers (an ExtINT): it reaches the
// boot vCPU when its LINT0 is unmasked in ExtINT mode (virtual-wire mode)
// or its local APIC is disabled (the PIC is then wired to the CPU).
func (p *PC) picDeliver(vector uint8) {
	a := p.lapics[0]
	lint0 := uint32(a.Read(apic.RegLVTLINT0, 4))
	enabled := a.APICBase()&apic.BaseEnable != 0 && uint32(a.Read(apic.RegSVR, 4))&apic.SVREnable != 0
	if enabled && (lint0&apic.LVTMasked != 0 || apic.DeliveryMode(lint0>>8&7) != apic.ExtINT) {
		return
	}
	p.vm.Interrupt(0, vector)
}

// route delivers an I/O APIC message to the local APICs it targets.
func (p *PC) route(r apic.Route) {
	switch r.Mode {
	case apic.Fixed, apic.LowestPriority:
	default:
		return // NMI, SMI, INIT, ExtINT through the I/O APIC: not modelled
	}
	for _, a := range p.lapics {
		if a.MatchDest(uint32(r.Dest), r.Logical) {
			a.AcceptLevel(r.Vector, r.Level)
			if r.Mode == apic.LowestPriority {
				return
			}
		}
	}
}

// sendIPI delivers an IPI a guest's local APIC sent; it runs on the
// sending vCPU's goroutine. Fixed and lowest-priority IPIs go into their
// targets' IRRs (a lowest-priority one to the first target alone), which
// wakes them (the local APIC's deliver callback kicks the vCPU). INIT
// resets a target's local APIC and puts its vCPU into wait-for-SIPI
// (vmm.VM.InitVCPU); an INIT of the boot vCPU, which on a PC restarts it
// in firmware that juice's guests do not have, resets the machine (the
// guest reboots). STARTUP starts a vCPU waiting for one
// (vmm.VM.StartupVCPU). The INIT level de-assert, NMI, SMI and ExtINT
// IPIs are dropped. Exit path: allocation-free.
func (p *PC) sendIPI(ipi apic.IPI) {
	switch ipi.Mode {
	case apic.Fixed, apic.LowestPriority, apic.StartUp:
	case apic.INIT:
		if !ipi.Assert && ipi.LevelTrigger {
			return // INIT level de-assert: no effect since the Pentium 4
		}
	default:
		return
	}
	other := false // the IPI reached another vCPU
targets:
	for i, a := range p.lapics {
		var hit bool
		switch ipi.Shorthand {
		case apic.ToSelf:
			hit = a.ID() == ipi.Source
		case apic.ToAll:
			hit = true
		case apic.ToAllButSelf:
			hit = a.ID() != ipi.Source
		default:
			hit = a.MatchDest(ipi.Dest, ipi.Logical)
		}
		if !hit {
			continue
		}
		other = other || a.ID() != ipi.Source
		switch ipi.Mode {
		case apic.INIT:
			if i == 0 {
				if p.cfg.Reset != nil {
					p.cfg.Reset()
				}
				continue
			}
			a.Init()
			p.vm.InitVCPU(i)
		case apic.StartUp:
			p.vm.StartupVCPU(i, ipi.Vector)
		default:
			a.AcceptLevel(ipi.Vector, ipi.LevelTrigger)
			if ipi.Mode == apic.LowestPriority {
				break targets
			}
		}
	}
	if src := p.vm.VCPU(int(ipi.Source)); other && p.yield && src != nil {
		// The vCPUs share the host CPU: let the target run now rather
		// than at the sender's next preemption (a guest waiting for the
		// IPI's answer, as Linux's function-call IPIs do, would
		// otherwise spin until then).
		src.Yield()
	}
}

// Poll runs v's local APIC timer and (on the boot vCPU) the PIT.
// Exit path: allocation-free.
func (p *PC) Poll(v *vmm.VCPU, now int64) (int64, bool) {
	a := p.lapics[v.ID]
	a.Tick()
	next, ok := a.NextDeadline()
	if v.ID == 0 {
		p.serviceDevices()
		p.pit.Tick()
		if d, armed := p.pit.NextDeadline(); armed && (!ok || d < next) {
			next, ok = d, true
		}
	}
	return next, ok
}

// Pending returns v's local APIC's highest deliverable vector.
func (p *PC) Pending(v *vmm.VCPU) (uint8, bool) { return p.lapics[v.ID].Pending() }

// Ack moves vector to in-service in v's local APIC.
func (p *PC) Ack(v *vmm.VCPU, vector uint8) { p.lapics[v.ID].Ack(vector) }

// LocalMMIO is v's xAPIC register page while its APIC is enabled in
// xAPIC mode.
func (p *PC) LocalMMIO(v *vmm.VCPU) (uint64, uint64) {
	base := p.lapics[v.ID].APICBase()
	if base&apic.BaseEnable == 0 || base&apic.BaseEXTD != 0 {
		return 0, 0
	}
	return base &^ 0xfff, 0x1000
}

// LocalRead reads v's xAPIC page.
func (p *PC) LocalRead(v *vmm.VCPU, off uint64, size uint8) uint64 {
	return p.lapics[v.ID].Read(off, size)
}

// LocalWrite writes v's xAPIC page.
func (p *PC) LocalWrite(v *vmm.VCPU, off uint64, size uint8, val uint64) {
	p.lapics[v.ID].Write(off, size, val)
}

// ReadMSR serves the APIC and kvmclock MSRs.
func (p *PC) ReadMSR(v *vmm.VCPU, msr uint32) (uint64, bool, bool) {
	a := p.lapics[v.ID]
	switch {
	case msr == vmm.MSRAPICBase:
		return a.APICBase(), true, true
	case msr == MSRTSCDeadline:
		return a.TSCDeadline(), true, true
	case msr >= 0x800 && msr <= 0x8ff:
		val, ok := a.ReadMSR(msr)
		return val, true, ok
	case msr == MSRKVMSystemTime:
		return p.sysTime[v.ID], true, true
	case msr == MSRKVMWallClock:
		return p.wallMSR, true, true
	}
	return 0, false, false
}

// WriteMSR serves the APIC and kvmclock MSRs.
func (p *PC) WriteMSR(v *vmm.VCPU, msr uint32, val uint64) (bool, bool) {
	a := p.lapics[v.ID]
	switch {
	case msr == vmm.MSRAPICBase:
		return true, a.SetAPICBase(val)
	case msr == MSRTSCDeadline:
		a.SetTSCDeadline(val)
		return true, true
	case msr >= 0x800 && msr <= 0x8ff:
		return true, a.WriteMSR(msr, val)
	case msr == MSRKVMSystemTime:
		p.sysTime[v.ID] = val
		if val&1 != 0 {
			p.writeSystemTime(v, val&^1)
		}
		return true, true
	case msr == MSRKVMWallClock:
		p.wallMSR = val
		p.writeWallClock(val)
		return true, true
	}
	return false, false
}

// pvclockSize is sizeof(struct pvclock_vcpu_time_info).
const pvclockSize = 32

// writeSystemTime writes v's pvclock_vcpu_time_info at gpa: the VM's
// clock now and the guest TSC read at the same moment, with the TSC's
// scale. The TSC is stable, so the record never needs updating. A gpa
// outside RAM or crossing a page is ignored (KVM does the same: the
// guest's clock then reads zeros). Allocation-free.
func (p *PC) writeSystemTime(v *vmm.VCPU, gpa uint64) {
	if gpa&0xfff > 0x1000-pvclockSize {
		return
	}
	b, ok := p.vm.Mem.Slice(gpa, pvclockSize)
	if !ok {
		return
	}
	now := p.vm.Now()
	tsc := guestTSC(v)
	mul, shift := PVClockScale(p.cfg.TSCHz)
	le := binary.LittleEndian
	version := le.Uint32(b[0:]) + 1
	version += version & 1 // even: a stable record
	le.PutUint32(b[0:], version)
	le.PutUint32(b[4:], 0)
	le.PutUint64(b[8:], tsc)
	le.PutUint64(b[16:], uint64(now))
	le.PutUint32(b[24:], mul)
	b[28] = byte(shift)
	b[29] = pvclockTSCStable
	b[30], b[31] = 0, 0
}

// pvclockTSCStable is PVCLOCK_TSC_STABLE_BIT.
const pvclockTSCStable = 1

// writeWallClock writes pvclock_wall_clock at gpa: the wall-clock time at
// which the VM's clock read zero.
func (p *PC) writeWallClock(gpa uint64) {
	b, ok := p.vm.Mem.Slice(gpa, 12)
	if !ok {
		return
	}
	boot := p.cfg.Wall().Add(-time.Duration(p.vm.Now()))
	ns := boot.UnixNano()
	if ns < 0 {
		ns = 0
	}
	le := binary.LittleEndian
	version := le.Uint32(b[0:]) + 1
	version += version & 1
	le.PutUint32(b[0:], version)
	le.PutUint32(b[4:], uint32(ns/1e9))
	le.PutUint32(b[8:], uint32(ns%1e9))
}

// PVClockScale returns the pvclock multiplier and shift for a TSC of
// tscHz: nanoseconds = ((delta << shift, or >> -shift) * mul) >> 32, with
// mul in [2^31, 2^32) for the most precision. Linux derives the TSC
// frequency back from them (pvclock_tsc_khz).
func PVClockScale(tscHz uint64) (mul uint32, shift int8) {
	if tscHz == 0 {
		return 0, 0
	}
	// ratio = 1e9 / tscHz, brought into [0.5, 1) by powers of two.
	num, den := uint64(1e9), tscHz
	for num >= den {
		if den > 1<<62 {
			break
		}
		den <<= 1
		shift++
	}
	for num < den/2 {
		num <<= 1
		shift--
	}
	// mul = num/den * 2^32, num < den < 2^63: 128-bit division.
	hi, lo := num>>32, num<<32
	q, _ := bits.Div64(hi, lo, den)
	return uint32(q), shift
}

// DebugState describes the platform's interrupt wiring for juice's state
// dump: each local APIC, the I/O APIC's live pins, the PICs and COM1.
// Any goroutine; allocates.
func (p *PC) DebugState() []string {
	var out []string
	for _, a := range p.lapics {
		out = append(out, a.DebugString())
	}
	return append(out, p.ioapic.DebugString(), p.pic.DebugString(), p.uart.DebugString())
}
