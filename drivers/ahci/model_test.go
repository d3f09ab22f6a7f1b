package ahci

// A modelled AHCI HBA with SATA disks, for the tests: it implements
// pci.Regs over its register file and does its DMA into the same byte
// slice the driver uses as physical memory (phys.FromSlice), the way a
// real HBA reads the command list, command tables and PRDs and writes
// the received FIS and the data. It follows AHCI 1.3.1 as far as the
// driver depends on it (HBA reset, BIOS/OS handoff, PxCMD.ST/CR and
// FRE/FR, the signature arriving with the first D2H FIS once FIS
// reception is on, COMRESET through PxSCTL.DET, PxCI cleared when ST is)
// and checks the driver against it: every access width and alignment,
// the order of the start/stop steps, the command header, the FIS and
// each PRD (even byte counts, inside RAM, adding up to the transfer).
// A breach is recorded and fails the test.
//
// Faults can be injected per port: the device reporting an error
// (with PxCI cleared as QEMU does, or left set as the specification
// has it), a device that stays busy after its error, a command that
// never completes, a transfer count other than the one asked for, a
// host-bus error, and a command list that never stops.

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"juice/mm/phys"
)

// faultKind is an injected fault.
type faultKind int

const (
	faultNone       faultKind = iota
	faultDevErr               // ABRT, TFES, PxCI cleared (QEMU)
	faultDevErrCI             // ABRT, TFES, PxCI left set (AHCI 1.3.1 section 6.2.2)
	faultDevErrBusy           // ABRT, TFES, BSY stays set until a COMRESET
	faultHang                 // the command never completes
	faultShort                // PRDBC one sector short
	faultHostBus              // PxIS.HBFS, the command not completed
)

// fault is armed on a port: it hits the next command whose opcode is
// cmd (any command if 0).
type fault struct {
	kind faultKind
	cmd  uint8
}

// diskModel is a SATA disk.
type diskModel struct {
	data     []byte
	bs       uint32 // logical block size
	identify [IdentifyBytes]byte
	atapi    bool // answers with the ATAPI signature instead

	reads, writes, flushes, identifies int
	maxPRDs                            int // the longest PRD table seen
}

// portModel is one port's registers and state.
type portModel struct {
	impl                   bool
	clb, fb                uint64
	is, cmd, tfd, sig      uint32
	sctl, serr, ci         uint32
	dev                    *diskModel
	d2hSent                bool
	delay, pending         int // PxCI reads before a command completes
	fault                  fault
	hung                   bool // a command is stuck in flight
	busyUntilReset         bool
	crStuck                bool // PxCMD.CR never clears once set
	comresets, stStarts    int
	commands, badCommands  int
	lastPRDs, lastPRDBytes int
}

// SError bits the model sets after a COMRESET.
const (
	serrDiagN = 1 << 16 // PhyRdy change (mirrored in PxIS.PRCS)
	serrDiagX = 1 << 26 // exchanged: COMINIT received
)

// hbaModel is the HBA.
type hbaModel struct {
	mu                 sync.Mutex
	ram                []byte
	cap, cap2, ghc     uint32
	bohc, pi, vs       uint32
	size               uint32
	ports              [MaxPorts]portModel
	violations         []string
	hbaResets          int
	hrStuck            bool
	biosBusy           time.Duration // after OOS, how long BB stays set before the BIOS lets go
	oosAt              time.Time
	biosNeverLets      bool // BOS is never cleared
	handoffBeforeReset bool
	absent             bool // reads all ones
}

func (m *hbaModel) violate(format string, args ...any) {
	m.violations = append(m.violations, fmt.Sprintf(format, args...))
}

// Only 32-bit aligned accesses are allowed to AHCI registers.
func (m *hbaModel) Read8(off uint32) uint8 {
	m.mu.Lock()
	m.violate("8-bit read at %#x", off)
	m.mu.Unlock()
	return 0xFF
}

func (m *hbaModel) Read16(off uint32) uint16 {
	m.mu.Lock()
	m.violate("16-bit read at %#x", off)
	m.mu.Unlock()
	return 0xFFFF
}

func (m *hbaModel) Write8(off uint32, v uint8) {
	m.mu.Lock()
	m.violate("8-bit write at %#x", off)
	m.mu.Unlock()
}

