// Package ahci drives SATA disks behind an AHCI host bus adapter (Serial
// ATA AHCI 1.3.1; the ATA commands from ACS-3): the controller real
// servers offer, and QEMU's q35 machine has built in (ICH9 AHCI at
// 00:1f.2). It is juice the *driver*, running on the host, beside
// juice/drivers/virtio's virtio-blk driver; a guest's disk can be a range
// of a disk either drives.
//
// Open takes the HBA from the firmware (BIOS/OS handoff when CAP2.BOH
// says there is one), resets it, enables AHCI mode with interrupts off,
// and brings up every implemented port that has a device with
// established PHY communication (PxSSTS.DET = 3) and an ATA signature:
// per port a command list, received-FIS area and command table in DMA
// memory, FIS reception on, IDENTIFY DEVICE (model, serial, 48-bit
// capacity, logical block size including 4 KiB-sector disks, write cache
// and flush support), then the command list started. A Disk moves data
// with READ/WRITE DMA EXT through a bounce buffer described by PRD
// entries, empties the write cache with FLUSH CACHE EXT, and polls for
// completion with a bounded timeout: one command at a time in slot 0,
// no interrupts, no allocation per request.
//
// Errors never go unnoticed and never end in a panic: a command that
// fails (PxIS error bits, TFD.ERR or BSY, a transfer count that is not
// the one asked for) or does not complete in time is reported with the
// HBA, the port, the command and the registers; after an error the port
// is recovered as section 6.2.2 describes (command list stopped, errors
// cleared, a COMRESET when the device is busy or the error was an
// interface or host-bus one, the command list started again) and the
// disk goes on working. A port that cannot be stopped or brought back
// is marked failed and every later request on it fails at once, so a
// buffer the HBA might still write is never reused.
//
// Hardware is reached through seams, as in juice/drivers/virtio: the
// HBA's registers through pci.Regs (the ABAR by MMIO on the host, a
// modelled HBA in tests), the memory the HBA reads and writes by DMA
// through juice/mm/phys plus a DMA allocator.
package ahci

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"juice/drivers/pci"
	"juice/mm/phys"
)

// DMA hands out memory the HBA reaches by physical address: physically
// contiguous, page-aligned, never given back. It need not be zeroed.
// (The same shape as juice/drivers/virtio's DMA, so one allocator serves
// both.)
type DMA interface {
	Alloc(n uint64) (pa uint64, ok bool)
}

// Defaults.
const (
	// SectorSize is the granule of offsets and lengths; disks with larger
	// logical blocks are read and written whole blocks at a time (a
	// partial block is read, patched and written back).
	SectorSize = 512
	// DefaultMaxTransfer is the bounce buffer's size and so the most one
	// command moves.
	DefaultMaxTransfer = 64 << 10
	// DefaultTimeout bounds one command (and a device's spin-up).
	DefaultTimeout = 30 * time.Second
	// DefaultResetTimeout bounds each wait of a reset, handoff, start or
	// stop (the specification's longest is 1 s, for GHC.HR).
	DefaultResetTimeout = time.Second
	// maxTransferCap bounds Options.MaxTransfer.
	maxTransferCap = 16 << 20
	// linkSettle is how long a port showing no device at all
	// (PxSSTS.DET = 0) is watched before it counts as empty.
	linkSettle = 50 * time.Millisecond
	// biosBusyWait is how long the BIOS gets to finish once it says it
	// is busy during the handoff (section 10.6.3: at least 2 s).
	biosBusyWait = 2 * time.Second
	// spinTime: completion is polled yielding the processor for this
	// long, then sleeping with a growing interval up to a millisecond.
	spinTime = 200 * time.Microsecond
)

// Options tune Open; zero values mean the defaults.
type Options struct {
	// Name is the HBA's name in messages (its PCI address).
	Name string
	// MaxTransfer is the bounce buffer's size per port (a multiple of
	// 512, default DefaultMaxTransfer, at most 16 MiB).
	MaxTransfer uint32
	// PRDBytes is the most one PRD entry describes (a multiple of 512,
	// default 4 MiB, raised so that a transfer fits the PRD table).
	PRDBytes uint32
	// Timeout bounds one command (default DefaultTimeout).
	Timeout time.Duration
	// ResetTimeout bounds each register wait of the handoff, resets,
	// starting and stopping a port (default DefaultResetTimeout).
	ResetTimeout time.Duration
}

