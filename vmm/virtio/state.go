package virtio

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"juice/vmm"
)

// queueState is one queue's driver-visible configuration plus the Queue
// built from it when the driver enables the queue.
type queueState struct {
	max     uint16    // device maximum (power of two; 0: queue unavailable)
	size    uint16    // driver-chosen size; max after reset
	enabled bool      // QueueReady / queue_enable
	addr    [3]uint64 // indexed by Area
	vector  uint16    // queue_msix_vector
	pending bool      // a Notify stopped at its budget with work left
	q       Queue
}

// State is a virtio device's transport-neutral state: device status,
// feature negotiation with 32-bit select windows, per-queue configuration
// (size, enable, ring addresses, MSI-X vector), the interrupt status
// (virtio-mmio InterruptStatus / virtio-pci ISR), the configuration
// generation and the queues themselves. Transports (NewMMIO here, the
// virtio-pci common configuration in vmm/pci's user) are thin register
// decoders over its methods; the register-style methods act on the queue
// chosen with SetQueueSelect.
//
// State implements Env for its device. All methods are safe for
// concurrent use by several vCPUs. Two locks: the device lock serializes
// every call into the Device (Notify, Activate, Reset, config access) and
// every register write that changes what the device sees; the register
// lock guards the fields and is never held while calling out. The irq and
// line callbacks run with no State lock held except possibly the device
// lock (when a device signals from inside Notify): they may call State's
// read accessors (MSIXVector, InterruptStatus) but must not write State
// registers.
type State struct {
	dev     Device
	name    string
	id      uint16
	mem     *vmm.GuestMemory
	irq     func(kind IRQKind, q int)
	log     func(string)
	offered uint64
	cfgSize int
	cfgBuf  []byte // cfgSize bytes, under devMu: keeps callers' buffers off the heap

	devMu sync.Mutex // serializes calls into dev; taken before mu
	mu    sync.Mutex // guards the fields below

	status     uint8
	devFeatSel uint32
	drvFeatSel uint32
	driverFeat uint64 // as written by the driver
	negotiated uint64 // driverFeat frozen at FEATURES_OK
	queueSel   uint16
	msixConfig uint16
	msixTable  int
	generation uint32
	isr        uint8
	warnings   int
	queues     []queueState

	anyPending atomic.Bool // some queue has pending set

	// fails counts the device's NEEDS_RESET failures over its life (a
	// reset does not clear it); it bounds Fail's logging.
	fails uint64

	// Per-queue notification counters (Kick, Interrupt): cumulative,
	// never reset, read with Notifications.
	kicks, irqs []atomic.Uint64

	lineMu    sync.Mutex // serializes line updates (last update wins)
	line      func(level bool)
	lineLevel bool
}

var _ Env = (*State)(nil)

// maxWarnings bounds protocol-violation log lines per device reset, so a
// hostile driver cannot flood the log.
const maxWarnings = 8

// maxFailLogs is how many NEEDS_RESET reasons a device logs over its
// whole life; after that only the 2^k-th failures are (with their
// count), so a guest that loops "reset, break the ring" cannot flood
// juice's console.
const maxFailLogs = 64

// NewState wraps device d for a VM with RAM mem. irq, if not nil, is
// called for every notification the device raises (IRQQueue with the
// queue index, IRQConfig with q = -1), after the interrupt status bit is
// set; a level-triggered line can be attached with SetLine. log, if not
// nil, receives one line per error (NEEDS_RESET) and per refused
// protocol step.
func NewState(d Device, mem *vmm.GuestMemory, irq func(kind IRQKind, q int), log func(string)) *State {
	s := &State{
		dev:     d,
		id:      d.Type(),
		mem:     mem,
		irq:     irq,
		log:     log,
		offered: d.Features() | transportFeatures,
		cfgSize: max(d.ConfigSize(), 0),
	}
	s.name = deviceName(s.id)
	s.cfgBuf = make([]byte, s.cfgSize)
	nq := min(max(d.NumQueues(), 0), MaxQueues)
	s.queues = make([]queueState, nq)
	s.kicks = make([]atomic.Uint64, nq)
	s.irqs = make([]atomic.Uint64, nq)
	for i := range s.queues {
		qs := &s.queues[i]
		qs.max = floorPow2(d.MaxQueueSize(i))
		qs.q.index = i
	}
	s.resetFields()
	return s
}