func (m *hbaModel) Write16(off uint32, v uint16) {
	m.mu.Lock()
	m.violate("16-bit write at %#x", off)
	m.mu.Unlock()
}

func (m *hbaModel) Read32(off uint32) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.absent {
		return 0xFFFF_FFFF
	}
	if off%4 != 0 || off >= m.size {
		m.violate("read at %#x", off)
		return 0xFFFF_FFFF
	}
	if off >= portBase {
		n := int(off-portBase) / portStride
		if n >= MaxPorts || !m.ports[n].impl {
			return 0
		}
		return m.portRead(n, (off-portBase)%portStride)
	}
	switch off {
	case regCAP:
		return m.cap
	case regGHC:
		return m.ghc
	case regIS:
		var is uint32
		for i := range m.ports {
			if m.ports[i].is != 0 {
				is |= 1 << i
			}
		}
		return is
	case regPI:
		return m.pi
	case regVS:
		return m.vs
	case regCAP2:
		return m.cap2
	case regBOHC:
		if m.bohc&bohcOOS != 0 && m.bohc&bohcBOS != 0 && !m.biosNeverLets {
			if time.Since(m.oosAt) < m.biosBusy {
				m.bohc |= bohcBB
			} else {
				m.bohc &^= bohcBOS | bohcBB
				m.bohc |= bohcOOC
			}
		}
		return m.bohc
	}
	return 0
}

func (m *hbaModel) Write32(off uint32, v uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off%4 != 0 || off >= m.size {
		m.violate("write %#x at %#x", v, off)
		return
	}
	if off >= portBase {
		n := int(off-portBase) / portStride
		if n >= MaxPorts || !m.ports[n].impl {
			m.violate("write %#x to unimplemented port %d", v, n)
			return
		}
		m.portWrite(n, (off-portBase)%portStride, v)
		return
	}
	switch off {
	case regGHC:
		if v&ghcAE == 0 && m.cap&capSAM == 0 {
			m.violate("GHC written without AE: %#x", v)
		}
		if v&ghcHR != 0 {
			if m.bohc&bohcOOS != 0 {
				m.handoffBeforeReset = true
			}
			m.hbaResets++
			m.hbaReset()
			if m.hrStuck {
				m.ghc |= ghcHR
			}
			return
		}
		m.ghc = v&ghcIE | ghcAE
	case regIS:
	case regBOHC:
		if m.cap2&cap2BOH == 0 {
			m.violate("BOHC written without CAP2.BOH")
		}
		if v&bohcOOC != 0 {
			m.bohc &^= bohcOOC
		}
		if v&bohcOOS != 0 && m.bohc&bohcOOS == 0 {
			m.oosAt = time.Now()
		}
		m.bohc = m.bohc&^bohcOOS | v&bohcOOS
	default:
		m.violate("write %#x to read-only host register %#x", v, off)
	}
}

// hbaReset resets every port (the device included), as QEMU does.
func (m *hbaModel) hbaReset() {
	m.ghc = ghcAE
	for i := range m.ports {
		p := &m.ports[i]
		if !p.impl {
			continue
		}
		p.is, p.sctl, p.serr, p.ci = 0, 0, 0, 0
		p.cmd = cmdSUD | cmdPOD
		m.deviceReset(p)
	}
}

// deviceReset is what a COMRESET does to the device: its state gone, BSY
// until it sends its D2H FIS (at once here, once FIS reception is on).
func (m *hbaModel) deviceReset(p *portModel) {
	p.sig = 0xFFFF_FFFF
	p.tfd = 0x7F
	p.d2hSent = false
	p.hung, p.pending, p.busyUntilReset = false, 0, false
	if p.dev != nil && p.cmd&cmdFRE != 0 {
		m.sendInitialD2H(p)
	}
}

// sendInitialD2H is the device's first D2H FIS after a reset: the
// signature.
func (m *hbaModel) sendInitialD2H(p *portModel) {
	if p.dev == nil || p.d2hSent {
		return
	}
	p.d2hSent = true
	p.sig = SigATA
	if p.dev.atapi {
		p.sig = SigATAPI
	}
	p.tfd = 1<<8 | 0x50
	m.d2h(p)
}

