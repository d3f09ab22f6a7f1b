package platform

import (
	"fmt"
	"io"
	"log"

	"juice/vmm/acpi"
	"juice/vmm/netswitch"
	"juice/vmm/pci"
	"juice/vmm/virtio"
	"juice/vmm/virtio/blk"
	"juice/vmm/virtio/console"
	vnet "juice/vmm/virtio/net"
	"juice/vmm/virtio/rng"
	"juice/vmm/virtiopci"
)

// The PCI host bridge and the virtio devices.
//
// Every VM has a PCI bus (a host bridge in slot 0, legacy configuration
// ports 0xCF8/0xCFC, ECAM at ECAMBase, BARs in the window at PCIWindow)
// described to the guest by the DSDT's \_SB.PCI0 and the MCFG. Its virtio
// devices sit either on that bus (virtio-pci, slots 1.., MSI-X through
// the local APICs, INTx through I/O APIC pins 20-23) or, with transport
// "mmio", at VirtioMMIOBase + n*VirtioMMIOSize with GSIs 16.. (the DSDT's
// LNRO0005 devices).

// Addresses.
const (
	ECAMBase       = 0xe0000000
	PCIWindow      = 0xc0000000
	PCIWindowSize  = 0x20000000
	VirtioMMIOBase = 0xfe000000
	VirtioMMIOSize = 0x200
	virtioMMIOGSI  = 16
	maxMMIODevices = 4 // GSIs 16-19; 20-23 are PCI INTx
	ecamSize       = 1 << 20
)

// Devices are a VM's virtio devices.
type Devices struct {
	// MMIO selects the virtio-mmio transport instead of virtio-pci.
	MMIO bool
	// Disks are block devices (vda, vdb, ...): a back-end each, which
	// outlives the VM (a guest's reboot keeps its data).
	Disks []Disk
	// Nets are network interfaces (eth0, ...).
	Nets []Net
	// RNG, if set, adds an entropy device fed by it.
	RNG func(p []byte)
	// Console, if set, adds a virtio console (hvc0) writing to it.
	Console io.Writer
}

// Disk is one block device.
type Disk struct {
	Backend blk.Backend
	Serial  string
}

// Net is one network interface.
type Net struct {
	Switch *netswitch.Switch
	MAC    netswitch.MAC
}

// virtioDev is one attached device.
type virtioDev struct {
	state *virtio.State
	net   *vnet.Device
	con   *console.Device
}

// addPCI creates the VM's PCI bus and registers its ports and windows.
func (p *PC) addPCI() error {
	p.bus = pci.NewBus(func(gsi int, level bool) { p.ioapic.SetIRQ(gsi, level) }, p.msi)
	p.bus.SetResetControl(p.reset.Control())
	addr, data := p.bus.ConfigPorts()
	io := p.vm.IO()
	if err := io.Register(0xcf8, 4, addr); err != nil {
		return err
	}
	if err := io.Register(0xcfc, 4, data); err != nil {
		return err
	}
	if err := p.vm.MMIO().Register(ECAMBase, ecamSize, p.bus.ECAM()); err != nil {
		return err
	}
	// The window has a 64 KiB hole at ScratchHole, where the test
	// guests' scratch device (vmm/devices.Scratch, one page) lives and
	// where, past it, they check that an access to nothing stops the VM:
	// a BAR the guest maps there is not reachable in the hole (Linux
	// assigns BARs from the window's start, far below it).
	win := p.bus.Window()
	if err := p.vm.MMIO().Register(PCIWindow, ScratchHole-PCIWindow, win); err != nil {
		return err
	}
	above := uint64(ScratchHole + 0x10000)
	return p.vm.MMIO().Register(above, PCIWindow+PCIWindowSize-above, offsetMMIO{win, above - PCIWindow})
}

// ScratchHole is the page of the PCI window left to the scratch test
// device.
const ScratchHole = 0xd0000000

// offsetMMIO passes accesses to dev with add added to the offset.
type offsetMMIO struct {
	dev interface {
		Read(off uint64, size uint8) uint64
		Write(off uint64, size uint8, value uint64)
	}
	add uint64
}

func (o offsetMMIO) Read(off uint64, size uint8) uint64 { return o.dev.Read(off+o.add, size) }
func (o offsetMMIO) Write(off uint64, size uint8, v uint64) {
	o.dev.Write(off+o.add, size, v)
}

