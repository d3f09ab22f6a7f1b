package bundle

import (
	"fmt"
	"net/netip"
)

// ManifestManage is the manifest's optional top-level "manage" section:
// juice's management console (the serial console's `juice>` commands:
// list, stop, start, restart, focus, dump, help) served over TCP on one
// of the bundle's networks. Absent, juice has no network console at all
// (the default). The console must only be enabled on a management
// network: anyone who can reach it and knows the token can stop and
// start every VM. Example:
//
//	"manage": {"network": "lan", "address": "10.0.2.15/24",
//	           "gateway": "10.0.2.2", "port": 2323,
//	           "token": "a-long-random-secret"}
type ManifestManage struct {
	// Network is the bundle network juice joins (with a port of its own
	// on the network's switch); some VM's network interface must name
	// it. To reach the console from outside, bridge the network to a
	// host NIC (ManifestNet.Uplink).
	Network string `json:"network"`
	// Address is juice's IPv4 address and prefix length on the network
	// ("10.0.2.15/24"; prefix 8 to 30): a host address of its subnet.
	Address string `json:"address"`
	// Gateway, if set, is the IPv4 router for clients outside the
	// subnet; it must lie inside it.
	Gateway string `json:"gateway,omitempty"`
	// Port is the TCP port (1 to 65535); absent means DefaultManagePort.
	Port int `json:"port,omitempty"`
	// Token is the secret a client sends as its first line before any
	// command is accepted: MinTokenLen to MaxTokenLen printable ASCII
	// characters, no spaces.
	Token string `json:"token"`
	// MAC is juice's address on the network; empty means
	// ManageMAC(Network), a locally administered 02:6a:75:xx:xx:xx. It
	// may not be a VM's interface address.
	MAC string `json:"mac,omitempty"`
}

// Limits and defaults of the manage section.
const (
	DefaultManagePort = 2323
	MinTokenLen       = 16
	MaxTokenLen       = 128
	MinManagePrefix   = 8
	MaxManagePrefix   = 30
)

// ManageSpec is a validated ManifestManage.
type ManageSpec struct {
	// Network is the bundle network the console joins.
	Network string
	// Address is juice's address and prefix on it (IPv4).
	Address netip.Prefix
	// Gateway is the default router; the zero Addr when there is none.
	Gateway netip.Addr
	// Port is the TCP port.
	Port uint16
	// Token is the secret clients authenticate with.
	Token string
	// MAC is juice's Ethernet address on the network.
	MAC [6]byte
}

// ManageMAC is the console's MAC on network when the manifest gives
// none: locally administered unicast 02:6a:75 ("ju") followed by three
// bytes of an FNV-1a hash of the network's name.
func ManageMAC(network string) [6]byte {
	h := uint32(2166136261)
	for _, c := range []byte("manage/" + network) {
		h ^= uint32(c)
		h *= 16777619
	}
	return [6]byte{0x02, 0x6a, 0x75, byte(h >> 16), byte(h >> 8), byte(h)}
}

// validateManage checks the manage section against the bundle's valid
// VMs (its network must be one of theirs, its MAC none of their
// interfaces'). A nil section gives a nil spec: no network console.
func validateManage(mm *ManifestManage, vms []VMSpec) (*ManageSpec, error) {
	if mm == nil {
		return nil, nil
	}
	if !validName(mm.Network) {
		return nil, fmt.Errorf("manage: network name %q must be 1 to %d of [a-z0-9-]", mm.Network, MaxNameLen)
	}
	ms := &ManageSpec{Network: mm.Network, Token: mm.Token, Port: DefaultManagePort}
	found := false
	for _, vm := range vms {
		if vm.Devices == nil {
			continue
		}
		for _, n := range vm.Devices.Nets {
			found = found || n.Network == mm.Network
		}
	}
	if !found {
		return nil, fmt.Errorf("manage: network %s is not a network of any VM of the bundle", mm.Network)
	}
	p, err := netip.ParsePrefix(mm.Address)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("manage: address %q is not an IPv4 address with a prefix length (10.0.2.15/24)", mm.Address)
	}
	if p.Bits() < MinManagePrefix || p.Bits() > MaxManagePrefix {
		return nil, fmt.Errorf("manage: address %s: prefix length %d is not between %d and %d", p, p.Bits(), MinManagePrefix, MaxManagePrefix)
	}
	a := p.Addr()
	if !a.IsGlobalUnicast() {
		return nil, fmt.Errorf("manage: address %s is not a unicast host address", a)
	}
	if a == p.Masked().Addr() || a == broadcast(p) {
		return nil, fmt.Errorf("manage: address %s is the network or broadcast address of %s", a, p.Masked())
	}
	ms.Address = p
	if mm.Gateway != "" {
		g, err := netip.ParseAddr(mm.Gateway)
		switch {
		case err != nil || !g.Is4():
			return nil, fmt.Errorf("manage: gateway %q is not an IPv4 address", mm.Gateway)
		case !p.Masked().Contains(g) || g == p.Masked().Addr() || g == broadcast(p):
			return nil, fmt.Errorf("manage: gateway %s is not a host of %s", g, p.Masked())
		case g == a:
			return nil, fmt.Errorf("manage: gateway %s is juice's own address", g)
		}
		ms.Gateway = g
	}
	if mm.Port != 0 {
		if mm.Port < 1 || mm.Port > 65535 {
			return nil, fmt.Errorf("manage: port %d is not between 1 and 65535", mm.Port)
		}
		ms.Port = uint16(mm.Port)
	}
	if err := checkToken(mm.Token); err != nil {
		return nil, err
	}
	if mm.MAC == "" {
		ms.MAC = ManageMAC(mm.Network)
	} else if ms.MAC, err = parseMAC(mm.MAC); err != nil {
		return nil, fmt.Errorf("manage: %v", err)
	}
	for _, vm := range vms {
		if vm.Devices == nil {
			continue
		}
		for i, n := range vm.Devices.Nets {
			if n.MAC == ms.MAC {
				return nil, fmt.Errorf("manage: MAC %s is vm %s's network interface %d's", formatMAC(ms.MAC), vm.Name, i)
			}
		}
	}
	return ms, nil
}

// checkToken checks a token's length and characters (it must survive
// being typed on one line).
func checkToken(tok string) error {
	if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
		return fmt.Errorf("manage: token is %d characters; it must be %d to %d (a long random secret)", len(tok), MinTokenLen, MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("manage: token character %d is not printable ASCII other than space", i)
		}
	}
	return nil
}

// broadcast is the last address of p's subnet (IPv4).
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