// d2h writes a D2H register FIS with the task file into the received
// FIS area and raises DHRS.
func (m *hbaModel) d2h(p *portModel) {
	if p.fb+fisAreaBytes <= uint64(len(m.ram)) {
		f := m.ram[p.fb+rfisOffset:][:20]
		f[0] = fisTypeD2H
		f[2], f[3] = byte(p.tfd), byte(p.tfd>>8)
	}
	p.is |= isDHRS
	if p.tfd&tfdERR != 0 {
		p.is |= isTFES
	}
}

func (m *hbaModel) portRead(n int, reg uint32) uint32 {
	p := &m.ports[n]
	switch reg {
	case pxCLB:
		return uint32(p.clb)
	case pxCLBU:
		return uint32(p.clb >> 32)
	case pxFB:
		return uint32(p.fb)
	case pxFBU:
		return uint32(p.fb >> 32)
	case pxIS:
		return p.is
	case pxCMD:
		return p.cmd
	case pxTFD:
		return p.tfd
	case pxSIG:
		return p.sig
	case pxSSTS:
		if p.dev == nil || p.sctl&sctlDET == sctlDETComInit {
			return 0
		}
		return 0x113 // DET 3, Gen 1, active
	case pxSCTL:
		return p.sctl
	case pxSERR:
		return p.serr
	case pxCI:
		if p.pending > 0 {
			p.pending--
			if p.pending == 0 {
				m.execute(p)
			}
		}
		return p.ci
	}
	return 0
}

func (m *hbaModel) portWrite(n int, reg, v uint32) {
	p := &m.ports[n]
	switch reg {
	case pxCLB, pxCLBU:
		if p.cmd&(cmdST|cmdCR) != 0 {
			m.violate("port %d: PxCLB written while the command list runs", n)
		}
		if reg == pxCLB {
			p.clb = p.clb&^0xFFFF_FFFF | uint64(v)
			if v%cmdListBytes != 0 {
				m.violate("port %d: PxCLB %#x not 1 KiB aligned", n, v)
			}
		} else {
			p.clb = p.clb&0xFFFF_FFFF | uint64(v)<<32
		}
	case pxFB, pxFBU:
		if p.cmd&(cmdFRE|cmdFR) != 0 {
			m.violate("port %d: PxFB written while FIS reception runs", n)
		}
		if reg == pxFB {
			p.fb = p.fb&^0xFFFF_FFFF | uint64(v)
			if v%fisAreaBytes != 0 {
				m.violate("port %d: PxFB %#x not 256-byte aligned", n, v)
			}
		} else {
			p.fb = p.fb&0xFFFF_FFFF | uint64(v)<<32
		}
	case pxIS:
		p.is &^= v
		if p.serr&serrDiagN != 0 {
			p.is |= isPRCS // mirrors SError.DIAG.N until that is cleared
		}
	case pxIE:
		if v != 0 {
			m.violate("port %d: interrupts enabled (%#x): the driver polls", n, v)
		}
	case pxCMD:
		m.portCmd(n, p, v)
	case pxSCTL:
		old := p.sctl
		p.sctl = v
		if old&sctlDET == sctlDETComInit && v&sctlDET == 0 {
			if p.cmd&cmdST != 0 {
				m.violate("port %d: COMRESET while PxCMD.ST is set", n)
			}
			p.comresets++
			p.ci = 0
			m.deviceReset(p)
			p.serr |= serrDiagN | serrDiagX
			p.is |= isPRCS
		}
	case pxSERR:
		p.serr &^= v
	case pxSACT:
		m.violate("port %d: PxSACT written (no NCQ)", n)
	case pxCI:
		if p.cmd&cmdST == 0 {
			m.violate("port %d: PxCI written with the command list stopped", n)
			return
		}
		if v != 1 {
			m.violate("port %d: PxCI %#x: the driver uses slot 0 only", n, v)
		}
		if p.ci != 0 {
			m.violate("port %d: PxCI written while slot 0 is in flight", n)
		}
		p.ci |= v
		if p.delay > 0 {
			p.pending = p.delay
		} else {
			m.execute(p)
		}
	default:
		m.violate("port %d: write %#x to register %#x", n, v, reg)
	}
}

