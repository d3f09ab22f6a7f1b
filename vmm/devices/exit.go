package devices

// DebugExitPort is the isa-debug-exit port QEMU's test setups and
// kvm-unit-tests use.
const DebugExitPort = 0xf4

// ExitPort is the isa-debug-exit device: a guest write of value v (1, 2 or
// 4 bytes) to its port asks to stop the VM with code v. Reads return all
// ones, as from an empty ISA port. Register it on the I/O bus at
// DebugExitPort with ExitPorts ports (offsets, as vmm.PortDevice).
type ExitPort struct {
	stop func(code int)
}

// ExitPorts is the number of ports ExitPort decodes. Four, so that a 2- or
// 4-byte write at its base lies inside its range.
const ExitPorts = 4

// NewExitPort returns an exit device that calls stop with the written
// value. stop runs on the exit path: it must not block.
func NewExitPort(stop func(code int)) *ExitPort {
	return &ExitPort{stop: stop}
}

// In returns all ones, truncated to size.
func (e *ExitPort) In(off uint16, size uint8) uint32 {
	switch size {
	case 1:
		return 0xff
	case 2:
		return 0xffff
	}
	return 0xffffffff
}

// Out calls stop with value truncated to size, for a write at offset 0;
// writes at other offsets and of other sizes are ignored.
func (e *ExitPort) Out(off uint16, size uint8, value uint32) {
	if off != 0 || e.stop == nil {
		return
	}
	switch size {
	case 1:
		value &= 0xff
	case 2:
		value &= 0xffff
	case 4:
	default:
		return
	}
	e.stop(int(value))
}
