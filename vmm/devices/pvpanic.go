package devices

// PVPanicPort is the I/O port of QEMU's ISA pvpanic device.
const PVPanicPort = 0x505

// PVPanicPorts is the number of ports PVPanic decodes.
const PVPanicPorts = 1

// pvpanic event bits (QEMU docs/specs/pvpanic.rst).
const (
	// PVPanicPanicked is the event a guest writes when it panics.
	PVPanicPanicked = 1 << 0
	// PVPanicCrashLoaded is the event a guest writes when it panics with
	// a crash (kdump) kernel loaded, which will take over.
	PVPanicCrashLoaded = 1 << 1
	// PVPanicEvents is the set of events PVPanic advertises: reads of its
	// port return it.
	PVPanicEvents = PVPanicPanicked | PVPanicCrashLoaded
)

// PVPanic is QEMU's pvpanic ISA device: one port at which a guest reads
// the events the host supports (PVPanicEvents) and writes an event when
// it crashes. Linux's pvpanic driver finds it through the ACPI device
// "QEMU0001" (see juice/vmm/acpi Config.PVPanicPort), reads the mask at
// probe and writes PVPanicPanicked (or PVPanicCrashLoaded when a kdump
// kernel is loaded) from its panic notifier. Register it on the I/O bus
// at PVPanicPort with PVPanicPorts ports (offsets, as vmm.PortDevice).
// It keeps no state and never allocates.
type PVPanic struct {
	event func(event uint8)
}

// NewPVPanic returns a pvpanic device that calls event with each non-zero
// byte the guest writes: the written event bits, unfiltered (test them
// against PVPanicPanicked and PVPanicCrashLoaded; other bits are events
// this device did not advertise). event runs on the vCPU's exit path:
// it must not block (record the event, or stop the VM asynchronously).
// A nil event ignores writes.
func NewPVPanic(event func(event uint8)) *PVPanic {
	return &PVPanic{event: event}
}

// In returns the supported-events mask at offset 0; any other byte of the
// access reads 0xff, as an empty ISA port.
func (p *PVPanic) In(off uint16, size uint8) uint32 {
	var v uint32
	for k := uint8(0); k < size && k < 4; k++ {
		b := uint32(0xff)
		if off+uint16(k) == 0 {
			b = PVPanicEvents
		}
		v |= b << (8 * k)
	}
	return v
}

// Out calls the event function with the byte written at offset 0 when it
// is non-zero; other bytes and zero writes are ignored.
func (p *PVPanic) Out(off uint16, size uint8, value uint32) {
	for k := uint8(0); k < size && k < 4; k++ {
		if off+uint16(k) != 0 {
			continue
		}
		if ev := uint8(value >> (8 * k)); ev != 0 && p.event != nil {
			p.event(ev)
		}
	}
}