// portCmd handles a PxCMD write.
func (m *hbaModel) portCmd(n int, p *portModel, v uint32) {
	const rw = cmdST | cmdSUD | cmdPOD | cmdCLO | cmdFRE
	old := p.cmd
	p.cmd = p.cmd&^rw | v&rw
	if v&cmdCLO != 0 {
		if m.cap&capSCLO == 0 {
			m.violate("port %d: PxCMD.CLO without CAP.SCLO", n)
		}
		p.tfd &^= tfdBSY | tfdDRQ
		p.cmd &^= cmdCLO
	}
	// FIS reception.
	if v&cmdFRE != 0 && old&cmdFRE == 0 {
		if p.fb == 0 {
			m.violate("port %d: FRE set with no PxFB", n)
		}
		p.cmd |= cmdFR
		m.sendInitialD2H(p)
	}
	if v&cmdFRE == 0 && old&cmdFRE != 0 {
		if p.cmd&(cmdST|cmdCR) != 0 {
			m.violate("port %d: FRE cleared while the command list runs", n)
		}
		p.cmd &^= cmdFR
	}
	// The command list.
	if v&cmdST != 0 && old&cmdST == 0 {
		switch {
		case p.cmd&cmdFRE == 0:
			m.violate("port %d: ST set without FRE", n)
		case old&cmdCR != 0:
			m.violate("port %d: ST set while CR is still set", n)
		case p.tfd&(tfdBSY|tfdDRQ) != 0:
			m.violate("port %d: ST set while the device is busy (PxTFD %#x)", n, p.tfd)
		case p.clb == 0:
			m.violate("port %d: ST set with no PxCLB", n)
		}
		p.cmd |= cmdCR
		p.stStarts++
	}
	if v&cmdST == 0 && old&cmdST != 0 {
		p.ci = 0
		p.pending = 0
		if !p.crStuck {
			p.cmd &^= cmdCR
		}
	}
}

