package virtio

import (
	"fmt"

	"juice/drivers/pci"
)

// virtio_pci_cap cfg_type values (virtio 1.2 section 4.1.4).
const (
	capCommon = 1
	capNotify = 2
	capISR    = 3
	capDevice = 4
	capPCICfg = 5
)

// virtio_pci_cap field offsets (from the capability's start).
const (
	capLen      = 2
	capCfgType  = 3
	capBAR      = 4
	capOffset   = 8
	capLength   = 12
	capNotifyMu = 16 // notify_off_multiplier (NOTIFY only)
	capCfgData  = 16 // pci_cfg_data (PCI_CFG only)
	capMinLen   = 16
)

// Common configuration structure registers (virtio 1.2 section 4.1.4.3).
const (
	regDeviceFeatureSelect = 0x00
	regDeviceFeature       = 0x04
	regDriverFeatureSelect = 0x08
	regDriverFeature       = 0x0C
	regMSIXConfig          = 0x10
	regNumQueues           = 0x12
	regDeviceStatus        = 0x14
	regConfigGeneration    = 0x15
	regQueueSelect         = 0x16
	regQueueSize           = 0x18
	regQueueMSIXVector     = 0x1A
	regQueueEnable         = 0x1C
	regQueueNotifyOff      = 0x1E
	regQueueDesc           = 0x20
	regQueueDriver         = 0x28
	regQueueDevice         = 0x30
	commonLen              = 0x38
)

// NoVector is VIRTIO_MSI_NO_VECTOR: no MSI-X vector for a notification.
const NoVector = 0xFFFF

// Bounds.
const (
	// MaxResetPolls bounds the wait for device_status to read 0 after a
	// reset (QEMU resets synchronously; hardware may take a while).
	MaxResetPolls = 1 << 20
	// maxGenerationTries bounds re-reading the device configuration
	// while the device keeps changing it.
	maxGenerationTries = 16
)

// BARMapper returns the registers [off, off+n) of BAR bar of the
// function being opened. The transport asks for each structure it uses
// once, at Open.
type BARMapper func(bar uint8, off, n uint32) (pci.Regs, error)

// region is one virtio structure found through a vendor capability.
type region struct {
	found     bool
	bar       uint8
	off, size uint32
	mult      uint32 // NOTIFY: notify_off_multiplier
}

// Transport is a virtio device behind the modern virtio-pci interface.
// Its methods are not safe for concurrent use; the device driver
// serializes them.
type Transport struct {
	// Addr is the function; Type the virtio device type.
	Addr pci.Addr
	Type uint16

	common, isr, device, notify pci.Regs
	deviceLen                   uint32
	notifyLen, notifyMult       uint32
	notifyOff                   []uint32 // per set-up queue: offset in the notify region
	features                    uint64   // negotiated
}

// capField reads the dword at offset k of the capability at c.
func capField(cs pci.ConfigSpace, a pci.Addr, c uint16, k uint16) uint32 {
	return cs.Read32(a, c+k)
}

// findRegions reads f's virtio vendor capabilities; the first usable one
// of each type wins (virtio 1.2 section 4.1.4: drivers use the first
// they can). pciCfg is the PCI configuration access capability's offset,
// 0 if none.
func findRegions(cs pci.ConfigSpace, f *pci.Function) (r [capDevice + 1]region, pciCfg uint16) {
	for _, c := range f.Caps {
		if c.ID != pci.CapVendor || c.Off > 0x100-capMinLen {
			continue
		}
		clen := pci.Read8(cs, f.Addr, c.Off+capLen)
		typ := pci.Read8(cs, f.Addr, c.Off+capCfgType)
		bar := pci.Read8(cs, f.Addr, c.Off+capBAR)
		if clen < capMinLen {
			continue
		}
		if typ == capPCICfg {
			if pciCfg == 0 && clen >= capCfgData+4 && c.Off <= 0x100-(capCfgData+4) {
				pciCfg = c.Off
			}
			continue
		}
		if typ < capCommon || typ > capDevice || r[typ].found || bar > 5 {
			continue
		}
		b := f.BARs[bar]
		off := capField(cs, f.Addr, c.Off, capOffset)
		size := capField(cs, f.Addr, c.Off, capLength)
		if b.Kind == pci.BARUnused || uint64(off)+uint64(size) > b.Size {
			continue
		}
		reg := region{found: true, bar: bar, off: off, size: size}
		if typ == capNotify {
			if clen < capNotifyMu+4 || c.Off > 0x100-(capNotifyMu+4) {
				continue
			}
			reg.mult = capField(cs, f.Addr, c.Off, capNotifyMu)
		}
		r[typ] = reg
	}
	return r, pciCfg
}