// floorPow2 rounds v down to a power of two no larger than MaxQueueSize.
func floorPow2(v uint16) uint16 {
	if v == 0 {
		return 0
	}
	p := uint16(1)
	for p <= v/2 && p < MaxQueueSize {
		p <<= 1
	}
	return p
}

// resetFields puts every register at its reset value. Caller holds mu (or
// owns s exclusively) and the device lock.
func (s *State) resetFields() {
	s.status = 0
	s.devFeatSel, s.drvFeatSel = 0, 0
	s.driverFeat, s.negotiated = 0, 0
	s.queueSel = 0
	s.msixConfig = NoVector
	s.isr = 0
	s.warnings = 0
	for i := range s.queues {
		qs := &s.queues[i]
		qs.size = qs.max
		qs.enabled = false
		qs.addr = [3]uint64{}
		qs.vector = NoVector
		qs.pending = false
		qs.q.disable()
	}
	s.anyPending.Store(false)
}

// Device is the device model.
func (s *State) Device() Device { return s.dev }

// DeviceID is the virtio device ID (the device's Type).
func (s *State) DeviceID() uint16 { return s.id }

// SetLine attaches a level-triggered interrupt line: State drives it high
// while the interrupt status is non-zero and low when it becomes zero
// (AckInterrupt, ReadISR, reset). Updates are serialized and the last one
// wins, so the line never stays low while a status bit is set. Call it
// before the guest runs.
func (s *State) SetLine(line func(level bool)) {
	s.lineMu.Lock()
	s.line = line
	s.lineLevel = false
	s.lineMu.Unlock()
}

// updateLine brings the line to the current interrupt status.
func (s *State) updateLine() {
	s.lineMu.Lock()
	if s.line != nil {
		s.mu.Lock()
		level := s.isr != 0
		s.mu.Unlock()
		if level != s.lineLevel {
			s.lineLevel = level
			s.line(level)
		}
	}
	s.lineMu.Unlock()
}

// warn logs a refused protocol step (at most maxWarnings per reset).
func (s *State) warn(msg string) {
	s.mu.Lock()
	ok := s.warnings < maxWarnings
	if ok {
		s.warnings++
	}
	s.mu.Unlock()
	if ok && s.log != nil {
		s.log(s.name + ": " + msg)
	}
}

// --- Feature negotiation -------------------------------------------------

// OfferedFeatures is the full 64-bit device feature word.
func (s *State) OfferedFeatures() uint64 { return s.offered }

// DeviceFeatureSelect is device_feature_select / DeviceFeaturesSel.
func (s *State) DeviceFeatureSelect() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devFeatSel
}

// SetDeviceFeatureSelect selects which 32 bits DeviceFeature shows.
func (s *State) SetDeviceFeatureSelect(v uint32) {
	s.mu.Lock()
	s.devFeatSel = v
	s.mu.Unlock()
}

// DeviceFeature is the selected 32-bit window of the offered features
// (select 0: bits 0-31, 1: bits 32-63, others: 0).
func (s *State) DeviceFeature() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return window(s.offered, s.devFeatSel)
}

// DriverFeatureSelect is driver_feature_select / DriverFeaturesSel.
func (s *State) DriverFeatureSelect() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drvFeatSel
}

// SetDriverFeatureSelect selects which 32 bits DriverFeature accesses.
func (s *State) SetDriverFeatureSelect(v uint32) {
	s.mu.Lock()
	s.drvFeatSel = v
	s.mu.Unlock()
}

// DriverFeature reads back the selected window of the driver's features.
func (s *State) DriverFeature() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return window(s.driverFeat, s.drvFeatSel)
}

// SetDriverFeature stores the selected window of the driver's features.
// Writes after FEATURES_OK, and to selects other than 0 and 1, are
// ignored.
func (s *State) SetDriverFeature(v uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status&StatusFeaturesOK != 0 {
		return
	}
	switch s.drvFeatSel {
	case 0:
		s.driverFeat = s.driverFeat&^0xffffffff | uint64(v)
	case 1:
		s.driverFeat = s.driverFeat&0xffffffff | uint64(v)<<32
	}
}

// Features are the negotiated features (0 before FEATURES_OK).
func (s *State) Features() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.negotiated
}

// window is the sel-th 32-bit word of f.
func window(f uint64, sel uint32) uint32 {
	switch sel {
	case 0:
		return uint32(f)
	case 1:
		return uint32(f >> 32)
	}
	return 0
}

// --- Device status -------------------------------------------------------