// msi delivers a message-signalled interrupt (a write of data to address
// 0xFEExxxxx) to the local APICs it names: destination ID in address bits
// 19:12, logical destination mode in bit 2, vector in data bits 7:0,
// delivery mode in bits 10:8 (fixed or lowest priority; others dropped).
func (p *PC) msi(addr uint64, data uint32) {
	mode := data >> 8 & 7
	if addr>>20 != 0xfee || (mode != 0 && mode != 1) {
		return
	}
	dest := uint32(addr >> 12 & 0xff)
	logical := addr>>2&1 != 0
	vector := uint8(data)
	for _, a := range p.lapics {
		if a.MatchDest(dest, logical) {
			a.Accept(vector)
			if mode == 1 {
				return
			}
		}
	}
}

// addDevices attaches the VM's virtio devices.
func (p *PC) addDevices(d *Devices) error {
	if d == nil {
		return nil
	}
	wake := func() { p.vm.Kick(0) }
	var models []virtio.Device
	for i, disk := range d.Disks {
		if disk.Backend == nil {
			return fmt.Errorf("disk %d: no back-end", i)
		}
		models = append(models, blk.New(disk.Backend, blk.Options{Serial: disk.Serial}))
	}
	var nets []*vnet.Device
	for i, n := range d.Nets {
		nd, err := vnet.New(n.Switch, n.MAC, wake)
		if err != nil {
			return fmt.Errorf("network interface %d: %v", i, err)
		}
		nets = append(nets, nd)
		models = append(models, nd)
	}
	p.nets = nets
	if d.RNG != nil {
		models = append(models, rng.New(d.RNG))
	}
	var con *console.Device
	if d.Console != nil {
		con = console.New(d.Console, wake)
		models = append(models, con)
	}
	if d.MMIO && len(models) > maxMMIODevices {
		return fmt.Errorf("%d virtio-mmio devices, at most %d", len(models), maxMMIODevices)
	}
	name := p.vm.Name
	for i, m := range models {
		i, m := i, m
		logf := func(s string) {
			log.Printf("juice: vm %s: virtio %s device %d: %s", name, typeName(m.Type()), i, s)
		}
		dev := virtioDev{}
		if nd, ok := m.(*vnet.Device); ok {
			dev.net = nd
		}
		if cd, ok := m.(*console.Device); ok {
			dev.con = cd
		}
		if d.MMIO {
			s := virtio.NewState(m, p.vm.Mem, nil, logf)
			base := uint64(VirtioMMIOBase + i*VirtioMMIOSize)
			gsi := virtioMMIOGSI + i
			mdev := virtio.NewMMIO(s, func(level bool) { p.ioapic.SetIRQ(gsi, level) })
			if err := p.vm.MMIO().Register(base, VirtioMMIOSize, mdev); err != nil {
				return err
			}
			p.mmioACPI = append(p.mmioACPI, acpi.MMIODevice{Base: base, Size: VirtioMMIOSize, GSI: uint32(gsi)})
			dev.state = s
		} else {
			var pd *virtiopci.Device
			s := virtio.NewState(m, p.vm.Mem, func(kind virtio.IRQKind, q int) { pd.Interrupt(kind, q) }, logf)
			var err error
			if pd, err = virtiopci.New(s, m.NumQueues()+1); err != nil {
				return err
			}
			if err := p.bus.Add(1+i, pd.Function()); err != nil {
				return err
			}
			dev.state = s
		}
		p.virtio = append(p.virtio, dev)
	}
	return nil
}

// serviceDevices moves waiting network frames and console input into the
// guest (the devices' receive queues), and resumes queues a kick left
// unfinished. Exit path: a few atomic loads when there is nothing to do.
func (p *PC) serviceDevices() {
	for i := range p.virtio {
		d := &p.virtio[i]
		if d.net != nil && d.net.Waiting() || d.con != nil && d.con.Waiting() {
			d.state.Notify(0)
		}
		if d.state.Pending() {
			d.state.Poll()
		}
	}
}

// Console returns the VM's virtio console, or nil.
func (p *PC) Console() *console.Device {
	for _, d := range p.virtio {
		if d.con != nil {
			return d.con
		}
	}
	return nil
}

// Close detaches the VM's network interfaces from their switches.
func (p *PC) Close() {
	for _, n := range p.nets {
		n.Close()
	}
}

func typeName(t uint16) string {
	switch t {
	case virtio.IDNet:
		return "net"
	case virtio.IDBlock:
		return "blk"
	case virtio.IDConsole:
		return "console"
	case virtio.IDEntropy:
		return "rng"
	}
	return fmt.Sprintf("type %d", t)
}
