// Package e1000 drives Intel's e1000-class Gigabit Ethernet controllers:
// the 82540EM (8086:100e, QEMU's -device e1000), the 82545EM copper
// (8086:100f, QEMU's -device e1000-82545em) and the 82574L (8086:10d3,
// QEMU's -device e1000e), the NICs an emulator or an older server offers
// juice. It implements juice/drivers/nic.Device: a polled frame device
// for the virtual switch's uplink.
//
// The driver follows the 8254x Software Developer's Manual (sections
// 14.3-14.5: reset, general configuration, receive and transmit
// initialization) and the 82574L datasheet where they differ (the EEPROM
// read register's layout, TXDCTL): it resets the device, masks every
// interrupt (juice polls), takes the MAC address from receive address 0
// or, when that is empty, from the EEPROM, sets the link up, clears the
// multicast table, and runs one receive and one transmit ring of legacy
// descriptors in DMA memory with 2048-byte buffers the driver owns.
// Frames are copied in and out; no buffer the device writes is handed to
// other code.
//
// The device is trusted no more than it must be. Every value it returns
// is checked: the reset must finish, the MAC address must be a valid
// unicast address, the ring registers must read back what was written,
// and a receive descriptor's length, end-of-packet bit and error bits
// decide whether its frame is delivered or dropped and counted (a frame
// spanning several descriptors, a runt, an oversize frame, a length
// beyond the buffer). The driver reads only descriptors it handed to
// the device, at offsets it computes itself; the buffer address a device
// writes back is ignored and rewritten.
//
// Send and Recv allocate nothing and do bounded work (at most one pass
// over a ring). They may be called from different goroutines: the
// transmit and receive sides each have their own lock.
package e1000

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"juice/drivers/nic"
	"juice/drivers/pci"
	"juice/mm/phys"
)

// Model is an e1000-class controller the driver knows.
type Model uint8

// The models.
const (
	Model82540EM Model = iota + 1 // 8086:100e, QEMU's e1000
	Model82545EM                  // 8086:100f, QEMU's e1000-82545em
	Model82574L                   // 8086:10d3, QEMU's e1000e
)

// PCI IDs.
const (
	VendorIntel   = 0x8086
	Device82540EM = 0x100E
	Device82545EM = 0x100F
	Device82574L  = 0x10D3
)

// String names the model.
func (m Model) String() string {
	switch m {
	case Model82540EM:
		return "82540EM"
	case Model82545EM:
		return "82545EM"
	case Model82574L:
		return "82574L"
	}
	return fmt.Sprintf("Model(%d)", uint8(m))
}

// pcie reports whether m is of the 82571 family (PCIe, the e1000e
// driver's), whose EEPROM read register and TXDCTL differ.
func (m Model) pcie() bool { return m == Model82574L }

// Lookup returns the model with PCI IDs vendor:device, ok false when the
// driver does not know it.
func Lookup(vendor, device uint16) (Model, bool) {
	if vendor != VendorIntel {
		return 0, false
	}
	switch device {
	case Device82540EM:
		return Model82540EM, true
	case Device82545EM:
		return Model82545EM, true
	case Device82574L:
		return Model82574L, true
	}
	return 0, false
}

// Frame and buffer sizes.
const (
	// MTU is the largest payload sent or received (no jumbo frames:
	// RCTL.LPE stays clear).
	MTU = 1500
	// ethHeader is an Ethernet header: destination, source, type.
	ethHeader = 14
	// maxRxFrame is the longest frame the device hands over without
	// RCTL.LPE: a full-sized frame with an 802.1Q tag, CRC stripped.
	maxRxFrame = MTU + ethHeader + 4
	// bufSize is every buffer's size: RCTL.BSIZE 00 with BSEX clear.
	bufSize = 2048
)

// Ring sizes: RDLEN and TDLEN are multiples of 128 bytes (8
// descriptors); 4096 descriptors is far more than a polled uplink needs.
const (
	DefaultDescs = 256
	minDescs     = 8
	maxDescs     = 4096
)