// Status is device_status.
func (s *State) Status() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// SetStatus is a driver write of device_status. 0 resets the device.
// Otherwise the written bits are added (a driver cannot clear bits, nor
// set NEEDS_RESET). FEATURES_OK is kept only when ACKNOWLEDGE and DRIVER
// are set, the driver accepted nothing that was not offered, and it
// accepted VIRTIO_F_VERSION_1; the driver sees the refusal by reading the
// status back. DRIVER_OK is kept only after FEATURES_OK; setting it
// activates the device (unless it needs a reset or the driver failed it).
func (s *State) SetStatus(v uint8) {
	if v == 0 {
		s.Reset()
		return
	}
	s.devMu.Lock()
	defer s.devMu.Unlock()
	s.mu.Lock()
	old := s.status
	nw := old | v&(StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK|StatusFailed)
	var warn string
	if nw&StatusFeaturesOK != 0 && old&StatusFeaturesOK == 0 {
		switch {
		case nw&(StatusAcknowledge|StatusDriver) != StatusAcknowledge|StatusDriver:
			warn = "refusing FEATURES_OK: ACKNOWLEDGE and DRIVER are not set"
		case s.driverFeat&^s.offered != 0:
			warn = fmt.Sprintf("refusing FEATURES_OK: driver accepted features %#x that were not offered (offered %#x)", s.driverFeat&^s.offered, s.offered)
		case s.driverFeat&FeatureVersion1 == 0:
			warn = "refusing FEATURES_OK: driver did not accept VIRTIO_F_VERSION_1"
		}
		if warn != "" {
			nw &^= StatusFeaturesOK
		} else {
			s.negotiated = s.driverFeat
		}
	}
	activate := false
	if nw&StatusDriverOK != 0 && old&StatusDriverOK == 0 {
		if nw&StatusFeaturesOK == 0 {
			nw &^= StatusDriverOK
			warn = "ignoring DRIVER_OK without FEATURES_OK"
		} else {
			activate = nw&(StatusNeedsReset|StatusFailed) == 0
		}
	}
	s.status = nw
	s.mu.Unlock()
	if warn != "" {
		s.warn(warn)
	}
	if activate {
		if err := s.dev.Activate(s); err != nil {
			s.Fail("activate: " + err.Error())
		}
	}
}

// Reset returns device and transport state to their reset values: status
// 0, features and selects cleared, every queue disabled with its size
// back at the maximum and its addresses and vectors cleared, interrupt
// status cleared (the line drops). The configuration generation keeps
// counting. Device.Reset runs first.
func (s *State) Reset() {
	s.devMu.Lock()
	s.dev.Reset()
	s.mu.Lock()
	s.resetFields()
	s.mu.Unlock()
	s.devMu.Unlock()
	s.updateLine()
}

// --- Device configuration space -----------------------------------------

// ConfigGeneration is config_generation / ConfigGeneration: it changes
// whenever the device changes its configuration space.
func (s *State) ConfigGeneration() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}

// ConfigSize is the size of the device configuration space.
func (s *State) ConfigSize() int { return s.cfgSize }

// ReadConfig reads configuration space at off into p; an access not
// wholly inside the space reads zeros.
func (s *State) ReadConfig(off int, p []byte) {
	if off < 0 || off > s.cfgSize || len(p) > s.cfgSize-off {
		clear(p)
		return
	}
	s.devMu.Lock()
	b := s.cfgBuf[:len(p)]
	s.dev.ReadConfig(off, b)
	copy(p, b)
	s.devMu.Unlock()
}

// WriteConfig writes p to configuration space at off; an access not
// wholly inside the space is ignored.
func (s *State) WriteConfig(off int, p []byte) {
	if off < 0 || off > s.cfgSize || len(p) > s.cfgSize-off {
		return
	}
	s.devMu.Lock()
	b := s.cfgBuf[:len(p)]
	copy(b, p)
	s.dev.WriteConfig(off, b)
	s.devMu.Unlock()
}

// --- MSI-X (virtio-pci) --------------------------------------------------

// SetMSIXTableSize says how many MSI-X vectors the transport has (0, the
// default, for none): vector writes at or above it read back NoVector, as
// virtio-pci requires for vectors the device cannot use.
func (s *State) SetMSIXTableSize(n int) {
	s.mu.Lock()
	s.msixTable = max(n, 0)
	s.mu.Unlock()
}

// vector maps a written vector to the stored one. Caller holds mu.
func (s *State) vector(v uint16) uint16 {
	if int(v) >= s.msixTable {
		return NoVector
	}
	return v
}