// execute runs the command in slot 0.
func (m *hbaModel) execute(p *portModel) {
	if p.ci&1 == 0 || p.hung {
		return
	}
	p.commands++
	le := binary.LittleEndian
	bad := func(format string, args ...any) {
		p.badCommands++
		m.violate(format, args...)
		p.ci = 0
	}
	if p.clb+cmdListBytes > uint64(len(m.ram)) {
		bad("command list at %#x outside RAM", p.clb)
		return
	}
	hdr := m.ram[p.clb:][:32]
	dw0 := le.Uint32(hdr)
	ctba := le.Uint64(hdr[8:])
	write := dw0&hdrWrite != 0
	prdtl := int(dw0 >> 16)
	switch {
	case dw0&0x1F != cmdHeaderCFL:
		bad("command FIS length %d dwords, want 5", dw0&0x1F)
		return
	case ctba%128 != 0 || ctba+cmdTablePRDT+uint64(prdtl)*prdBytes > uint64(len(m.ram)):
		bad("command table at %#x with %d PRDs: misaligned or outside RAM", ctba, prdtl)
		return
	}
	fis := m.ram[ctba:][:20]
	if fis[0] != fisTypeH2D || fis[1] != fisH2DCommand {
		bad("command FIS type %#x flags %#x", fis[0], fis[1])
		return
	}
	// The PRDs.
	var total uint64
	for i := 0; i < prdtl; i++ {
		e := m.ram[ctba+cmdTablePRDT+uint64(i)*prdBytes:][:prdBytes]
		dba, dbc := le.Uint64(e), le.Uint32(e[12:])&0x3F_FFFF
		if dba&1 != 0 || dbc&1 == 0 || dba+uint64(dbc)+1 > uint64(len(m.ram)) {
			bad("PRD %d: address %#x, byte count %d: odd, or outside RAM", i, dba, dbc+1)
			return
		}
		total += uint64(dbc) + 1
	}
	p.lastPRDs, p.lastPRDBytes = prdtl, int(total)
	dev := p.dev
	dev.maxPRDs = max(dev.maxPRDs, prdtl)
	cmd := fis[2]
	f := p.fault
	if f.kind != faultNone && (f.cmd == 0 || f.cmd == cmd) {
		p.fault = fault{}
		switch f.kind {
		case faultDevErr, faultDevErrCI, faultDevErrBusy:
			p.tfd = ataErrABRT<<8 | 0x51
			if f.kind == faultDevErrBusy {
				p.tfd |= tfdBSY
				p.busyUntilReset = true
			}
			m.d2h(p)
			if f.kind == faultDevErr {
				p.ci = 0
			}
			return
		case faultHang:
			p.hung = true
			p.tfd = 0xD0
			return
		case faultHostBus:
			p.is |= isHBFS
			return
		}
	}
	// The transfer.
	var moved uint64
	prdMove := func(disk []byte, toRAM bool) {
		rest := disk
		for i := 0; i < prdtl && len(rest) > 0; i++ {
			e := m.ram[ctba+cmdTablePRDT+uint64(i)*prdBytes:][:prdBytes]
			dba, n := le.Uint64(e), uint64(le.Uint32(e[12:])&0x3F_FFFF)+1
			n = min(n, uint64(len(rest)))
			if toRAM {
				copy(m.ram[dba:dba+n], rest[:n])
			} else {
				copy(rest[:n], m.ram[dba:dba+n])
			}
			rest = rest[n:]
			moved += n
		}
	}
	switch cmd {
	case ataIdentify:
		if write || total < IdentifyBytes {
			bad("IDENTIFY with W=%v and %d PRD bytes", write, total)
			return
		}
		dev.identifies++
		prdMove(dev.identify[:], true)
	case ataReadDMAExt, ataWriteDMAExt:
		lba := uint64(fis[4]) | uint64(fis[5])<<8 | uint64(fis[6])<<16 | uint64(fis[8])<<24 | uint64(fis[9])<<32 | uint64(fis[10])<<40
		count := uint64(fis[12]) | uint64(fis[13])<<8
		if count == 0 {
			count = 65536
		}
		bs := uint64(dev.bs)
		switch {
		case fis[7] != ataDevLBA:
			bad("%s with device register %#x", commandName(cmd), fis[7])
			return
		case write != (cmd == ataWriteDMAExt):
			bad("%s with W=%v", commandName(cmd), write)
			return
		case total != count*bs:
			bad("%s of %d blocks with %d PRD bytes", commandName(cmd), count, total)
			return
		}
		if (lba+count)*bs > uint64(len(dev.data)) {
			p.tfd = 0x10<<8 | 0x51 // IDNF
			m.d2h(p)
			p.ci = 0
			return
		}
		if cmd == ataReadDMAExt {
			dev.reads++
			prdMove(dev.data[lba*bs:(lba+count)*bs], true)
		} else {
			dev.writes++
			prdMove(dev.data[lba*bs:(lba+count)*bs], false)
		}
	case ataFlushExt, ataFlush:
		if prdtl != 0 {
			bad("%s with %d PRDs", commandName(cmd), prdtl)
			return
		}
		dev.flushes++
	default:
		p.tfd = ataErrABRT<<8 | 0x51
		m.d2h(p)
		p.ci = 0
		return
	}
	if f.kind == faultShort {
		moved -= SectorSize
	}
	le.PutUint32(hdr[4:], uint32(moved))
	p.tfd = 0x50
	if p.busyUntilReset {
		p.tfd |= tfdBSY
	}
	m.d2h(p)
	p.ci = 0
}

// identifyPage builds IDENTIFY DEVICE data: an ATA disk with DMA and
// 48-bit addressing, sectors logical blocks of 512<<logShift bytes,
// physical blocks 2^physShift logical ones.
func identifyPage(model, serial string, sectors uint64, logical uint32, physShift uint, cache, flushExt bool) [IdentifyBytes]byte {
	var b [IdentifyBytes]byte
	le := binary.LittleEndian
	w := func(i int, v uint16) { le.PutUint16(b[2*i:], v) }
	str := func(at, n int, s string) {
		p := make([]byte, n)
		for i := range p {
			p[i] = ' '
		}
		copy(p, s)
		for i := 0; i < n; i += 2 {
			b[at+i], b[at+i+1] = p[i+1], p[i]
		}
	}
	w(0, 0x0040)
	str(20, 20, serial)
	str(46, 8, "1.0")
	str(54, 40, model)
	w(49, 1<<8|1<<9)
	w(60, uint16(min(sectors, 0x0FFF_FFFF)))
	w(61, uint16(min(sectors, 0x0FFF_FFFF)>>16))
	var w82, w83, w85 uint16 = 0, 0x4000 | 1<<10 | 1<<12, 0
	if cache {
		w82 |= 1 << 5
		w85 |= 1 << 5
	}
	if flushExt {
		w83 |= 1 << 13
	}
	w(82, w82)
	w(83, w83)
	w(85, w85)
	w(87, 0x4000)
	w(100, uint16(sectors))
	w(101, uint16(sectors>>16))
	w(102, uint16(sectors>>32))
	w(103, uint16(sectors>>48))
	w106 := uint16(0x4000)
	if physShift > 0 {
		w106 |= 1<<13 | uint16(physShift)
	}
	if logical != 512 {
		w106 |= 1 << 12
		w(117, uint16(logical/2))
		w(118, uint16(logical/2>>16))
	}
	w(106, w106)
	b[510] = 0xA5
	var sum byte
	for _, c := range b[:511] {
		sum += c
	}
	b[511] = -sum
	return b
}