// Default waits.
const (
	// DefaultResetTimeout bounds the wait for CTRL.RST to clear (the
	// 8254x manual asks for 1 µs; the 82574L reloads its EEPROM, a few
	// milliseconds).
	DefaultResetTimeout = time.Second
	// DefaultEEPROMTimeout bounds one EEPROM word read through EERD.
	DefaultEEPROMTimeout = 100 * time.Millisecond
	// resetSettle is how long the driver waits after setting CTRL.RST
	// before it reads a register: the device reloads its configuration,
	// the receive address among it, from the EEPROM (Intel's drivers
	// wait 2 ms on the 8254x; the 82574L's auto-read takes up to 10).
	resetSettle = 10 * time.Millisecond
	// DefaultLinkTimeout bounds the wait for STATUS.LU after setting the
	// link up (auto-negotiation; QEMU's e1000e takes 500 ms). A link
	// still down then is reported, not an error.
	DefaultLinkTimeout = 2 * time.Second
)

// DMA hands out memory the device reaches by physical address:
// physically contiguous, page-aligned, never given back. It need not be
// zeroed. (drivers/virtio's DMA has the same method, so one allocator
// serves both.)
type DMA interface {
	Alloc(n uint64) (pa uint64, ok bool)
}

// BARMapper returns the registers [off, off+n) of BAR bar of the function
// being opened (the shape of drivers/virtio's BARMapper, so hostdev's
// mapper serves both).
type BARMapper func(bar uint8, off, n uint32) (pci.Regs, error)

// Options tune a device; zero values mean the defaults.
type Options struct {
	// Name is the interface's name in messages ("eth0").
	Name string
	// RxDescs and TxDescs are the rings' sizes (default DefaultDescs; a
	// multiple of 8 from 8 to 4096).
	RxDescs, TxDescs int
	// Promiscuous accepts every unicast and multicast frame (RCTL.UPE and
	// MPE), as a bridge port must: the uplink carries frames for the
	// guests' own MAC addresses. Without it the device accepts frames
	// for its own address and broadcasts.
	Promiscuous bool
	// Waits (defaults above).
	ResetTimeout, EEPROMTimeout, LinkTimeout time.Duration
}

// Errors.
var (
	// ErrNotE1000: the function is not a controller this driver knows.
	ErrNotE1000 = errors.New("e1000: not a supported Intel e1000-class controller")
	// ErrNoDevice: the registers read all ones (no device decodes them).
	ErrNoDevice = errors.New("e1000: registers read all ones (device absent or BAR not decoded)")
	// ErrReset: CTRL.RST did not clear in time.
	ErrReset = errors.New("e1000: device did not finish its reset")
	// ErrEEPROM: an EEPROM read through EERD did not complete in time.
	ErrEEPROM = errors.New("e1000: EEPROM read did not complete")
	// ErrNoMAC: neither receive address 0 nor the EEPROM holds a valid
	// unicast MAC address.
	ErrNoMAC = errors.New("e1000: no valid MAC address in RAL0/RAH0 or the EEPROM")
	// ErrRegisters: a ring register did not read back what was written.
	ErrRegisters = errors.New("e1000: ring registers do not read back what was written")
	// ErrNoMemory: the DMA allocator could not supply rings or buffers,
	// or gave memory outside the physical-memory window.
	ErrNoMemory = errors.New("e1000: no usable DMA memory")
	// ErrFrameSize: Send was given a frame shorter than an Ethernet
	// header or longer than MTU+14 bytes.
	ErrFrameSize = errors.New("e1000: frame shorter than 14 or longer than 1514 bytes")
)

// Counters are the driver's detailed counters; nic.Stats sums them up.
type Counters struct {
	TxFrames, TxBytes uint64
	TxFull            uint64 // Send found no free descriptor
	TxErrors          uint64 // done with excess or late collisions or an underrun
	RxFrames, RxBytes uint64
	// Frames received and dropped, by reason.
	RxErrors   uint64 // CRC, symbol, sequence, carrier extension or data error
	RxSpanning uint64 // a frame spread over several descriptors
	RxOversize uint64 // longer than MTU+18
	RxRunt     uint64 // shorter than an Ethernet header
	RxBadLen   uint64 // a length beyond the 2048-byte buffer: the device broke the protocol
	RxTooBig   uint64 // longer than the caller's buffer
}