// Errors.
var (
	// ErrNoHBA: the registers do not look like an AHCI HBA.
	ErrNoHBA = errors.New("ahci: not an AHCI host bus adapter")
	// ErrReset: the HBA did not finish its reset or refused AHCI mode.
	ErrReset = errors.New("ahci: HBA reset failed")
	// ErrNoMemory: the DMA allocator could not supply the port's memory.
	ErrNoMemory = errors.New("ahci: no DMA memory")
	// ErrDevice: the device reported an error for a command (TFD.ERR,
	// PxIS.TFES) or left BSY or DRQ set.
	ErrDevice = errors.New("device reported an error")
	// ErrHost: the HBA reported an interface or host-bus error.
	ErrHost = errors.New("HBA reported an error")
	// ErrTimeout: a command did not complete in time.
	ErrTimeout = errors.New("command did not complete in time")
	// ErrTransfer: the HBA moved another number of bytes than asked.
	ErrTransfer = errors.New("wrong transfer length")
	// ErrFailed: the port could not be recovered; the disk is given up.
	ErrFailed = errors.New("port failed")
	// ErrReadOnly, ErrAlign, ErrRange: the caller's request is refused.
	ErrReadOnly = errors.New("ahci: the disk is read-only")
	ErrAlign    = errors.New("ahci: offset or length not a multiple of 512 bytes")
	ErrRange    = errors.New("ahci: beyond the end of the disk")
)

// HBA is an AHCI host bus adapter juice owns.
type HBA struct {
	name string
	regs pci.Regs
	size uint32
	mem  *phys.Mem
	dma  DMA
	o    Options

	// Cap, Cap2, Version and Implemented are CAP, CAP2, VS and PI after
	// the reset.
	Cap, Cap2, Version, Implemented uint32
	// Handoff says how the BIOS/OS handoff went ("" when the HBA has
	// none).
	Handoff string
	// Ports are the implemented ports, in order.
	Ports []Port
}

// Port is what Open found on one implemented port.
type Port struct {
	Num int
	// Status is PxSSTS once the link settled; Sig is PxSIG (valid when
	// the device sent its first D2H FIS).
	Status, Sig uint32
	// Disk is the ATA disk on the port, nil if none came up.
	Disk *Disk
	// Err says why a port with a device has no Disk; it names the HBA
	// and the port.
	Err error

	prefix string // "ahci NAME port N: ", what Err starts with
}

// Present reports whether a device with an established link is on the
// port.
func (p *Port) Present() bool { return p.Status&sstsDET == detPresentPhy }

// Describe is a one-line summary: "port 0: ATA disk", "port 1: empty",
// "port 2: ATAPI device (not driven)", "port 3: " and why it failed.
func (p *Port) Describe() string {
	switch {
	case p.Disk != nil:
		return fmt.Sprintf("port %d: ATA disk", p.Num)
	case p.Err != nil:
		return fmt.Sprintf("port %d: %s", p.Num, strings.TrimPrefix(p.Err.Error(), p.prefix))
	case !p.Present():
		return fmt.Sprintf("port %d: empty", p.Num)
	}
	return fmt.Sprintf("port %d: device, signature %#08x", p.Num, p.Sig)
}

// sigName names a device signature.
func sigName(sig uint32) string {
	switch sig {
	case SigATA:
		return "ATA disk"
	case SigATAPI:
		return "ATAPI device"
	case SigSEMB:
		return "enclosure bridge"
	case SigPM:
		return "port multiplier"
	}
	return fmt.Sprintf("device with signature %#08x", sig)
}