// MSIXConfig is msix_config (config_msix_vector).
func (s *State) MSIXConfig() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msixConfig
}

// SetMSIXConfig sets the configuration-change vector.
func (s *State) SetMSIXConfig(v uint16) {
	s.mu.Lock()
	s.msixConfig = s.vector(v)
	s.mu.Unlock()
}

// MSIXVector is the vector for a notification: msix_config for
// IRQConfig, queue q's queue_msix_vector for IRQQueue (NoVector when
// none or q is out of range).
func (s *State) MSIXVector(kind IRQKind, q int) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == IRQConfig {
		return s.msixConfig
	}
	if q < 0 || q >= len(s.queues) {
		return NoVector
	}
	return s.queues[q].vector
}

// --- Queue configuration (selected queue) --------------------------------

// NumQueues is num_queues.
func (s *State) NumQueues() int { return len(s.queues) }

// QueueSelect is queue_select / QueueSel.
func (s *State) QueueSelect() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueSel
}

// SetQueueSelect selects the queue the Queue* methods act on; selecting
// a queue that does not exist is allowed (it reads as unavailable).
func (s *State) SetQueueSelect(v uint16) {
	s.mu.Lock()
	s.queueSel = v
	s.mu.Unlock()
}

// sel is the selected queue or nil. Caller holds mu.
func (s *State) sel() *queueState {
	if int(s.queueSel) < len(s.queues) {
		return &s.queues[s.queueSel]
	}
	return nil
}

// QueueMaxSize is QueueNumMax: the selected queue's maximum size, 0 when
// it does not exist.
func (s *State) QueueMaxSize() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qs := s.sel(); qs != nil {
		return qs.max
	}
	return 0
}

// QueueSize is queue_size: the selected queue's size (its maximum after
// reset), 0 when it does not exist.
func (s *State) QueueSize() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qs := s.sel(); qs != nil {
		return qs.size
	}
	return 0
}

// SetQueueSize is a driver write of queue_size / QueueNum. Ignored while
// the queue is enabled; validated when it is enabled.
func (s *State) SetQueueSize(v uint16) {
	s.mu.Lock()
	if qs := s.sel(); qs != nil && !qs.enabled {
		qs.size = v
	}
	s.mu.Unlock()
}

// QueueMSIXVector is the selected queue's queue_msix_vector (NoVector
// when it does not exist).
func (s *State) QueueMSIXVector() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qs := s.sel(); qs != nil {
		return qs.vector
	}
	return NoVector
}

// SetQueueMSIXVector sets the selected queue's vector (NoVector unless
// below the SetMSIXTableSize count).
func (s *State) SetQueueMSIXVector(v uint16) {
	s.mu.Lock()
	if qs := s.sel(); qs != nil {
		qs.vector = s.vector(v)
	}
	s.mu.Unlock()
}

// QueueNotifyOff is queue_notify_off: the selected queue's index (each
// queue has its own notify slot; the PCI transport multiplies by its
// notify_off_multiplier).
func (s *State) QueueNotifyOff() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel() != nil {
		return s.queueSel
	}
	return 0
}

// QueueAddr is the selected queue's address for area a.
func (s *State) QueueAddr(a Area) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qs := s.sel(); qs != nil && a <= AreaDevice {
		return qs.addr[a]
	}
	return 0
}

// SetQueueAddr sets the selected queue's address for area a (ignored
// while the queue is enabled).
func (s *State) SetQueueAddr(a Area, v uint64) {
	s.mu.Lock()
	if qs := s.sel(); qs != nil && a <= AreaDevice && !qs.enabled {
		qs.addr[a] = v
	}
	s.mu.Unlock()
}

// SetQueueAddrHalf sets the low (high=false) or high 32 bits of the
// selected queue's address for area a, for transports that split the
// 64-bit registers (virtio-mmio's *Low/*High, 32-bit virtio-pci writes).
func (s *State) SetQueueAddrHalf(a Area, high bool, v uint32) {
	s.mu.Lock()
	if qs := s.sel(); qs != nil && a <= AreaDevice && !qs.enabled {
		if high {
			qs.addr[a] = qs.addr[a]&0xffffffff | uint64(v)<<32
		} else {
			qs.addr[a] = qs.addr[a]&^0xffffffff | uint64(v)
		}
	}
	s.mu.Unlock()
}