// Dev is one e1000-class controller. It implements nic.Device.
type Dev struct {
	name    string
	model   Model
	addr    pci.Addr // for messages
	regs    pci.Regs
	mac     [6]byte
	macFrom string // "RAL0" or "EEPROM"

	tx txRing
	rx rxRing
}

var _ nic.Device = (*Dev)(nil)

// ring is what both rings have: n descriptors and n buffers in DMA
// memory.
type ring struct {
	n             uint32
	descs         []byte // n * descSize
	bufs          []byte // n * bufSize
	descPA, bufPA uint64
}

// txRing is the transmit side. The driver owns descriptors [tail,
// clean) (mod n) and has handed [clean, tail) to the device; one is
// always left free so that TDT == TDH means empty.
type txRing struct {
	mu sync.Mutex
	ring
	clean, tail, busy uint32 // busy = descriptors in flight
	frames, bytes     uint64
	full, errs        uint64
}

// rxRing is the receive side. The device owns every descriptor but the
// one at RDT; next is the oldest, the first to complete.
type rxRing struct {
	mu sync.Mutex
	ring
	next       uint32
	discarding bool // inside a frame spanning descriptors
	c          Counters
}

// Probe brings up f, a controller Lookup knows: it enables memory
// decoding and bus mastering (and disables INTx: juice polls), maps BAR
// 0's registers through m, and runs New. On failure bus mastering is
// turned off again.
func Probe(cs pci.ConfigSpace, f *pci.Function, m BARMapper, mem *phys.Mem, dma DMA, o Options) (*Dev, error) {
	model, ok := Lookup(f.VendorID, f.DeviceID)
	if !ok {
		return nil, ErrNotE1000
	}
	b := f.BARs[0]
	switch {
	case !b.IsMem() || b.Base == 0:
		return nil, fmt.Errorf("e1000 %v: BAR 0 is not an assigned memory BAR", f.Addr)
	case b.Size < minRegs:
		return nil, fmt.Errorf("e1000 %v: BAR 0 decodes %d bytes, too few", f.Addr, b.Size)
	}
	n := min(b.Size, RegsSize)
	old := pci.Command(cs, f.Addr)
	pci.Enable(cs, f.Addr, pci.CmdMemory|pci.CmdBusMaster|pci.CmdINTxDisable)
	regs, err := m(0, 0, uint32(n))
	if err == nil {
		var d *Dev
		if d, err = New(regs, mem, dma, model, o); err == nil {
			d.addr = f.Addr
			return d, nil
		}
	}
	pci.SetCommand(cs, f.Addr, old&^pci.CmdBusMaster)
	return nil, fmt.Errorf("e1000 %v (%v): %w", f.Addr, model, err)
}

// New brings up the controller behind regs (BAR 0): reset, interrupts
// masked, MAC address, link, multicast table, both rings, receiver and
// transmitter enabled. The link need not be up when it returns.
func New(regs pci.Regs, mem *phys.Mem, dma DMA, model Model, o Options) (*Dev, error) {
	if o.RxDescs == 0 {
		o.RxDescs = DefaultDescs
	}
	if o.TxDescs == 0 {
		o.TxDescs = DefaultDescs
	}
	for _, n := range []int{o.RxDescs, o.TxDescs} {
		if n < minDescs || n > maxDescs || n%8 != 0 {
			return nil, fmt.Errorf("e1000: ring of %d descriptors (a multiple of 8 from %d to %d)", n, minDescs, maxDescs)
		}
	}
	if o.ResetTimeout == 0 {
		o.ResetTimeout = DefaultResetTimeout
	}
	if o.EEPROMTimeout == 0 {
		o.EEPROMTimeout = DefaultEEPROMTimeout
	}
	if o.LinkTimeout == 0 {
		o.LinkTimeout = DefaultLinkTimeout
	}
	d := &Dev{name: o.Name, model: model, regs: regs}
	if err := d.reset(o); err != nil {
		return nil, err
	}
	if err := d.readMAC(o); err != nil {
		return nil, err
	}
	d.setup()
	if err := d.tx.alloc(mem, dma, uint32(o.TxDescs)); err != nil {
		return nil, err
	}
	if err := d.rx.alloc(mem, dma, uint32(o.RxDescs)); err != nil {
		return nil, err
	}
	if err := d.startRx(o); err != nil {
		d.stop()
		return nil, err
	}
	if err := d.startTx(); err != nil {
		d.stop()
		return nil, err
	}
	poll(o.LinkTimeout, d.LinkUp)
	return d, nil
}