// diskSpec describes one port of a test rig.
type diskSpec struct {
	port    int
	size    int    // bytes
	bs      uint32 // logical block size (default 512)
	serial  string
	noFlush bool
	atapi   bool
	empty   bool // implemented, nothing attached
}

// bump is a DMA allocator handing out the slice's memory upward,
// page-aligned.
type bump struct {
	next, end uint64
}

func (b *bump) Alloc(n uint64) (uint64, bool) {
	n = (n + 4095) &^ 4095
	if n == 0 || b.next+n > b.end {
		return 0, false
	}
	pa := b.next
	b.next += n
	return pa, true
}

const (
	rigRAM  = 4 << 20
	dmaFrom = 1 << 20
)

// rig is a modelled machine: RAM, the HBA, its disks.
type rig struct {
	ram []byte
	mem phys.Mem
	m   *hbaModel
	dma *bump
}

// newRig builds an HBA (6 ports, 64-bit, 32 slots, AHCI 1.0 like
// QEMU's ICH9) with the given ports. Its register state is what a BIOS
// leaves behind: AHCI on, port 0 running with its lists elsewhere. The
// model's breaches fail the test at its end.
func newRig(t *testing.T, disks ...diskSpec) *rig {
	t.Helper()
	r := &rig{ram: make([]byte, rigRAM)}
	r.mem = phys.FromSlice(r.ram)
	r.dma = &bump{next: dmaFrom, end: rigRAM}
	m := &hbaModel{ram: r.ram, cap: 5 | 31<<8 | capSAM | capS64A | capSNCQ, pi: 0x3F, vs: 0x00010000, size: 0x1000, ghc: ghcAE}
	for _, d := range disks {
		p := &m.ports[d.port]
		p.impl = true
		if d.empty {
			continue
		}
		bs := d.bs
		if bs == 0 {
			bs = 512
		}
		p.dev = &diskModel{data: make([]byte, d.size), bs: bs, atapi: d.atapi}
		p.dev.identify = identifyPage("JUICE MODEL DISK", d.serial, uint64(d.size)/uint64(bs), bs, 0, true, !d.noFlush)
	}
	for i := range m.ports {
		m.ports[i].impl = m.pi&(1<<i) != 0
	}
	// The BIOS left port 0 running on its own lists.
	if p := &m.ports[0]; p.dev != nil {
		p.clb, p.fb, p.cmd = 0x8000, 0x9000, cmdST|cmdCR|cmdFRE|cmdFR|cmdSUD|cmdPOD
		p.tfd, p.sig, p.d2hSent = 0x50, SigATA, true
	}
	r.m = m
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, v := range m.violations {
			t.Errorf("HBA model: driver breached the protocol: %s", v)
		}
	})
	return r
}

// open runs Open with o (Name "test" unless set).
func (r *rig) open(t *testing.T, o Options) *HBA {
	t.Helper()
	if o.Name == "" {
		o.Name = "test"
	}
	h, err := Open(r.m, r.m.size, &r.mem, r.dma, o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// port returns port n's model state, locked by f.
func (r *rig) with(f func(m *hbaModel)) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	f(r.m)
}

// disk returns port n's disk model (the caller holds no lock; use only
// when the driver is idle).
func (r *rig) disk(n int) *diskModel { return r.m.ports[n].dev }
