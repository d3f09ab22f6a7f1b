package virtio

import (
	"encoding/binary"

	"juice/vmm"
)

// virtio-mmio version 2 register offsets (virtio 1.2 §4.2.2).
const (
	mmioMagic            = 0x000
	mmioVersion          = 0x004
	mmioDeviceID         = 0x008
	mmioVendorID         = 0x00c
	mmioDeviceFeatures   = 0x010
	mmioDeviceFeatSel    = 0x014
	mmioDriverFeatures   = 0x020
	mmioDriverFeatSel    = 0x024
	mmioQueueSel         = 0x030
	mmioQueueNumMax      = 0x034
	mmioQueueNum         = 0x038
	mmioQueueReady       = 0x044
	mmioQueueNotify      = 0x050
	mmioInterruptStatus  = 0x060
	mmioInterruptACK     = 0x064
	mmioStatus           = 0x070
	mmioQueueDescLow     = 0x080
	mmioQueueDescHigh    = 0x084
	mmioQueueDriverLow   = 0x090
	mmioQueueDriverHigh  = 0x094
	mmioQueueDeviceLow   = 0x0a0
	mmioQueueDeviceHigh  = 0x0a4
	mmioSHMLenLow        = 0x0b0
	mmioSHMLenHigh       = 0x0b4
	mmioSHMBaseLow       = 0x0b8
	mmioSHMBaseHigh      = 0x0bc
	mmioQueueReset       = 0x0c0
	mmioConfigGeneration = 0x0fc
	mmioConfig           = 0x100
)

const (
	// MMIOMagic is the virtio-mmio MagicValue, "virt" in little endian.
	MMIOMagic = 0x74726976
	// MMIOVersion is the (non-legacy) register layout version.
	MMIOVersion = 2
	// MMIOVendorID is juice's virtio subsystem vendor ID: "juic" in
	// little endian (QEMU uses 0x554d4551, "QEMU"). Linux's virtio_mmio
	// only reports it.
	MMIOVendorID = 0x6369756a
	// MMIOSize is the size of one device's register window: control
	// registers below 0x100, device configuration space from 0x100.
	MMIOSize = 0x200
)

// mmio is the virtio-mmio transport over a State.
type mmio struct{ s *State }

// NewMMIO returns a virtio-mmio version 2 register window (MMIOSize
// bytes) for s. line, if not nil, is the device's interrupt line: level
// triggered, high while InterruptStatus is non-zero (State.SetLine).
//
// Control registers take 32-bit aligned accesses only (others read 0 and
// are ignored, as the spec allows the driver nothing else); the
// configuration space at 0x100 takes 1-, 2-, 4- and 8-byte accesses
// (Linux reads 64-bit fields as two 32-bit reads). Write-only registers
// read 0; shared memory regions do not exist (SHMLen reads -1, SHMBase
// all ones); VIRTIO_F_RING_RESET is not offered, so QueueReset reads 0.
// Accesses do not allocate.
func NewMMIO(s *State, line func(level bool)) vmm.MMIODevice {
	if line != nil {
		s.SetLine(line)
	}
	return &mmio{s: s}
}

// Read implements vmm.MMIODevice.
func (m *mmio) Read(off uint64, size uint8) uint64 {
	s := m.s
	if off >= mmioConfig {
		return m.readConfig(off-mmioConfig, size)
	}
	if size != 4 || off&3 != 0 {
		return 0
	}
	var v uint32
	switch off {
	case mmioMagic:
		v = MMIOMagic
	case mmioVersion:
		v = MMIOVersion
	case mmioDeviceID:
		v = uint32(s.DeviceID())
	case mmioVendorID:
		v = MMIOVendorID
	case mmioDeviceFeatures:
		v = s.DeviceFeature()
	case mmioQueueNumMax:
		v = uint32(s.QueueMaxSize())
	case mmioQueueReady:
		if s.QueueEnable() {
			v = 1
		}
	case mmioInterruptStatus:
		v = uint32(s.InterruptStatus())
	case mmioStatus:
		v = uint32(s.Status())
	case mmioSHMLenLow, mmioSHMLenHigh, mmioSHMBaseLow, mmioSHMBaseHigh:
		v = 0xffffffff
	case mmioConfigGeneration:
		v = s.ConfigGeneration()
	}
	return uint64(v)
}

// Write implements vmm.MMIODevice.
func (m *mmio) Write(off uint64, size uint8, value uint64) {
	s := m.s
	if off >= mmioConfig {
		m.writeConfig(off-mmioConfig, size, value)
		return
	}
	if size != 4 || off&3 != 0 {
		return
	}
	v := uint32(value)
	switch off {
	case mmioDeviceFeatSel:
		s.SetDeviceFeatureSelect(v)
	case mmioDriverFeatures:
		s.SetDriverFeature(v)
	case mmioDriverFeatSel:
		s.SetDriverFeatureSelect(v)
	case mmioQueueSel:
		s.SetQueueSelect(uint16(min(v, 0xffff)))
	case mmioQueueNum:
		s.SetQueueSize(uint16(min(v, 0xffff)))
	case mmioQueueReady:
		s.SetQueueEnable(v&1 != 0)
	case mmioQueueNotify:
		// Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
		if v < MaxQueues {
			s.Kick(int(v))
		}
	case mmioInterruptACK:
		s.AckInterrupt(uint8(v & (ISRQueue | ISRConfig)))
	case mmioStatus:
		s.SetStatus(uint8(v))
	case mmioQueueDescLow:
		s.SetQueueAddrHalf(AreaDesc, false, v)
	case mmioQueueDescHigh:
		s.SetQueueAddrHalf(AreaDesc, true, v)
	case mmioQueueDriverLow:
		s.SetQueueAddrHalf(AreaDriver, false, v)
	case mmioQueueDriverHigh:
		s.SetQueueAddrHalf(AreaDriver, true, v)
	case mmioQueueDeviceLow:
		s.SetQueueAddrHalf(AreaDevice, false, v)
	case mmioQueueDeviceHigh:
		s.SetQueueAddrHalf(AreaDevice, true, v)
	}
}

// readConfig reads size bytes of configuration space at off.
func (m *mmio) readConfig(off uint64, size uint8) uint64 {
	if !cfgAccess(off, size) {
		return 0
	}
	var b [8]byte
	m.s.ReadConfig(int(off), b[:size])
	return binary.LittleEndian.Uint64(b[:])
}

// writeConfig writes the low size bytes of value at configuration off.
func (m *mmio) writeConfig(off uint64, size uint8, value uint64) {
	if !cfgAccess(off, size) {
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], value)
	m.s.WriteConfig(int(off), b[:size])
}

// cfgAccess checks a configuration-space access: 1, 2, 4 or 8 bytes
// inside the window.
func cfgAccess(off uint64, size uint8) bool {
	switch size {
	case 1, 2, 4, 8:
	default:
		return false
	}
	return off < MMIOSize-mmioConfig && uint64(size) <= MMIOSize-mmioConfig-off
}