// poll calls done until it reports true or timeout has passed, and
// returns its last answer. It yields the processor between calls (it
// runs while a device is brought up, not on a hot path).
func poll(timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			return done()
		}
		runtime.Gosched()
		time.Sleep(20 * time.Microsecond)
	}
	return true
}

// reset masks interrupts, resets the device (CTRL.RST, manual section
// 14.3), lets it settle and waits for the bit to clear, then masks
// interrupts again (a reset is not guaranteed to clear IMS on every
// model) and clears pending causes.
func (d *Dev) reset(o Options) error {
	ctrl := d.regs.Read32(regCTRL)
	if ctrl == pci.Absent {
		return ErrNoDevice
	}
	d.regs.Write32(regIMC, ^uint32(0))
	d.regs.Write32(regCTRL, ctrl|ctrlRST)
	time.Sleep(resetSettle)
	var last uint32
	if !poll(o.ResetTimeout, func() bool {
		last = d.regs.Read32(regCTRL)
		return last != pci.Absent && last&ctrlRST == 0
	}) {
		if last == pci.Absent {
			return fmt.Errorf("%w (CTRL reads all ones)", ErrReset)
		}
		return fmt.Errorf("%w (CTRL %#x after %v)", ErrReset, last, o.ResetTimeout)
	}
	d.regs.Write32(regIMC, ^uint32(0))
	d.regs.Read32(regICR)
	return nil
}

// validMAC reports whether m is a usable station address: unicast and
// not all zeros.
func validMAC(m [6]byte) bool {
	return m[0]&1 == 0 && m != [6]byte{}
}

// readMAC takes the MAC address from receive address 0 when it is marked
// valid and holds a unicast address (firmware or the EEPROM auto-load
// put it there), else from EEPROM words 0-2, which it then writes to
// receive address 0 so the receive filter matches it.
func (d *Dev) readMAC(o Options) error {
	ral, rah := d.regs.Read32(regRAL0), d.regs.Read32(regRAH0)
	m := [6]byte{byte(ral), byte(ral >> 8), byte(ral >> 16), byte(ral >> 24), byte(rah), byte(rah >> 8)}
	if rah&rahAV != 0 && rah != pci.Absent && validMAC(m) {
		d.mac, d.macFrom = m, "RAL0"
		return nil
	}
	var eerr error
	for w := 0; w < 3; w++ {
		v, err := d.eepromRead(uint8(w), o.EEPROMTimeout)
		if err != nil {
			eerr = err
			break
		}
		m[2*w], m[2*w+1] = byte(v), byte(v>>8)
	}
	if eerr != nil {
		return fmt.Errorf("%w: %w", ErrNoMAC, eerr)
	}
	if !validMAC(m) {
		return fmt.Errorf("%w (the EEPROM has %s)", ErrNoMAC, macString(m))
	}
	d.mac, d.macFrom = m, "EEPROM"
	d.regs.Write32(regRAL0, uint32(m[0])|uint32(m[1])<<8|uint32(m[2])<<16|uint32(m[3])<<24)
	d.regs.Write32(regRAH0, uint32(m[4])|uint32(m[5])<<8|rahAV)
	return nil
}

// eepromRead reads EEPROM word w through EERD (manual section 13.4.4;
// 82574L datasheet section 10.2.2.3).
func (d *Dev) eepromRead(w uint8, timeout time.Duration) (uint16, error) {
	done, shift := uint32(eerdDone82540), uint32(eerdAddrShift8254)
	if d.model.pcie() {
		done, shift = eerdDone82574, eerdAddrShift8257
	}
	d.regs.Write32(regEERD, uint32(w)<<shift|eerdStart)
	var v uint32
	if !poll(timeout, func() bool {
		v = d.regs.Read32(regEERD)
		return v != pci.Absent && v&done != 0
	}) {
		return 0, fmt.Errorf("%w (word %d, EERD %#x)", ErrEEPROM, w, v)
	}
	return uint16(v >> eerdDataShift), nil
}