// Open finds the virtio structures of f (a function from pci.Scan),
// enables its memory (and, if a structure is in an I/O BAR, I/O)
// decoding and bus mastering, disables INTx, and maps the structures
// through m. It does not touch the device's state: Init does.
func Open(cs pci.ConfigSpace, f *pci.Function, m BARMapper) (*Transport, error) {
	typ, _, ok := pci.VirtioType(f)
	if !ok {
		return nil, ErrNotVirtio
	}
	r, _ := findRegions(cs, f)
	if !r[capCommon].found || r[capCommon].size < commonLen || !r[capNotify].found || r[capNotify].size < 2 ||
		!r[capISR].found || r[capISR].size < 1 {
		return nil, ErrNoModern
	}
	cmd := uint16(pci.CmdMemory | pci.CmdBusMaster | pci.CmdINTxDisable)
	for _, x := range r {
		if x.found && f.BARs[x.bar].Kind == pci.BARIO {
			cmd |= pci.CmdIO
		}
	}
	pci.Enable(cs, f.Addr, cmd)
	t := &Transport{Addr: f.Addr, Type: typ, notifyLen: r[capNotify].size, notifyMult: r[capNotify].mult}
	var err error
	get := func(x region) pci.Regs {
		if err != nil {
			return nil
		}
		var regs pci.Regs
		regs, err = m(x.bar, x.off, x.size)
		return regs
	}
	t.common = get(r[capCommon])
	t.isr = get(r[capISR])
	t.notify = get(r[capNotify])
	if r[capDevice].found && r[capDevice].size > 0 {
		t.device = get(r[capDevice])
		t.deviceLen = r[capDevice].size
	}
	if err != nil {
		return nil, fmt.Errorf("virtio %v: mapping its registers: %w", f.Addr, err)
	}
	return t, nil
}

// Status reads device_status.
func (t *Transport) Status() uint8 { return t.common.Read8(regDeviceStatus) }

// setStatus writes device_status.
func (t *Transport) setStatus(s uint8) { t.common.Write8(regDeviceStatus, s) }

// Fail sets FAILED: the driver has given up on the device.
func (t *Transport) Fail() { t.setStatus(t.Status() | StatusFailed) }

// Reset resets the device and waits until device_status reads 0.
func (t *Transport) Reset() error {
	t.setStatus(0)
	for i := 0; i < MaxResetPolls; i++ {
		if t.Status() == 0 {
			return nil
		}
	}
	return fmt.Errorf("%w (reset)", ErrTimeout)
}

// Init resets the device, acknowledges it, negotiates features (the
// driver accepts want & offered; VIRTIO_F_VERSION_1 must be offered, and
// VIRTIO_F_ACCESS_PLATFORM is accepted when offered, since juice's
// addresses are physical ones), and sets FEATURES_OK. It returns the
// negotiated features. Next the driver sets up its queues and calls
// DriverOK.
func (t *Transport) Init(want uint64) (uint64, error) {
	if err := t.Reset(); err != nil {
		return 0, err
	}
	t.setStatus(StatusAcknowledge)
	t.setStatus(StatusAcknowledge | StatusDriver)
	t.common.Write32(regDeviceFeatureSelect, 0)
	offered := uint64(t.common.Read32(regDeviceFeature))
	t.common.Write32(regDeviceFeatureSelect, 1)
	offered |= uint64(t.common.Read32(regDeviceFeature)) << 32
	if offered&FeatureVersion1 == 0 {
		t.Fail()
		return 0, fmt.Errorf("%w: the device does not offer VIRTIO_F_VERSION_1", ErrFeatures)
	}
	f := (want | FeatureVersion1 | FeatureAccessPlatform) & offered
	t.common.Write32(regDriverFeatureSelect, 0)
	t.common.Write32(regDriverFeature, uint32(f))
	t.common.Write32(regDriverFeatureSelect, 1)
	t.common.Write32(regDriverFeature, uint32(f>>32))
	t.setStatus(StatusAcknowledge | StatusDriver | StatusFeaturesOK)
	if t.Status()&StatusFeaturesOK == 0 {
		t.Fail()
		return 0, fmt.Errorf("%w: the device refused features %#x", ErrFeatures, f)
	}
	t.features = f
	t.common.Write16(regMSIXConfig, NoVector)
	return f, nil
}