// QueueEnable is queue_enable / QueueReady for the selected queue.
func (s *State) QueueEnable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qs := s.sel(); qs != nil {
		return qs.enabled
	}
	return false
}

// SetQueueEnable enables (or, virtio-mmio only, disables) the selected
// queue. Enabling validates the size and addresses and builds the Queue
// (with EVENT_IDX if negotiated); a bad configuration puts the device
// into NEEDS_RESET. Enabling before FEATURES_OK is refused.
func (s *State) SetQueueEnable(on bool) {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	s.mu.Lock()
	qs := s.sel()
	if qs == nil || qs.enabled == on {
		s.mu.Unlock()
		return
	}
	if !on {
		qs.enabled = false
		qs.pending = false
		qs.q.disable()
		s.mu.Unlock()
		return
	}
	if s.status&StatusFeaturesOK == 0 {
		s.mu.Unlock()
		s.warn(fmt.Sprintf("queue %d enabled before FEATURES_OK: ignored", s.queueSel))
		return
	}
	var err error
	if qs.size > qs.max {
		err = &ChainError{Queue: int(s.queueSel), Head: -1, Desc: -1,
			Reason: fmt.Sprintf("queue size %d is above the device maximum %d", qs.size, qs.max)}
	} else {
		err = qs.q.Configure(s.mem, qs.size, qs.addr[AreaDesc], qs.addr[AreaDriver], qs.addr[AreaDevice],
			s.negotiated&FeatureEventIdx != 0)
	}
	qs.enabled = err == nil
	s.mu.Unlock()
	if err != nil {
		s.Fail(err.Error())
	}
}

// --- Notifications -------------------------------------------------------

// Notify is an available-buffer notification (a driver kick) for queue q:
// if the device is live (DRIVER_OK, not NEEDS_RESET or FAILED) and the
// queue enabled, the device processes it now, on the caller's exit path.
//
// Bounded work: Queue.Next returns at most queue-size chains and reads at
// most about MaxNotifyDescriptors descriptors per Notify (one chain is at
// most 2*size+1 reads), and a device may stop earlier with StopEarly. When a Notify stops with
// chains still available, the queue is marked pending and State finishes
// it, again bounded, at the next Notify, AckInterrupt, ReadISR or Poll.
// Without that a driver using EVENT_IDX, which does not kick again for
// chains it added while the device was busy, could stall.
//
// A malformed ring (a Next error) puts the device into NEEDS_RESET.
// Out-of-range q is ignored.
func (s *State) Notify(q int) {
	s.devMu.Lock()
	s.notifyLocked(q)
	s.serviceLocked(q) // other queues left pending by earlier entries
	s.devMu.Unlock()
}

// Kick is the driver's available-buffer notification for queue q, as a
// transport decodes it (a virtio-pci notify write, virtio-mmio's
// QueueNotify): it is counted (Notifications) and handled as Notify.
// Notify itself is also what the platform calls to service a device
// (frames waiting for a receive queue), which is not counted.
func (s *State) Kick(q int) {
	if q >= 0 && q < len(s.kicks) {
		s.kicks[q].Add(1)
	}
	s.Notify(q)
}

// Notifications returns queue q's counts since the device was created:
// driver kicks (Kick) and used-buffer interrupts the device sent
// (Interrupt while live). Zero for q out of range. Any goroutine.
func (s *State) Notifications(q int) (kicks, interrupts uint64) {
	if q < 0 || q >= len(s.kicks) {
		return 0, 0
	}
	return s.kicks[q].Load(), s.irqs[q].Load()
}

// notifyLocked runs the device on queue q. Caller holds devMu.
func (s *State) notifyLocked(q int) {
	if q < 0 || q >= len(s.queues) {
		return
	}
	qs := &s.queues[q]
	s.mu.Lock()
	qs.pending = false
	live := s.status&(StatusDriverOK|StatusNeedsReset|StatusFailed) == StatusDriverOK && qs.enabled
	s.mu.Unlock()
	if !live {
		return
	}
	qq := &qs.q
	qq.setBudget(int(qq.size))
	s.dev.Notify(q)
	deferred := qq.takeDeferred()
	qq.setBudget(0)
	if qq.err != nil {
		s.Fail(qq.err.Error())
		return
	}
	if deferred {
		s.mu.Lock()
		if qs.enabled {
			qs.pending = true
			s.anyPending.Store(true)
		}
		s.mu.Unlock()
	}
}

