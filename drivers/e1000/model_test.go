package e1000

// A modeled e1000 for the tests: a register file behind pci.Regs and a
// DMA engine over the same byte slice the driver uses as physical memory
// (phys.FromSlice). It behaves as the 8254x manual describes for what the
// driver uses (reset, EERD, RAL/RAH, STATUS.LU, legacy receive and
// transmit rings with head and tail registers), processes transmit
// descriptors when TDT is written, and writes received frames when a
// test calls deliver. It also checks the driver: a register access of the
// wrong width or alignment, a tail beyond the ring, a transmit
// descriptor without EOP/IFCS/RS, a buffer outside memory, or a receive
// descriptor handed back without its write-back half cleared fail the
// test.

import (
	"encoding/binary"
	"sync"
	"testing"

	"juice/drivers/pci"
	"juice/mm/phys"
)

// model is the device. Its fields after mu are guarded by mu.
type model struct {
	t     testing.TB
	mem   *phys.Mem
	ram   []byte
	kind  Model
	mu    sync.Mutex
	reg   [RegsSize / 4]uint32
	mac   [6]byte
	eerom [64]uint16

	link       bool // STATUS.LU
	ralEmpty   bool // a reset leaves receive address 0 empty (no EEPROM auto-load)
	stuckReset bool // CTRL.RST never clears
	eepromDead bool // EERD never reports DONE
	txPaused   bool // transmit descriptors are left alone
	txStatus   uint8
	dropWrites map[uint32]bool // registers whose writes are lost

	quiet  bool // record nothing (allocation measurements)
	resets int
	sent   [][]byte
	rdtLog []uint32 // every RDT written
}