// Features returns the negotiated features.
func (t *Transport) Features() uint64 { return t.features }

// NumQueues reads num_queues.
func (t *Transport) NumQueues() uint16 { return t.common.Read16(regNumQueues) }

// QueueMax returns queue i's maximum size (0: no such queue).
func (t *Transport) QueueMax(i uint16) uint16 {
	if i >= t.NumQueues() {
		return 0
	}
	t.common.Write16(regQueueSelect, i)
	return t.common.Read16(regQueueSize)
}

// SetupQueue programs queue i with q (whose size must not exceed
// QueueMax(i)), gives it no MSI-X vector, and enables it. Queues must be
// set up in order 0, 1, ... (Notify indexes them so).
func (t *Transport) SetupQueue(i uint16, q *Queue) error {
	if int(i) != len(t.notifyOff) {
		return fmt.Errorf("virtio: queue %d set up out of order", i)
	}
	max := t.QueueMax(i)
	if max == 0 || q.Size() > max {
		return fmt.Errorf("%w: queue %d of size %d (device max %d)", ErrNoQueue, i, q.Size(), max)
	}
	t.common.Write16(regQueueSelect, i)
	if t.common.Read16(regQueueEnable) != 0 {
		return fmt.Errorf("%w: queue %d already enabled", ErrNoQueue, i)
	}
	t.common.Write16(regQueueSize, q.Size())
	t.common.Write16(regQueueMSIXVector, NoVector)
	desc, avail, used := q.Addrs()
	for _, a := range []struct {
		reg uint32
		v   uint64
	}{{regQueueDesc, desc}, {regQueueDriver, avail}, {regQueueDevice, used}} {
		t.common.Write32(a.reg, uint32(a.v))
		t.common.Write32(a.reg+4, uint32(a.v>>32))
	}
	off := uint64(t.common.Read16(regQueueNotifyOff)) * uint64(t.notifyMult)
	if off+2 > uint64(t.notifyLen) {
		return fmt.Errorf("%w: queue %d notifies at %#x, outside the %#x-byte notify area", ErrNoQueue, i, off, t.notifyLen)
	}
	t.common.Write16(regQueueEnable, 1)
	t.notifyOff = append(t.notifyOff, uint32(off))
	return nil
}

// DriverOK tells the device the driver is ready; it returns an error if
// the device then reports NEEDS_RESET or FAILED.
func (t *Transport) DriverOK() error {
	t.setStatus(StatusAcknowledge | StatusDriver | StatusFeaturesOK | StatusDriverOK)
	if s := t.Status(); s&(StatusNeedsReset|StatusFailed) != 0 || s&StatusDriverOK == 0 {
		return fmt.Errorf("virtio %v: device status %#x after DRIVER_OK", t.Addr, s)
	}
	return nil
}

// Notify tells the device that queue i has new buffers.
func (t *Transport) Notify(i uint16) {
	if int(i) < len(t.notifyOff) {
		t.notify.Write16(t.notifyOff[i], i)
	}
}

// ISR reads (and so clears) the ISR status: bit 0 a queue interrupt,
// bit 1 a configuration change.
func (t *Transport) ISR() uint8 { return t.isr.Read8(0) }

// ConfigLen is the length of the device-specific configuration.
func (t *Transport) ConfigLen() uint32 { return t.deviceLen }

// Config32 reads the 32-bit device configuration field at off,
// consistently with config_generation.
func (t *Transport) Config32(off uint32) (uint32, error) {
	v, err := t.config(off, 4)
	return uint32(v), err
}

// Config64 reads the 64-bit field at off as two 32-bit reads (virtio 1.2
// section 4.1.3.1), consistently with config_generation.
func (t *Transport) Config64(off uint32) (uint64, error) { return t.config(off, 8) }

// config reads a field of width 4 or 8, retrying while the device's
// configuration generation changes under the read.
func (t *Transport) config(off, w uint32) (uint64, error) {
	if t.device == nil || off&3 != 0 || off > t.deviceLen || w > t.deviceLen-off {
		return 0, fmt.Errorf("virtio %v: configuration field %#x+%d outside the %d-byte device configuration", t.Addr, off, w, t.deviceLen)
	}
	for try := 0; try < maxGenerationTries; try++ {
		g := t.common.Read8(regConfigGeneration)
		v := uint64(t.device.Read32(off))
		if w == 8 {
			v |= uint64(t.device.Read32(off+4)) << 32
		}
		if t.common.Read8(regConfigGeneration) == g {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: the configuration kept changing", ErrTimeout)
}