// serviceLocked resumes every pending queue except skip (just served by
// this entry) once. Caller holds devMu.
func (s *State) serviceLocked(skip int) {
	if !s.anyPending.Load() {
		return
	}
	s.anyPending.Store(false)
	for i := range s.queues {
		s.mu.Lock()
		p := s.queues[i].pending
		if i == skip && p {
			s.anyPending.Store(true)
		}
		s.mu.Unlock()
		if p && i != skip {
			s.notifyLocked(i)
		}
	}
}

// Poll resumes queues whose last Notify stopped at its budget with work
// left (see Notify). It is cheap when there is nothing to do; a platform
// whose guests use MSI-X (and so may never touch a register after an
// interrupt) should call it periodically, e.g. from a timer tick.
func (s *State) Poll() {
	if !s.anyPending.Load() {
		return
	}
	s.devMu.Lock()
	s.serviceLocked(-1)
	s.devMu.Unlock()
}

// Pending reports whether some queue awaits Poll.
func (s *State) Pending() bool { return s.anyPending.Load() }

// InterruptStatus is the interrupt status (ISRQueue | ISRConfig bits)
// without clearing it: virtio-mmio's InterruptStatus.
func (s *State) InterruptStatus() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isr
}

// AckInterrupt clears the given interrupt status bits (virtio-mmio's
// InterruptACK); the line drops when none remain.
func (s *State) AckInterrupt(bits uint8) {
	s.mu.Lock()
	s.isr &^= bits
	s.mu.Unlock()
	s.updateLine()
	s.Poll()
}

// ReadISR returns and clears the interrupt status (virtio-pci's ISR
// status register is read-to-clear); the line drops.
func (s *State) ReadISR() uint8 {
	s.mu.Lock()
	v := s.isr
	s.isr = 0
	s.mu.Unlock()
	s.updateLine()
	s.Poll()
	return v
}

// --- Env ------------------------------------------------------------------

// Queue returns queue i, nil when out of range.
func (s *State) Queue(i int) *Queue {
	if i < 0 || i >= len(s.queues) {
		return nil
	}
	return &s.queues[i].q
}

// Mem is the VM's RAM.
func (s *State) Mem() *vmm.GuestMemory { return s.mem }

// Interrupt sends a used-buffer notification for queue q: it sets
// ISRQueue, updates the line and calls irq(IRQQueue, q). Dropped unless
// the device is live (DRIVER_OK, not NEEDS_RESET or FAILED).
func (s *State) Interrupt(q int) {
	if q < 0 || q >= len(s.queues) {
		return
	}
	s.mu.Lock()
	live := s.status&(StatusDriverOK|StatusNeedsReset|StatusFailed) == StatusDriverOK
	if live {
		s.isr |= ISRQueue
	}
	s.mu.Unlock()
	if !live {
		return
	}
	s.irqs[q].Add(1)
	s.updateLine()
	if s.irq != nil {
		s.irq(IRQQueue, q)
	}
}

// ConfigChanged bumps the configuration generation and, once the driver
// set DRIVER_OK, sends a configuration-change notification.
func (s *State) ConfigChanged() {
	s.mu.Lock()
	s.generation++
	live := s.status&StatusDriverOK != 0
	if live {
		s.isr |= ISRConfig
	}
	s.mu.Unlock()
	if !live {
		return
	}
	s.updateLine()
	if s.irq != nil {
		s.irq(IRQConfig, -1)
	}
}

// Fail puts the device into NEEDS_RESET and logs reason; if the driver
// had set DRIVER_OK it also sends a configuration-change notification
// (virtio 1.2 §2.1.2). Repeated failures before the next reset are
// neither logged nor signalled again.
func (s *State) Fail(reason string) {
	s.mu.Lock()
	already := s.status&StatusNeedsReset != 0
	s.status |= StatusNeedsReset
	signal := !already && s.status&StatusDriverOK != 0
	if signal {
		s.isr |= ISRConfig
	}
	if !already {
		s.fails++
	}
	n := s.fails
	s.mu.Unlock()
	if already {
		return
	}
	if s.log != nil {
		switch {
		case n <= maxFailLogs:
			s.log(s.name + ": device needs reset: " + reason)
		case n&(n-1) == 0:
			s.log(s.name + ": device needs reset: " + reason + " (failure " + strconv.FormatUint(n, 10) +
				"; from now on only every power-of-two-th failure is logged)")
		}
	}
	if signal {
		s.updateLine()
		if s.irq != nil {
			s.irq(IRQConfig, -1)
		}
	}
}