// setup is the general configuration (manual section 14.3): link up with
// auto-speed detection, no link or PHY reset, no inverted loss of
// signal, no VLAN mode, no flow control; the other receive addresses and
// the multicast table cleared; interrupt throttling off.
func (d *Dev) setup() {
	ctrl := d.regs.Read32(regCTRL)
	ctrl &^= ctrlLRST | ctrlPHYRST | ctrlILOS | ctrlVME | ctrlRFCE | ctrlTFCE
	d.regs.Write32(regCTRL, ctrl|ctrlSLU|ctrlASDE)
	for _, r := range []uint32{regFCAL, regFCAH, regFCT, regFCTTV, regITR} {
		d.regs.Write32(r, 0)
	}
	for i := uint32(1); i < raEntries; i++ {
		d.regs.Write32(regRAH0+8*i, 0)
		d.regs.Write32(regRAL0+8*i, 0)
	}
	for i := uint32(0); i < mtaEntries; i++ {
		d.regs.Write32(regMTA+4*i, 0)
	}
}

// alloc allocates n descriptors and n buffers.
func (r *ring) alloc(mem *phys.Mem, dma DMA, n uint32) error {
	get := func(size uint64) ([]byte, uint64, error) {
		pa, ok := dma.Alloc(size)
		if !ok || pa%descSize != 0 {
			return nil, 0, ErrNoMemory
		}
		b, ok := mem.Bytes(pa, size)
		if !ok {
			return nil, 0, fmt.Errorf("%w (%#x+%#x outside the window)", ErrNoMemory, pa, size)
		}
		clear(b)
		return b, pa, nil
	}
	var err error
	r.n = n
	if r.descs, r.descPA, err = get(uint64(n) * descSize); err != nil {
		return err
	}
	r.bufs, r.bufPA, err = get(uint64(n) * bufSize)
	return err
}

// desc returns descriptor i.
func (r *ring) desc(i uint32) []byte { return r.descs[i*descSize : (i+1)*descSize] }

// buf returns buffer i.
func (r *ring) buf(i uint32) []byte { return r.bufs[i*bufSize : (i+1)*bufSize] }

// bufAddr returns buffer i's physical address.
func (r *ring) bufAddr(i uint32) uint64 { return r.bufPA + uint64(i)*bufSize }

// programRing writes a ring's base, length, head and tail and checks
// that they read back.
func (d *Dev) programRing(r *ring, bal, bah, dlen, head, tail uint32, tailVal uint32) error {
	d.regs.Write32(bal, uint32(r.descPA))
	d.regs.Write32(bah, uint32(r.descPA>>32))
	d.regs.Write32(dlen, r.n*descSize)
	d.regs.Write32(head, 0)
	d.regs.Write32(tail, tailVal)
	got := [5]uint32{d.regs.Read32(bal), d.regs.Read32(bah), d.regs.Read32(dlen), d.regs.Read32(head), d.regs.Read32(tail)}
	want := [5]uint32{uint32(r.descPA), uint32(r.descPA >> 32), r.n * descSize, 0, tailVal}
	if got != want {
		return fmt.Errorf("%w (register %#x..: base %#x:%#x length %d head %d tail %d, wrote %#x:%#x %d 0 %d)",
			ErrRegisters, bal, got[1], got[0], got[2], got[3], got[4], want[1], want[0], want[2], want[4])
	}
	return nil
}

