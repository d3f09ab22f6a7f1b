package platform

import (
	vnet "juice/vmm/virtio/net"
)

// VirtioStat is one virtio device's traffic counters, for juice's report
// when a VM ends.
type VirtioStat struct {
	// Type is the device kind: "net", "blk", "console", "rng".
	Type string
	// Kicks and Interrupts are, per queue, the driver's notifications
	// (available buffers) and the device's (used buffers, after
	// suppression by the driver's flags or EVENT_IDX).
	Kicks, Interrupts []uint64
	// Net is a network interface's frame counters (nil for other kinds).
	Net *vnet.Stats
}

// VirtioStats returns the counters of the VM's virtio devices, in the
// order they were attached. Any goroutine; allocates (report time only).
func (p *PC) VirtioStats() []VirtioStat {
	out := make([]VirtioStat, 0, len(p.virtio))
	for _, d := range p.virtio {
		st := VirtioStat{Type: typeName(d.state.DeviceID())}
		for q := range d.state.NumQueues() {
			k, i := d.state.Notifications(q)
			st.Kicks = append(st.Kicks, k)
			st.Interrupts = append(st.Interrupts, i)
		}
		if d.net != nil {
			ns := d.net.Stats()
			st.Net = &ns
		}
		out = append(out, st)
	}
	return out
}