// newModel returns a model of kind with ramSize bytes of "physical
// memory", link up, its MAC address in receive address 0.
func newModel(t testing.TB, kind Model, ramSize int) *model {
	m := &model{t: t, kind: kind, ram: make([]byte, ramSize), link: true,
		mac: [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, dropWrites: map[uint32]bool{}}
	mem := phys.FromSlice(m.ram)
	m.mem = &mem
	for i := 0; i < 3; i++ {
		m.eerom[i] = uint16(m.mac[2*i]) | uint16(m.mac[2*i+1])<<8
	}
	m.powerOn()
	return m
}

// powerOn sets the registers' power-on values, garbage where the manual
// leaves them undefined (the multicast table), so the driver must clear
// them.
func (m *model) powerOn() {
	m.resetLocked()
	for i := 0; i < mtaEntries; i++ {
		m.reg[(regMTA>>2)+i] = 0xA5A5_0000 | uint32(i)
	}
	m.reg[regIMSshadow>>2] = 0xFFFF // interrupts enabled by an earlier driver
}

// regIMSshadow is where the model keeps IMS (IMC clears its bits).
const regIMSshadow = 0x00D0

// resetLocked is CTRL.RST: registers to their defaults, the MAC address
// loaded from the EEPROM into receive address 0 unless ralEmpty.
func (m *model) resetLocked() {
	mta := m.reg[regMTA>>2 : regMTA>>2+mtaEntries]
	saved := append([]uint32(nil), mta...) // the manual: MTA is not reset
	clear(m.reg[:])
	copy(m.reg[regMTA>>2:], saved)
	m.reg[regCTRL>>2] = ctrlFD | ctrlASDE
	if !m.ralEmpty {
		m.reg[regRAL0>>2] = binary.LittleEndian.Uint32(m.mac[:4])
		m.reg[regRAH0>>2] = uint32(binary.LittleEndian.Uint16(m.mac[4:])) | rahAV
	}
	m.reg[regRXCSUM>>2] = 0x300 // offloads on, as after a real reset
	m.reg[regTXDCTL>>2] = 0x0001_0000
}

// check fails the test when an access is not a naturally aligned dword
// inside the register file.
func (m *model) check(off, w uint32) bool {
	if w != 4 || off%4 != 0 || off >= RegsSize {
		m.t.Errorf("register access of %d bytes at %#x", w, off)
		return false
	}
	return true
}

func (m *model) Read8(off uint32) uint8   { m.check(off, 1); return 0xFF }
func (m *model) Read16(off uint32) uint16 { m.check(off, 2); return 0xFFFF }
func (m *model) Write8(off uint32, v uint8) {
	m.check(off, 1)
}
func (m *model) Write16(off uint32, v uint16) { m.check(off, 2) }

func (m *model) Read32(off uint32) uint32 {
	if !m.check(off, 4) {
		return pci.Absent
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch off {
	case regSTATUS:
		s := uint32(statusFD)
		if m.link {
			s |= statusLU
		}
		return s
	case regICR:
		v := m.reg[off>>2]
		m.reg[off>>2] = 0
		return v
	case regEERD:
		return m.eerdLocked()
	}
	return m.reg[off>>2]
}

// eerdLocked answers a read of EERD: DONE and the word once START was
// written, in the model's layout.
func (m *model) eerdLocked() uint32 {
	v := m.reg[regEERD>>2]
	if v&eerdStart == 0 || m.eepromDead {
		return v &^ (eerdDone82540 | eerdDone82574)
	}
	done, shift, mask := uint32(eerdDone82540), uint32(eerdAddrShift8254), uint32(0xFF)
	if m.kind.pcie() {
		done, shift, mask = eerdDone82574, eerdAddrShift8257, 0x3FFF
	}
	w := v >> shift & mask
	var data uint16
	if w < uint32(len(m.eerom)) {
		data = m.eerom[w]
	}
	return v&0xFFFF | done | uint32(data)<<eerdDataShift
}

func (m *model) Write32(off uint32, v uint32) {
	if !m.check(off, 4) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dropWrites[off] {
		return
	}
	switch off {
	case regCTRL:
		m.reg[off>>2] = v
		if v&ctrlRST != 0 {
			m.resets++
			if !m.stuckReset {
				m.resetLocked()
			}
		}
		return
	case regIMC:
		m.reg[regIMSshadow>>2] &^= v
		return
	case regRDLEN, regTDLEN:
		m.reg[off>>2] = v & 0xFFF80
		return
	case regRDH, regTDH:
		m.reg[off>>2] = v & 0xFFFF
		return
	case regRDT:
		if n := m.reg[regRDLEN>>2] / descSize; n > 0 && v >= n {
			m.t.Errorf("RDT %d beyond a ring of %d", v, n)
		}
		m.reg[off>>2] = v & 0xFFFF
		if !m.quiet {
			m.rdtLog = append(m.rdtLog, v)
		}
		return
	case regTDT:
		if n := m.reg[regTDLEN>>2] / descSize; n > 0 && v >= n {
			m.t.Errorf("TDT %d beyond a ring of %d", v, n)
		}
		m.reg[off>>2] = v & 0xFFFF
		m.transmitLocked()
		return
	case regTCTL:
		m.reg[off>>2] = v
		m.transmitLocked()
		return
	}
	m.reg[off>>2] = v
}

// r reads a register's stored value.
func (m *model) r(off uint32) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reg[off>>2]
}

// ringBase returns a ring's base address and size from its registers.
func (m *model) ringLocked(bal, dlen uint32) (base uint64, n uint32) {
	return uint64(m.reg[bal>>2+1])<<32 | uint64(m.reg[bal>>2]&^0xF), m.reg[dlen>>2] / descSize
}

// transmitLocked processes transmit descriptors from TDH to TDT while the
// transmitter is enabled, the link up and the model not paused.
func (m *model) transmitLocked() {
	if m.reg[regTCTL>>2]&tctlEN == 0 || m.txPaused || !m.link {
		return
	}
	base, n := m.ringLocked(regTDBAL, regTDLEN)
	var frame []byte
	for k := uint32(0); k < n && m.reg[regTDH>>2] != m.reg[regTDT>>2]; k++ {
		h := m.reg[regTDH>>2]
		d, ok := m.mem.Bytes(base+uint64(h)*descSize, descSize)
		if !ok {
			m.t.Errorf("transmit ring %#x outside memory", base)
			return
		}
		addr := binary.LittleEndian.Uint64(d)
		length := uint32(binary.LittleEndian.Uint16(d[8:]))
		cmd := d[11]
		if cmd&(txdCmdEOP|txdCmdIFCS|txdCmdRS) != txdCmdEOP|txdCmdIFCS|txdCmdRS || cmd&(1<<5) != 0 {
			m.t.Errorf("transmit descriptor %d: command %#x, want EOP|IFCS|RS legacy", h, cmd)
		}
		if d[12] != 0 {
			m.t.Errorf("transmit descriptor %d handed over with status %#x", h, d[12])
		}
		buf, ok := m.mem.Bytes(addr, uint64(length))
		if !ok || length == 0 || length > 16288 {
			m.t.Errorf("transmit descriptor %d: buffer %#x+%d", h, addr, length)
		} else if !m.quiet {
			frame = append(frame, buf...)
		}
		if cmd&txdCmdEOP != 0 && !m.quiet {
			m.sent = append(m.sent, frame)
			frame = nil
		}
		// The write-back is one atomic store, as the driver's read of
		// it is (the hardware writes the status dword in one go).
		wb := binary.LittleEndian.Uint64(d[8:])
		store64(d[8:], wb&^(0xFF<<txStaBit)|uint64(txdStatDD|m.txStatus)<<txStaBit)
		m.reg[regTDH>>2] = (h + 1) % n
	}
}

// setPaused stops or restarts transmit processing.
func (m *model) setPaused(p bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.txPaused = p
	m.transmitLocked()
}

// setLink sets the link state; a link coming up resumes transmission.
func (m *model) setLink(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.link = up
	m.transmitLocked()
}

// frames returns the frames transmitted so far and forgets them.
func (m *model) frames() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.sent
	m.sent = nil
	return f
}