// startRx is receive initialization (manual section 14.4): every
// descriptor armed with its buffer, RDT one behind RDH so the device owns
// all but one, no receive delay, no checksum offload, legacy
// descriptors, then RCTL: enabled, broadcasts accepted, CRC stripped,
// 2048-byte buffers, no long packets, no loopback.
func (d *Dev) startRx(o Options) error {
	r := &d.rx
	for i := uint32(0); i < r.n; i++ {
		r.arm(i)
	}
	d.regs.Write32(regRCTL, 0)
	if err := d.programRing(&r.ring, regRDBAL, regRDBAH, regRDLEN, regRDH, regRDT, r.n-1); err != nil {
		return err
	}
	d.regs.Write32(regRDTR, 0)
	d.regs.Write32(regRADV, 0)
	d.regs.Write32(regRXCSUM, 0)
	if d.model.pcie() {
		d.regs.Write32(regRFCTL, d.regs.Read32(regRFCTL)&^rfctlEXSTEN)
	}
	rctl := uint32(rctlEN | rctlBAM | rctlSECRC)
	if o.Promiscuous {
		rctl |= rctlUPE | rctlMPE
	}
	d.regs.Write32(regRCTL, rctl)
	return nil
}

// startTx is transmit initialization (manual section 14.5): an empty
// ring, no interrupt delays, the inter-packet gap, then TCTL: enabled,
// short packets padded, collision threshold 15 and full-duplex
// collision distance.
func (d *Dev) startTx() error {
	t := &d.tx
	d.regs.Write32(regTCTL, 0)
	if err := d.programRing(&t.ring, regTDBAL, regTDBAH, regTDLEN, regTDH, regTDT, 0); err != nil {
		return err
	}
	d.regs.Write32(regTIDV, 0)
	d.regs.Write32(regTADV, 0)
	tipg := uint32(tipg82540)
	if d.model.pcie() {
		tipg = tipg82574
		d.regs.Write32(regTXDCTL, d.regs.Read32(regTXDCTL)|txdctlGran)
	}
	d.regs.Write32(regTIPG, tipg)
	d.regs.Write32(regTCTL, tctlEN|tctlPSP|tctlCT|tctlCOLD)
	return nil
}

// stop turns receiver and transmitter off and resets the device, so it
// stops reaching the rings (a failed bring-up).
func (d *Dev) stop() {
	d.regs.Write32(regRCTL, 0)
	d.regs.Write32(regTCTL, 0)
	d.regs.Write32(regCTRL, d.regs.Read32(regCTRL)|ctrlRST)
}

// arm hands descriptor i back to the device's side of the ring: its
// buffer address (whatever the device wrote there) and a clear
// write-back half.
func (r *rxRing) arm(i uint32) {
	desc := r.desc(i)
	store64(desc, r.bufAddr(i))
	store64(desc[8:], 0)
}

// Name implements nic.Device.
func (d *Dev) Name() string { return d.name }

// MAC implements nic.Device.
func (d *Dev) MAC() [6]byte { return d.mac }

// MTU implements nic.Device.
func (d *Dev) MTU() int { return MTU }

// Model returns the controller's model.
func (d *Dev) Model() Model { return d.model }

// MACSource says where the MAC address came from: "RAL0" (receive
// address 0, loaded by the device from its EEPROM at reset) or "EEPROM"
// (read through EERD because receive address 0 was empty or invalid).
func (d *Dev) MACSource() string { return d.macFrom }

// LinkUp implements nic.Device: STATUS.LU.
func (d *Dev) LinkUp() bool {
	s := d.regs.Read32(regSTATUS)
	return s != pci.Absent && s&statusLU != 0
}

// Describe is a one-line summary for juice's log: model, MAC address and
// where it came from, link, rings.
func (d *Dev) Describe() string {
	link := "link down"
	if d.LinkUp() {
		link = "link up"
	}
	return fmt.Sprintf("%v %s (from %s), %s, %d receive and %d transmit descriptors",
		d.model, macString(d.mac), d.macFrom, link, d.rx.n, d.tx.n)
}

// macString formats a MAC address.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Send implements nic.Device: it copies frame into the next free
// transmit buffer, hands its descriptor to the device (end of packet,
// insert FCS, report status) and advances TDT. Descriptors the device
// has marked done are reclaimed first; with none free it returns
// nic.ErrFull.
func (d *Dev) Send(frame []byte) error {
	if len(frame) < ethHeader || len(frame) > MTU+ethHeader {
		return ErrFrameSize
	}
	t := &d.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reclaim()
	if t.busy == t.n-1 {
		t.full++
		return nic.ErrFull
	}
	i := t.tail
	copy(t.buf(i), frame)
	desc := t.desc(i)
	store64(desc, t.bufAddr(i))
	store64(desc[8:], uint64(len(frame))|uint64(txdCmdEOP|txdCmdIFCS|txdCmdRS)<<txCmdBit)
	t.tail = (i + 1) % t.n
	t.busy++
	t.frames++
	t.bytes += uint64(len(frame))
	d.regs.Write32(regTDT, t.tail)
	return nil
}