// Open takes over the HBA whose registers (the ABAR, size bytes of them)
// regs reaches, resets it, and brings up the ATA disks on its ports
// (see the package comment). It fails only when the HBA as a whole is
// unusable; a port that fails is listed with its error in Ports.
func Open(regs pci.Regs, size uint32, mem *phys.Mem, dma DMA, o Options) (*HBA, error) {
	if o.Name == "" {
		o.Name = "hba"
	}
	if o.MaxTransfer == 0 {
		o.MaxTransfer = DefaultMaxTransfer
	}
	o.MaxTransfer = min(o.MaxTransfer, maxTransferCap) &^ (SectorSize - 1)
	if o.MaxTransfer == 0 {
		o.MaxTransfer = SectorSize
	}
	if o.PRDBytes == 0 || o.PRDBytes > prdMaxBytes {
		o.PRDBytes = prdMaxBytes
	}
	o.PRDBytes &^= SectorSize - 1
	if o.PRDBytes == 0 {
		o.PRDBytes = SectorSize
	}
	// The PRD table has room for maxPRDs entries.
	for (o.MaxTransfer+o.PRDBytes-1)/o.PRDBytes > maxPRDs {
		o.PRDBytes *= 2
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ResetTimeout <= 0 {
		o.ResetTimeout = DefaultResetTimeout
	}
	h := &HBA{name: o.Name, regs: regs, size: size, mem: mem, dma: dma, o: o}
	if size < portBase {
		return nil, fmt.Errorf("ahci %s: %d bytes of registers: %w", h.name, size, ErrNoHBA)
	}
	if c := regs.Read32(regCAP); c == 0 || c == pci.Absent {
		return nil, fmt.Errorf("ahci %s: CAP reads %#x: %w", h.name, c, ErrNoHBA)
	}
	// AHCI mode first: before it, the HBA may be in legacy mode and
	// ignore the rest (section 10.1.2, step 1).
	regs.Write32(regGHC, ghcAE)
	if regs.Read32(regCAP2)&cap2BOH != 0 {
		h.Handoff = h.handoff()
	}
	if err := h.reset(); err != nil {
		return nil, err
	}
	h.Cap = regs.Read32(regCAP)
	h.Cap2 = regs.Read32(regCAP2)
	h.Version = regs.Read32(regVS)
	h.Implemented = regs.Read32(regPI)
	if h.Implemented == 0 {
		// Firmware that never wrote PI: the CAP's port count it is.
		h.Implemented = uint32(1)<<(h.Cap&capNP+1) - 1
	}
	h.ports()
	return h, nil
}

// Describe is a one-line summary of the HBA: "AHCI 1.0, 6 ports
// (implemented 0x3f), 32 command slots, 64-bit DMA, NCQ".
func (h *HBA) Describe() string {
	var b strings.Builder
	major, minor, sub := h.Version>>16, h.Version>>8&0xFF, h.Version&0xFF
	fmt.Fprintf(&b, "AHCI %x.%x", major, minor)
	if sub != 0 {
		fmt.Fprintf(&b, ".%x", sub)
	}
	fmt.Fprintf(&b, ", %d ports (implemented %#x), %d command slots", h.Cap&capNP+1, h.Implemented, h.Cap&capNCS>>8+1)
	if h.Cap&capS64A != 0 {
		b.WriteString(", 64-bit DMA")
	} else {
		b.WriteString(", 32-bit DMA")
	}
	if h.Cap&capSNCQ != 0 {
		b.WriteString(", NCQ")
	}
	if h.Cap&capSSS != 0 {
		b.WriteString(", staggered spin-up")
	}
	if h.Handoff != "" {
		b.WriteString(", " + h.Handoff)
	}
	return b.String()
}

// Disks returns the ATA disks that came up, in port order.
func (h *HBA) Disks() []*Disk {
	var out []*Disk
	for i := range h.Ports {
		if d := h.Ports[i].Disk; d != nil {
			out = append(out, d)
		}
	}
	return out
}

// handoff takes the HBA from the BIOS (section 10.6.3): set OS
// ownership, wait for the BIOS to drop its semaphore; if it says it is
// busy, give it up to 2 s more. A BIOS that never lets go is noted and
// overridden, as operating systems do.
func (h *HBA) handoff() string {
	r := h.regs
	if r.Read32(regBOHC)&bohcBOS == 0 {
		r.Write32(regBOHC, r.Read32(regBOHC)&^bohcOOC|bohcOOS)
		return "OS-owned (BIOS handoff: the BIOS did not own it)"
	}
	r.Write32(regBOHC, r.Read32(regBOHC)&^bohcOOC|bohcOOS)
	released := func() bool { return r.Read32(regBOHC)&bohcBOS == 0 }
	if h.wait(25*time.Millisecond, released) {
		return "taken from the BIOS (handoff)"
	}
	if r.Read32(regBOHC)&bohcBB != 0 {
		if h.wait(biosBusyWait, func() bool { return r.Read32(regBOHC)&(bohcBOS|bohcBB) == 0 }) {
			return "taken from the BIOS (handoff, after the BIOS finished)"
		}
	} else if h.wait(h.o.ResetTimeout, released) {
		return "taken from the BIOS (handoff)"
	}
	return "taken from the BIOS (handoff: the BIOS did not let go; overridden)"
}

// reset resets the HBA (GHC.HR) and enables AHCI mode with interrupts
// off (section 10.4.3).
func (h *HBA) reset() error {
	r := h.regs
	r.Write32(regGHC, ghcAE|ghcHR)
	if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(regGHC)&ghcHR == 0 }) {
		return fmt.Errorf("ahci %s: GHC.HR still set after %v: %w", h.name, h.o.ResetTimeout, ErrReset)
	}
	r.Write32(regGHC, ghcAE)
	if g := r.Read32(regGHC); g&ghcAE == 0 || g&ghcIE != 0 {
		return fmt.Errorf("ahci %s: GHC reads %#x after enabling AHCI mode: %w", h.name, g, ErrReset)
	}
	r.Write32(regIS, ^uint32(0))
	return nil
}

