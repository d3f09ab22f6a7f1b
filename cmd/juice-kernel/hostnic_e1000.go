package main

// Intel e1000-class host NICs (juice/drivers/e1000): the 82540EM, the
// 82545EM and the 82574L, named eth0, eth1, ... in PCI order through
// hostnic.go's nicDrivers.

import (
	"fmt"

	"juice/drivers/e1000"
	"juice/drivers/nic"
	"juice/drivers/pci"
	"juice/vmm"
)

// isE1000 matches the controllers juice/drivers/e1000 drives.
func isE1000(f *pci.Function) bool {
	_, ok := e1000.Lookup(f.VendorID, f.DeviceID)
	return ok
}

// openE1000 brings up an e1000-class function: BAR 0 mapped directly
// (the kernel maps it uncached), rings and buffers from the frame
// allocator, promiscuous because an uplink bridges the guests' own MAC
// addresses to the wire.
func openE1000(h *vmm.Host, cs pci.ConfigSpace, f *pci.Function, name string) (nic.Device, string, error) {
	dm := &directMapper{mem: h.Mem, f: f}
	d, err := e1000.Probe(cs, f, dm.mapBAR, h.Mem, frameDMA{h}, e1000.Options{Name: name, Promiscuous: true})
	if err != nil {
		return nil, "", err
	}
	return d, fmt.Sprintf("%s, %v, MAC from %s, %d-descriptor rings", dm.how(), d.Model(), d.MACSource(), e1000.DefaultDescs), nil
}