// TxFree reclaims the transmit descriptors the device has finished and
// returns how many frames Send would take now (the uplink's txRoom: it
// sends a segmented packet whole or not at all, and learns when a full
// ring has room again).
func (d *Dev) TxFree() int {
	t := &d.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reclaim()
	return int(t.n - 1 - t.busy)
}

// reclaim takes back the oldest in-flight descriptors the device has
// marked done (DD), counting those done with an error.
func (t *txRing) reclaim() {
	for t.busy > 0 {
		sta := uint8(load64(t.desc(t.clean)[8:]) >> txStaBit)
		if sta&txdStatDD == 0 {
			return
		}
		if sta&(txdStatEC|txdStatLC|txdStatTU) != 0 {
			t.errs++
		}
		t.clean = (t.clean + 1) % t.n
		t.busy--
	}
}

// Recv implements nic.Device: it returns the next good frame the device
// has written, copied into buf. Descriptors holding no deliverable frame
// (errors, a frame spanning descriptors, a runt, an oversize frame, a
// length beyond the buffer, a frame longer than buf) are dropped and
// counted; every descriptor looked at is armed again and handed back
// through RDT. It looks at no more than one ring's worth of descriptors
// per call. err is always nil: nothing the device does can be more than
// a dropped frame.
func (d *Dev) Recv(buf []byte) (n int, ok bool, err error) {
	r := &d.rx
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := uint32(0); k < r.n; k++ {
		i := r.next
		wb := load64(r.desc(i)[8:])
		status := uint8(wb >> rxStatusBit)
		if status&rxdStatDD == 0 {
			return 0, false, nil
		}
		length := int(uint16(wb))
		errs := uint8(wb >> rxErrorsBit)
		eop := status&rxdStatEOP != 0
		deliver := false
		switch {
		case r.discarding:
			// The rest of a frame spanning descriptors, counted when its
			// first descriptor was seen.
			r.discarding = !eop
		case !eop:
			r.discarding = true
			r.c.RxSpanning++
		case errs&rxdErrFrame != 0:
			r.c.RxErrors++
		case length > bufSize:
			r.c.RxBadLen++
		case length > maxRxFrame:
			r.c.RxOversize++
		case length < ethHeader:
			r.c.RxRunt++
		case length > len(buf):
			r.c.RxTooBig++
		default:
			n = copy(buf, r.buf(i)[:length])
			deliver = true
		}
		r.arm(i)
		r.next = (i + 1) % r.n
		d.regs.Write32(regRDT, i)
		if deliver {
			r.c.RxFrames++
			r.c.RxBytes += uint64(n)
			return n, true, nil
		}
	}
	return 0, false, nil
}

// Counters returns the detailed counters.
func (d *Dev) Counters() Counters {
	d.rx.mu.Lock()
	c := d.rx.c
	d.rx.mu.Unlock()
	d.tx.mu.Lock()
	c.TxFrames, c.TxBytes, c.TxFull, c.TxErrors = d.tx.frames, d.tx.bytes, d.tx.full, d.tx.errs
	d.tx.mu.Unlock()
	return c
}

// RxDrops is the number of received frames dropped, for any reason.
func (c Counters) RxDrops() uint64 {
	return c.RxErrors + c.RxSpanning + c.RxOversize + c.RxRunt + c.RxBadLen + c.RxTooBig
}

// Stats implements nic.Device.
func (d *Dev) Stats() nic.Stats {
	c := d.Counters()
	return nic.Stats{
		TxFrames: c.TxFrames, TxBytes: c.TxBytes, TxFull: c.TxFull,
		RxFrames: c.RxFrames, RxBytes: c.RxBytes, RxDrop: c.RxDrops(),
	}
}
