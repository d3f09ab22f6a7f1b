package main

// Host NICs: the network interfaces of the machine juice drives, found in
// hostdev.go's PCI enumeration and named by driver and order (vnet0,
// vnet1, ... for virtio-net). Each is a juice/drivers/nic.Device; a
// bundle network names one as its uplink (uplink.go), which bridges the
// network's switch to the NIC's wire.

import (
	"errors"
	"fmt"
	"log"
	"strings"

	"juice/drivers/nic"
	"juice/drivers/pci"
	"juice/drivers/virtio"
	"juice/vmm"
)

// hostNIC is one network interface juice drives.
type hostNIC struct {
	name   string // vnet0, ...
	driver string // "virtio-net"
	fn     pci.Function
	dev    nic.Device
}

// hostNICs are the NICs hostNetDevices brought up, in PCI order.
var hostNICs []*hostNIC

// maxHostNICs bounds the NICs brought up (names end in at most three
// digits: bundle.ValidHostNIC).
const maxHostNICs = 64

// nicDriver is one host NIC driver: which PCI functions it takes and how
// it brings one up. Its NICs are named prefix0, prefix1, ... in PCI
// order.
type nicDriver struct {
	name   string
	prefix string
	match  func(f *pci.Function) bool
	// open brings f up as the NIC name; how says how its registers are
	// reached (for the hostnic: line).
	open func(h *vmm.Host, cs pci.ConfigSpace, f *pci.Function, name string) (dev nic.Device, how string, err error)
}

// nicDrivers are tried in order on every PCI function; the first whose
// match takes it drives it.
//
// HOOK for more NIC drivers: a driver implementing nic.Device (an Intel
// e1000 in juice/drivers/e1000, say) adds one entry here, e.g.
//
//	{name: "e1000", prefix: "eth", match: isE1000, open: openE1000},
//
// with open mapping its BAR (directMapper.mapBAR, as openVirtio does),
// allocating its rings from frameDMA, and returning the device; nothing
// else changes: the hostnic: line, the names and the uplinks follow.
var nicDrivers = []nicDriver{
	{name: "virtio-net", prefix: "vnet", match: isVirtioNet, open: openVirtioNet},
	{name: "e1000", prefix: "eth", match: isE1000, open: openE1000}, // hostnic_e1000.go
}

// hostNetDevices brings up the NICs among fns and prints one hostnic:
// line for each. A NIC that fails is reported and left out (it gets no
// name); juice goes on.
func hostNetDevices(h *vmm.Host, cs pci.ConfigSpace, fns []pci.Function) {
	count := map[string]int{}
	for i := range fns {
		f := &fns[i]
		for _, d := range nicDrivers {
			if !d.match(f) {
				continue
			}
			if len(hostNICs) == maxHostNICs {
				log.Printf("hostnic: %v: %s: more than %d NICs, left out", f.Addr, d.name, maxHostNICs)
				break
			}
			name := fmt.Sprintf("%s%d", d.prefix, count[d.prefix])
			dev, how, err := d.open(h, cs, f, name)
			if err != nil {
				log.Printf("hostnic: %v: %s: %v", f.Addr, d.name, err)
				break
			}
			count[d.prefix]++
			hostNICs = append(hostNICs, &hostNIC{name: name, driver: d.name, fn: *f, dev: dev})
			link := "down"
			if dev.LinkUp() {
				link = "up"
			}
			log.Printf("hostnic: %s %v %s, MAC %s, link %s, MTU %d, registers %s",
				name, f.Addr, d.name, formatMAC(dev.MAC()), link, dev.MTU(), how)
			break
		}
	}
}

// findHostNIC returns the NIC called name.
func findHostNIC(name string) (*hostNIC, error) {
	var names []string
	for _, n := range hostNICs {
		if n.name == name {
			return n, nil
		}
		names = append(names, n.name)
	}
	have := "none"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("no host NIC %s (host NICs: %s)", name, have)
}

// formatMAC writes m as 52:54:00:12:34:56.
func formatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// isVirtioNet matches a virtio network function.
func isVirtioNet(f *pci.Function) bool {
	typ, _, ok := pci.VirtioType(f)
	return ok && typ == virtio.TypeNet
}

// openVirtioNet brings up a virtio-net function with juice's driver.
func openVirtioNet(h *vmm.Host, cs pci.ConfigSpace, f *pci.Function, name string) (nic.Device, string, error) {
	t, how, err := openVirtio(h, cs, f)
	if err != nil {
		return nil, "", err
	}
	n, err := virtio.NewNet(t, h.Mem, frameDMA{h}, virtio.NetOptions{Name: name})
	if err != nil {
		return nil, "", err
	}
	return n, fmt.Sprintf("%s, %d-entry queues", how, n.QueueSize()), nil
}

// openVirtio opens f's virtio transport as openDisk does: registers
// reached directly when they can be mapped, else through the PCI
// configuration access capability.
func openVirtio(h *vmm.Host, cs pci.ConfigSpace, f *pci.Function) (*virtio.Transport, string, error) {
	dm := &directMapper{mem: h.Mem, f: f}
	t, err := virtio.Open(cs, f, dm.mapBAR)
	if errors.Is(err, errUnmapped) {
		m, cerr := virtio.CfgMapper(cs, f)
		if cerr != nil {
			return nil, "", fmt.Errorf("%v, and %v", err, cerr)
		}
		t, err = virtio.Open(cs, f, m)
		if err != nil {
			return nil, "", err
		}
		return t, "through the PCI configuration access capability (BARs not mapped)", nil
	}
	if err != nil {
		return nil, "", err
	}
	return t, dm.how(), nil
}
