// Package virtiopci is the virtio-pci transport ("modern" interface,
// virtio 1.2 section 4.1) joining a virtio device's transport-neutral state
// (juice/vmm/virtio.State) to a PCI function (juice/vmm/pci.Function).
//
// Each device is one function with vendor 0x1AF4 and device 0x1040+type,
// one 64-bit memory BAR (BAR 0, 32 KiB) holding, at fixed offsets, the
// common configuration structure, the ISR status byte, the device-specific
// configuration, the queue notification area (one 4-byte slot per queue:
// queue_notify_off = queue index, multiplier 4) and the MSI-X table and
// pending-bit array; the vendor-specific capabilities (cfg_type COMMON,
// NOTIFY, ISR, DEVICE) point into it. Interrupts go out as MSI-X messages
// when the driver enabled MSI-X and gave the notification a vector, else
// on the function's INTx line (level: high while the ISR has bits set,
// dropped by the driver's read-to-clear of the ISR).
//
// Every BAR access runs on the VM-exit path: allocation-free, bounded,
// and registers are decoded by offset and width; an access of the wrong
// width or to a hole reads zero and is ignored.
package virtiopci

import (
	"encoding/binary"
	"fmt"

	"juice/vmm/pci"
	"juice/vmm/virtio"
)

// PCI identity (virtio 1.2, 4.1.2).
const (
	VendorID     = 0x1af4
	DeviceIDBase = 0x1040
)

// BAR 0 layout.
const (
	BARSize      = 0x8000
	CommonOffset = 0x0000
	CommonSize   = 0x0038 // up to queue_device (Linux 6.1 uses no more)
	ISROffset    = 0x1000
	ISRSize      = 0x0001
	DeviceOffset = 0x2000
	DeviceSize   = 0x1000
	NotifyOffset = 0x3000
	NotifyMult   = 4
	TableOffset  = 0x4000
	PBAOffset    = 0x6000
	// MaxQueues is how many queues fit the notification area.
	MaxQueues = (TableOffset - NotifyOffset) / NotifyMult
)

// virtio_pci_cap cfg_type values.
const (
	capCommon = 1
	capNotify = 2
	capISR    = 3
	capDevice = 4
)

// Common configuration register offsets.
const (
	regDeviceFeatureSelect = 0x00
	regDeviceFeature       = 0x04
	regDriverFeatureSelect = 0x08
	regDriverFeature       = 0x0c
	regMSIXConfig          = 0x10
	regNumQueues           = 0x12
	regDeviceStatus        = 0x14
	regConfigGeneration    = 0x15
	regQueueSelect         = 0x16
	regQueueSize           = 0x18
	regQueueMSIXVector     = 0x1a
	regQueueEnable         = 0x1c
	regQueueNotifyOff      = 0x1e
	regQueueDesc           = 0x20
	regQueueDriver         = 0x28
	regQueueDevice         = 0x30
)

// Device is one virtio device on the PCI bus.
type Device struct {
	state *virtio.State
	fn    *pci.Function
}

// classCode returns the PCI class for a virtio device type.
func classCode(typ uint16) uint32 {
	switch typ {
	case virtio.IDNet:
		return 0x020000 // network, Ethernet
	case virtio.IDBlock:
		return 0x010000 // mass storage, SCSI (what QEMU reports)
	case virtio.IDConsole:
		return 0x078000 // communication, other
	}
	return 0x00ff00 // unclassified
}

// cap builds a virtio_pci_cap from cap_len on (pci fills cap_vndr and
// cap_next): cfg_type, bar 0, id 0, padding, offset, length, and extra.
func vcap(cfgType uint8, offset, length uint32, extra ...uint32) []byte {
	b := make([]byte, 14+4*len(extra))
	b[0] = byte(len(b) + 2) // cap_len (pci rewrites it to the same)
	b[1] = cfgType
	b[2] = 0 // bar
	b[3] = 0 // id
	binary.LittleEndian.PutUint32(b[6:], offset)
	binary.LittleEndian.PutUint32(b[10:], length)
	for i, e := range extra {
		binary.LittleEndian.PutUint32(b[14+4*i:], e)
	}
	return b
}

