// Package nic is what juice's host network drivers (virtio-net, e1000)
// offer the virtual switch's uplink: a polled Ethernet frame device.
//
// A driver copies frames in both directions: Send copies the caller's
// frame into a transmit buffer the driver owns, Recv copies a received
// frame into the caller's buffer, so no buffer a device writes is ever
// handed to other code. Neither blocks nor allocates: the switch calls
// Send from a vCPU's exit path, the uplink's goroutine polls Recv.
package nic

import "errors"

// ErrFull is Send's answer when the transmit ring has no free slot: the
// frame was not queued (the caller may drop it, as a full NIC would).
var ErrFull = errors.New("nic: transmit ring full")

// Device is one host network interface.
type Device interface {
	// Name is the interface's name in juice's messages ("vnet0", "eth0").
	Name() string
	// MAC is the interface's hardware address.
	MAC() [6]byte
	// MTU is the largest frame payload it sends and receives (1500).
	MTU() int
	// LinkUp reports whether the device says its link is up.
	LinkUp() bool
	// Send queues one Ethernet frame (destination MAC first, no FCS)
	// for transmission, copying it; ErrFull when no slot is free.
	// Frames longer than MTU+14 are refused with an error.
	Send(frame []byte) error
	// Recv copies the next received frame into buf and returns its
	// length; ok is false when none is waiting. A frame longer than
	// buf is dropped (counted) and the next one returned.
	Recv(buf []byte) (n int, ok bool, err error)
	// Stats are the driver's counters.
	Stats() Stats
}

// Stats count a device's traffic.
type Stats struct {
	TxFrames, TxBytes, TxFull uint64
	RxFrames, RxBytes, RxDrop uint64
}