// ports finds the implemented ports, waits for their links to settle,
// and brings up an ATA disk on each port that has one.
func (h *HBA) ports() {
	var nums []int
	for i := 0; i < MaxPorts; i++ {
		if h.Implemented&(1<<i) != 0 {
			h.Ports = append(h.Ports, Port{Num: i, prefix: fmt.Sprintf("ahci %s port %d: ", h.name, i)})
			nums = append(nums, i)
		}
	}
	// Every port idle, and spun up where the HBA staggers spin-up.
	for k := range h.Ports {
		p := &h.Ports[k]
		if uint32(portBase+portStride*(p.Num+1)) > h.size {
			p.Err = fmt.Errorf("ahci %s port %d: its registers lie beyond the %d-byte ABAR", h.name, p.Num, h.size)
			continue
		}
		base := portReg(p.Num)
		if err := h.stopPort(base); err != nil {
			p.Err = fmt.Errorf("ahci %s port %d: %w", h.name, p.Num, err)
			continue
		}
		if h.Cap&capSSS != 0 {
			h.regs.Write32(base+pxCMD, h.regs.Read32(base+pxCMD)|cmdSUD|cmdPOD)
		}
	}
	// Links: all ports watched together, so empty ports cost one
	// linkSettle, not one each.
	start := time.Now()
	h.wait(h.o.ResetTimeout, func() bool {
		settled := true
		for k := range h.Ports {
			p := &h.Ports[k]
			if p.Err != nil {
				continue
			}
			p.Status = h.regs.Read32(portReg(p.Num) + pxSSTS)
			det := p.Status & sstsDET
			if det != detPresentPhy && det != detOffline && !(det == 0 && time.Since(start) > linkSettle) {
				settled = false
			}
		}
		return settled
	})
	for k := range h.Ports {
		p := &h.Ports[k]
		if p.Err != nil || !p.Present() {
			continue
		}
		p.Disk, p.Err = h.bringUp(p)
	}
}

// portReg is port n's register base.
func portReg(n int) uint32 { return uint32(portBase + portStride*n) }