// New makes the PCI function for the device whose state is s, with
// vectors MSI-X vectors (at least one per queue plus one for
// configuration changes is what Linux asks for; fewer make it share) and
// INTx pin A. The caller adds Function() to a pci.Bus.
func New(s *virtio.State, vectors int) (*Device, error) {
	nq := s.NumQueues()
	if nq > MaxQueues {
		return nil, fmt.Errorf("virtio-pci: %d queues, at most %d", nq, MaxQueues)
	}
	if s.ConfigSize() > DeviceSize {
		return nil, fmt.Errorf("virtio-pci: device configuration of %d bytes, at most %d", s.ConfigSize(), DeviceSize)
	}
	d := &Device{state: s}
	typ := s.DeviceID()
	caps := [][]byte{
		vcap(capCommon, CommonOffset, CommonSize),
		vcap(capNotify, NotifyOffset, uint32(max(nq, 1))*NotifyMult, NotifyMult),
		vcap(capISR, ISROffset, ISRSize),
	}
	if s.ConfigSize() > 0 {
		caps = append(caps, vcap(capDevice, DeviceOffset, uint32(s.ConfigSize())))
	}
	var bars [6]pci.BARConfig
	bars[0] = pci.BARConfig{Size: BARSize, Is64: true, Handler: d}
	fn, err := pci.NewFunction(pci.FunctionConfig{
		VendorID: VendorID, DeviceID: DeviceIDBase + typ,
		SubsystemVendorID: VendorID, SubsystemID: DeviceIDBase + typ,
		ClassCode: classCode(typ), Revision: 1,
		BARs:         bars,
		InterruptPin: 1,
		MSIXVectors:  vectors, MSIXBAR: 0, MSIXTableOffset: TableOffset, MSIXPBAOffset: PBAOffset,
		VendorCaps: caps,
	})
	if err != nil {
		return nil, fmt.Errorf("virtio-pci: %v", err)
	}
	d.fn = fn
	s.SetMSIXTableSize(vectors)
	s.SetLine(d.line)
	return d, nil
}

// Function is the device's PCI function.
func (d *Device) Function() *pci.Function { return d.fn }

// State is the device's virtio state.
func (d *Device) State() *virtio.State { return d.state }

// Interrupt is the notification callback to give virtio.NewState (set it
// up with a forward reference: the State exists before the Device): it
// sends the MSI-X message for the notification when MSI-X is on; the INTx
// line follows the ISR through SetLine otherwise. Exit path.
func (d *Device) Interrupt(kind virtio.IRQKind, q int) {
	if d == nil || d.fn == nil || !d.fn.MSIXEnabled() {
		return
	}
	if v := d.state.MSIXVector(kind, q); v != virtio.NoVector {
		d.fn.SignalMSIX(int(v))
	}
}

// line drives INTx while MSI-X is off (with MSI-X on, pci keeps INTx low
// by itself; the ISR still records the notification).
func (d *Device) line(level bool) {
	if d.fn != nil {
		d.fn.SetINTx(level)
	}
}

// BARRead serves BAR 0 reads (not the MSI-X table and PBA, which pci
// serves).
func (d *Device) BARRead(off uint64, size uint8) uint64 {
	switch {
	case off < CommonOffset+CommonSize:
		return uint64(d.readCommon(uint32(off), size))
	case off == ISROffset && size == 1:
		return uint64(d.state.ReadISR())
	case off >= DeviceOffset && off < DeviceOffset+DeviceSize:
		return d.readDevice(int(off-DeviceOffset), size)
	}
	return 0
}

// BARWrite serves BAR 0 writes.
func (d *Device) BARWrite(off uint64, size uint8, v uint64) {
	switch {
	case off < CommonOffset+CommonSize:
		d.writeCommon(uint32(off), size, uint32(v))
	case off >= DeviceOffset && off < DeviceOffset+DeviceSize:
		d.writeDevice(int(off-DeviceOffset), size, v)
	case off >= NotifyOffset && off < TableOffset:
		q := (off - NotifyOffset) / NotifyMult
		if (off-NotifyOffset)%NotifyMult == 0 && int(q) < d.state.NumQueues() {
			d.state.Kick(int(q))
		}
	}
}

// readDevice reads the device-specific configuration.
func (d *Device) readDevice(off int, size uint8) uint64 {
	if size != 1 && size != 2 && size != 4 && size != 8 || off+int(size) > d.state.ConfigSize() {
		return 0
	}
	var b [8]byte
	d.state.ReadConfig(off, b[:size])
	return binary.LittleEndian.Uint64(b[:])
}

