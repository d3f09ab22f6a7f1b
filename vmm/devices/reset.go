package devices

// Legacy reset ports.
const (
	// ResetControlPort is the Reset Control Register (RST_CNT) of
	// PIIX/ICH chipsets. It lies inside the PCI configuration-address
	// window 0xcf8-0xcfb: a host bridge model there must pass 1-byte
	// accesses at 0xcf9 to Reset.Control().
	ResetControlPort = 0xcf9
	// KBCDataPort is the 8042 keyboard controller's data port.
	KBCDataPort = 0x60
	// KBCCommandPort is the 8042 keyboard controller's status (read) and
	// command (write) port.
	KBCCommandPort = 0x64
)

// kbcStatusSys is the 8042 status register value Reset reports: output
// and input buffers empty, system flag set (self-test passed).
const kbcStatusSys = 0x04

// rstCPU is RST_CNT's "reset CPU" bit: a write with it set resets.
const rstCPU = 0x04

// Reset models the two ways a PC guest reboots itself: the Reset Control
// Register at 0xcf9 (a write with bit 2, RST_CPU, set — Linux writes 0x06
// or 0x0e — calls reset) and the 8042 keyboard controller's "pulse output
// port" commands (0xf0-0xff written to port 0x64 pulse the output lines
// whose bit in the low nibble is 0; bit 0 is the CPU reset line, so 0xfe,
// the command every OS uses, calls reset). The keyboard controller has no
// keyboard: its status reads 0x04 (buffers empty, self-test passed), its
// data port reads 0, and other commands and data writes are ignored.
//
// Register Control() at ResetControlPort (1 port), KBCData() at
// KBCDataPort (1 port) and KBCCommand() at KBCCommandPort (1 port). Port
// 0x61, between them, belongs to the PIT (PIT.Port61).
type Reset struct {
	reset func()
	cf9   ResetControl
	data  KBCData
	cmd   KBCCommand
}

// NewReset returns the reset device; reset is called (on the exit path,
// so it must not block) each time the guest asks for a reset.
func NewReset(reset func()) *Reset {
	r := &Reset{reset: reset}
	r.cf9.r, r.data.r, r.cmd.r = r, r, r
	return r
}

// Control is the Reset Control Register device (port 0xcf9).
func (r *Reset) Control() *ResetControl { return &r.cf9 }

// KBCData is the 8042 data port device (port 0x60).
func (r *Reset) KBCData() *KBCData { return &r.data }

// KBCCommand is the 8042 status/command port device (port 0x64).
func (r *Reset) KBCCommand() *KBCCommand { return &r.cmd }

func (r *Reset) fire() {
	if r.reset != nil {
		r.reset()
	}
}

// ResetControl is the Reset Control Register (see Reset).
type ResetControl struct {
	r *Reset
}

// In reads 0 (the reset bits are self-clearing; the other bits are not
// kept).
func (c *ResetControl) In(off uint16, size uint8) uint32 { return 0 }

// Out calls the reset callback when the byte at offset 0 has RST_CPU
// (bit 2) set.
func (c *ResetControl) Out(off uint16, size uint8, value uint32) {
	if off == 0 && size >= 1 && value&rstCPU != 0 {
		c.r.fire()
	}
}

// KBCData is the 8042 data port (see Reset).
type KBCData struct {
	r *Reset
}

// In reads 0: there is never keyboard data.
func (d *KBCData) In(off uint16, size uint8) uint32 { return 0 }

// Out ignores the write.
func (d *KBCData) Out(off uint16, size uint8, value uint32) {}

// KBCCommand is the 8042 status/command port (see Reset).
type KBCCommand struct {
	r *Reset
}

// In reads the status register: buffers empty, system flag set.
func (k *KBCCommand) In(off uint16, size uint8) uint32 { return kbcStatusSys }

// Out executes a command byte: a pulse command (0xf0-0xff) with bit 0
// clear resets; every other command is ignored.
func (k *KBCCommand) Out(off uint16, size uint8, value uint32) {
	v := uint8(value)
	if off == 0 && v&0xf0 == 0xf0 && v&1 == 0 {
		k.r.fire()
	}
}
