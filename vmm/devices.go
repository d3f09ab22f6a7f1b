package vmm

import "sync"

// Two trivial port devices every test guest needs.

// DefaultExitPort is where QEMU's isa-debug-exit device sits in
// kvm-unit-tests' configuration (iobase 0xf4, 4 ports).
const DefaultExitPort = 0xf4

// DefaultDebugConsolePort is the Bochs/QEMU debug console port.
const DefaultDebugConsolePort = 0xe9

// exitPort stops the VM with Exited when the guest writes to it.
type exitPort struct{ vm *VM }

// In reads all ones.
func (p *exitPort) In(off uint16, size uint8) uint32 { return 0xffffffff }

// Out stops the VM with the value as exit status.
func (p *exitPort) Out(off uint16, size uint8, value uint32) {
	p.vm.stopf(Exited, int(value), "guest exited with status %d (exit port)", value)
}

// AddExitPort registers the exit port at [port, port+4): a write of any
// size at any of its ports stops the VM with Exited and the written value
// as status (unlike QEMU's isa-debug-exit, which exits with value<<1|1,
// juice reports the value itself). Reads return all ones.
func (vm *VM) AddExitPort(port uint16) error {
	return vm.io.Register(port, 4, &exitPort{vm: vm})
}

// debugConsole writes every byte the guest outputs to the VM's console.
type debugConsole struct {
	vm  *VM
	mu  sync.Mutex // serializes vCPUs; never held across guest entry
	buf [1]byte
}

// In returns 0xE9, the value Bochs and QEMU use to say the port exists.
func (d *debugConsole) In(off uint16, size uint8) uint32 { return 0xe9 }

// Out writes the low byte to the console.
func (d *debugConsole) Out(off uint16, size uint8, value uint32) {
	d.mu.Lock()
	d.buf[0] = byte(value)
	d.vm.console.Write(d.buf[:])
	d.mu.Unlock()
}

// AddDebugConsole registers a one-port debug console at port: each byte
// written (the low byte of wider writes) goes to the VM's Console.
func (vm *VM) AddDebugConsole(port uint16) error {
	return vm.io.Register(port, 1, &debugConsole{vm: vm})
}