// writeDevice writes the device-specific configuration.
func (d *Device) writeDevice(off int, size uint8, v uint64) {
	if size != 1 && size != 2 && size != 4 && size != 8 || off+int(size) > d.state.ConfigSize() {
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	d.state.WriteConfig(off, b[:size])
}

// field widths of the common configuration registers.
func commonWidth(off uint32) uint8 {
	switch off {
	case regDeviceFeatureSelect, regDeviceFeature, regDriverFeatureSelect, regDriverFeature,
		regQueueDesc, regQueueDesc + 4, regQueueDriver, regQueueDriver + 4, regQueueDevice, regQueueDevice + 4:
		return 4
	case regMSIXConfig, regNumQueues, regQueueSelect, regQueueSize, regQueueMSIXVector, regQueueEnable, regQueueNotifyOff:
		return 2
	case regDeviceStatus, regConfigGeneration:
		return 1
	}
	return 0
}

// readCommon reads a common configuration register (natural width only).
func (d *Device) readCommon(off uint32, size uint8) uint32 {
	if commonWidth(off) != size {
		return 0
	}
	s := d.state
	switch off {
	case regDeviceFeatureSelect:
		return s.DeviceFeatureSelect()
	case regDeviceFeature:
		return s.DeviceFeature()
	case regDriverFeatureSelect:
		return s.DriverFeatureSelect()
	case regDriverFeature:
		return s.DriverFeature()
	case regMSIXConfig:
		return uint32(s.MSIXConfig())
	case regNumQueues:
		return uint32(s.NumQueues())
	case regDeviceStatus:
		return uint32(s.Status())
	case regConfigGeneration:
		return s.ConfigGeneration() & 0xff
	case regQueueSelect:
		return uint32(s.QueueSelect())
	case regQueueSize:
		return uint32(s.QueueSize())
	case regQueueMSIXVector:
		return uint32(s.QueueMSIXVector())
	case regQueueEnable:
		if s.QueueEnable() {
			return 1
		}
		return 0
	case regQueueNotifyOff:
		return uint32(s.QueueNotifyOff())
	case regQueueDesc, regQueueDesc + 4:
		return half(s.QueueAddr(virtio.AreaDesc), off-regQueueDesc)
	case regQueueDriver, regQueueDriver + 4:
		return half(s.QueueAddr(virtio.AreaDriver), off-regQueueDriver)
	case regQueueDevice, regQueueDevice + 4:
		return half(s.QueueAddr(virtio.AreaDevice), off-regQueueDevice)
	}
	return 0
}

func half(v uint64, hi uint32) uint32 {
	if hi != 0 {
		return uint32(v >> 32)
	}
	return uint32(v)
}

// writeCommon writes a common configuration register (natural width
// only; read-only registers ignore writes).
func (d *Device) writeCommon(off uint32, size uint8, v uint32) {
	if commonWidth(off) != size {
		return
	}
	s := d.state
	switch off {
	case regDeviceFeatureSelect:
		s.SetDeviceFeatureSelect(v)
	case regDriverFeatureSelect:
		s.SetDriverFeatureSelect(v)
	case regDriverFeature:
		s.SetDriverFeature(v)
	case regMSIXConfig:
		s.SetMSIXConfig(uint16(v))
	case regDeviceStatus:
		s.SetStatus(uint8(v))
	case regQueueSelect:
		s.SetQueueSelect(uint16(v))
	case regQueueSize:
		s.SetQueueSize(uint16(v))
	case regQueueMSIXVector:
		s.SetQueueMSIXVector(uint16(v))
	case regQueueEnable:
		s.SetQueueEnable(v&1 != 0)
	case regQueueDesc, regQueueDesc + 4:
		s.SetQueueAddrHalf(virtio.AreaDesc, off != regQueueDesc, v)
	case regQueueDriver, regQueueDriver + 4:
		s.SetQueueAddrHalf(virtio.AreaDriver, off != regQueueDriver, v)
	case regQueueDevice, regQueueDevice + 4:
		s.SetQueueAddrHalf(virtio.AreaDevice, off != regQueueDevice, v)
	}
}