// deliver receives frame as the device would (the frame without its CRC,
// RCTL.SECRC being set): split over 2048-byte buffers, the last
// descriptor marked EOP. It reports false when the receiver is off, the
// link down, or there are not enough free descriptors (an overrun: the
// frame is lost).
func (m *model) deliver(frame []byte) bool {
	return m.deliverRaw(frame, -1, 0, 0)
}

// deliverRaw writes one frame's descriptors with the error bits errs and
// extra status bits status on its last descriptor; a length other than
// -1 replaces the written length (a lying device).
func (m *model) deliverRaw(frame []byte, length int, status, errs uint8) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.reg[regRCTL>>2]&rctlEN == 0 || !m.link {
		return false
	}
	base, n := m.ringLocked(regRDBAL, regRDLEN)
	if n == 0 {
		return false
	}
	need := uint32(max(1, (len(frame)+bufSize-1)/bufSize))
	h, t := m.reg[regRDH>>2], m.reg[regRDT>>2]
	if (t+n-h)%n < need {
		return false
	}
	for k := uint32(0); k < need; k++ {
		h := m.reg[regRDH>>2]
		d, ok := m.mem.Bytes(base+uint64(h)*descSize, descSize)
		if !ok {
			m.t.Errorf("receive ring %#x outside memory", base)
			return false
		}
		if binary.LittleEndian.Uint64(d[8:]) != 0 {
			m.t.Errorf("receive descriptor %d handed to the device with write-back %#x", h, d[8:])
		}
		addr := binary.LittleEndian.Uint64(d)
		chunk := frame[min(len(frame), int(k)*bufSize):min(len(frame), int(k+1)*bufSize)]
		buf, ok := m.mem.Bytes(addr, bufSize)
		if !ok || addr == 0 {
			m.t.Errorf("receive descriptor %d: buffer %#x", h, addr)
			return false
		}
		copy(buf, chunk)
		l := len(chunk)
		st := uint8(rxdStatDD)
		var e uint8
		if k == need-1 {
			st |= rxdStatEOP | status
			e = errs
			if length >= 0 {
				l = length
			}
		}
		store64(d[8:], uint64(uint16(l))|uint64(st)<<rxStatusBit|uint64(e)<<rxErrorsBit)
		m.reg[regRDH>>2] = (h + 1) % n
	}
	return true
}

// writeBack completes the receive descriptor at RDH with whatever
// length, status and error bits it is given (a device gone wrong), its
// buffer filled with fill. It reports false when the device owns no
// descriptor.
func (m *model) writeBack(length uint16, status, errs, fill uint8) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	base, n := m.ringLocked(regRDBAL, regRDLEN)
	h := m.reg[regRDH>>2]
	if n == 0 || h == m.reg[regRDT>>2] {
		return false
	}
	d, _ := m.mem.Bytes(base+uint64(h)*descSize, descSize)
	buf, ok := m.mem.Bytes(binary.LittleEndian.Uint64(d), bufSize)
	if !ok {
		m.t.Errorf("receive descriptor %d: buffer %#x", h, binary.LittleEndian.Uint64(d))
		return false
	}
	for i := range buf {
		buf[i] = fill
	}
	// A device may scribble over the buffer address too: the driver must
	// not use it.
	store64(d, 0xDEAD_BEEF_0000)
	store64(d[8:], uint64(length)|uint64(status)<<rxStatusBit|uint64(errs)<<rxErrorsBit)
	m.reg[regRDH>>2] = (h + 1) % n
	return true
}

// freeRx returns how many receive descriptors the device owns.
func (m *model) freeRx() uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, n := m.ringLocked(regRDBAL, regRDLEN)
	return (m.reg[regRDT>>2] + n - m.reg[regRDH>>2]) % n
}

// bumpDMA is a DMA allocator handing out pages of the model's memory
// from 1 MiB up.
type bumpDMA struct {
	next, end uint64
	fail      bool
	calls     int
}

func (b *bumpDMA) Alloc(n uint64) (uint64, bool) {
	b.calls++
	if b.fail || n == 0 {
		return 0, false
	}
	n = (n + 4095) &^ 4095
	if b.next+n > b.end {
		return 0, false
	}
	pa := b.next
	b.next += n
	return pa, true
}