// stopPort stops the command list and FIS reception (section 10.1.2,
// step 3: PxCMD.ST, wait for CR, PxCMD.FRE, wait for FR).
func (h *HBA) stopPort(base uint32) error {
	r := h.regs
	if c := r.Read32(base + pxCMD); c&(cmdST|cmdCR) != 0 {
		r.Write32(base+pxCMD, c&^cmdST)
		if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(base+pxCMD)&cmdCR == 0 }) {
			return fmt.Errorf("the command list did not stop (PxCMD %#x)", r.Read32(base+pxCMD))
		}
	}
	if c := r.Read32(base + pxCMD); c&(cmdFRE|cmdFR) != 0 {
		r.Write32(base+pxCMD, c&^cmdFRE)
		if !h.wait(h.o.ResetTimeout, func() bool { return r.Read32(base+pxCMD)&cmdFR == 0 }) {
			return fmt.Errorf("FIS reception did not stop (PxCMD %#x)", r.Read32(base+pxCMD))
		}
	}
	return nil
}

// bringUp sets up the port's memory, turns FIS reception on, waits for
// the device's first D2H FIS (its signature), and for an ATA disk
// starts the command list and identifies the device.
func (h *HBA) bringUp(p *Port) (*Disk, error) {
	r := h.regs
	base := portReg(p.Num)
	fail := func(err error) (*Disk, error) {
		h.stopPort(base)
		return nil, fmt.Errorf("ahci %s port %d: %w", h.name, p.Num, err)
	}
	ctlPA, ok := h.dma.Alloc(ctlBytes)
	if !ok {
		return fail(ErrNoMemory)
	}
	ctl, ok := h.mem.Bytes(ctlPA, ctlBytes)
	if !ok {
		return fail(ErrNoMemory)
	}
	if h.Cap&capS64A == 0 && ctlPA+ctlBytes > 1<<32 {
		return fail(fmt.Errorf("DMA memory at %#x, above the HBA's 32-bit reach", ctlPA))
	}
	clear(ctl)
	r.Write32(base+pxCLB, uint32(ctlPA+clOffset))
	r.Write32(base+pxCLBU, uint32((ctlPA+clOffset)>>32))
	r.Write32(base+pxFB, uint32(ctlPA+fisOffset))
	r.Write32(base+pxFBU, uint32((ctlPA+fisOffset)>>32))
	r.Write32(base+pxSERR, ^uint32(0))
	r.Write32(base+pxIE, 0)
	r.Write32(base+pxIS, ^uint32(0))
	r.Write32(base+pxCMD, r.Read32(base+pxCMD)|cmdFRE)
	// The device's first D2H FIS sets the signature and clears BSY.
	if !h.wait(h.o.Timeout, func() bool { return r.Read32(base+pxTFD)&(tfdBSY|tfdDRQ) == 0 }) {
		return fail(fmt.Errorf("device still busy after %v (PxTFD %#x)", h.o.Timeout, r.Read32(base+pxTFD)))
	}
	p.Sig = r.Read32(base + pxSIG)
	if p.Sig != SigATA {
		return fail(fmt.Errorf("%s (not driven)", sigName(p.Sig)))
	}
	d := &Disk{hba: h, port: p.Num, base: base, ctl: ctl, ctlPA: ctlPA, timeout: h.o.Timeout, prdBytes: h.o.PRDBytes}
	bufPA, ok := h.dma.Alloc(uint64(h.o.MaxTransfer))
	if !ok {
		return fail(ErrNoMemory)
	}
	if d.buf, ok = h.mem.Bytes(bufPA, uint64(h.o.MaxTransfer)); !ok {
		return fail(ErrNoMemory)
	}
	if h.Cap&capS64A == 0 && bufPA+uint64(h.o.MaxTransfer) > 1<<32 {
		return fail(fmt.Errorf("DMA memory at %#x, above the HBA's 32-bit reach", bufPA))
	}
	d.bufPA = bufPA
	r.Write32(base+pxSERR, ^uint32(0))
	r.Write32(base+pxIS, ^uint32(0))
	if err := d.start(); err != nil {
		return fail(err)
	}
	if err := d.identify(); err != nil {
		h.stopPort(base)
		return nil, err // named by the disk
	}
	return d, nil
}

// wait polls cond until it holds or limit passes, sleeping between
// polls with a growing interval (10 us to 1 ms). It reports whether cond
// held.
func (h *HBA) wait(limit time.Duration, cond func() bool) bool {
	start := time.Now()
	sleep := 10 * time.Microsecond
	for {
		if cond() {
			return true
		}
		if time.Since(start) > limit {
			return cond()
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, time.Millisecond)
	}
}
