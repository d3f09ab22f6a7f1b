package bundle

import (
	"net/netip"
	"strings"
	"testing"
)

// manageBundle parses a bundle of two VMs (a on lan and dmz with MAC
// 52:54:00:00:00:01 on lan, b without devices) and the given manage
// section ("" for none).
func manageBundle(manage string) (*Bundle, []error) {
	man := `{"vms":[` +
		`{"name":"a","kernel":"k","memory":"16M","devices":{"nets":[{"network":"lan","mac":"52:54:00:00:00:01","uplink":"vnet0"},{"network":"dmz"}]}},` +
		`{"name":"b","kernel":"k","memory":"16M"}]`
	if manage != "" {
		man += `,"manage":` + manage
	}
	man += `}`
	return Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
}

const goodToken = "0123456789abcdef-secret"

// TestManageAbsent: a manifest without a manage section has no network
// console.
func TestManageAbsent(t *testing.T) {
	b, errs := manageBundle("")
	if len(errs) != 0 || b.Manage != nil {
		t.Fatalf("errors %v, manage %+v; want no console", errs, b.Manage)
	}
}

// TestManageParsed: a good section is carried over with its defaults
// (port 2323, a MAC derived from the network, locally administered and
// stable) or its own values.
func TestManageParsed(t *testing.T) {
	b, errs := manageBundle(`{"network":"lan","address":"10.0.2.15/24","gateway":"10.0.2.2","token":"` + goodToken + `"}`)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	m := b.Manage
	if m == nil || m.Network != "lan" || m.Address != netip.MustParsePrefix("10.0.2.15/24") ||
		m.Gateway != netip.MustParseAddr("10.0.2.2") || m.Port != DefaultManagePort || m.Token != goodToken {
		t.Fatalf("manage %+v", m)
	}
	if m.MAC != ManageMAC("lan") || m.MAC[0] != 0x02 || m.MAC[1] != 0x6a || m.MAC[2] != 0x75 {
		t.Errorf("default MAC %x, want ManageMAC(lan) = %x with prefix 02:6a:75", m.MAC, ManageMAC("lan"))
	}
	if ManageMAC("lan") == ManageMAC("dmz") {
		t.Error("two networks get the same console MAC")
	}
	b, errs = manageBundle(`{"network":"dmz","address":"192.168.7.1/30","port":80,"token":"` + goodToken + `","mac":"02:00:00:00:00:09"}`)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if m := b.Manage; m.Port != 80 || m.Gateway.IsValid() || m.MAC != [6]byte{2, 0, 0, 0, 0, 9} {
		t.Errorf("manage %+v", m)
	}
}

// TestManageRefused: every bad field is refused with a message naming
// it; the console is then off (nil) and the VMs still run; Build refuses
// the same manifest.
func TestManageRefused(t *testing.T) {
	for _, c := range []struct{ manage, want string }{
		{`{"network":"wan","address":"10.0.2.15/24","token":"` + goodToken + `"}`, "manage: network wan is not a network of any VM"},
		{`{"network":"LAN","address":"10.0.2.15/24","token":"` + goodToken + `"}`, `manage: network name "LAN" must be`},
		{`{"network":"lan","address":"10.0.2.15","token":"` + goodToken + `"}`, `manage: address "10.0.2.15" is not an IPv4 address with a prefix`},
		{`{"network":"lan","address":"fd00::1/64","token":"` + goodToken + `"}`, `manage: address "fd00::1/64" is not an IPv4`},
		{`{"network":"lan","address":"10.0.2.15/31","token":"` + goodToken + `"}`, "prefix length 31 is not between 8 and 30"},
		{`{"network":"lan","address":"10.0.2.0/24","token":"` + goodToken + `"}`, "manage: address 10.0.2.0 is the network or broadcast address"},
		{`{"network":"lan","address":"10.0.2.255/24","token":"` + goodToken + `"}`, "manage: address 10.0.2.255 is the network or broadcast address"},
		{`{"network":"lan","address":"127.0.0.5/8","token":"` + goodToken + `"}`, "manage: address 127.0.0.5 is not a unicast host address"},
		{`{"network":"lan","address":"224.0.0.5/8","token":"` + goodToken + `"}`, "is not a unicast host address"},
		{`{"network":"lan","address":"10.0.2.15/24","gateway":"10.0.3.1","token":"` + goodToken + `"}`, "manage: gateway 10.0.3.1 is not a host of 10.0.2.0/24"},
		{`{"network":"lan","address":"10.0.2.15/24","gateway":"10.0.2.15","token":"` + goodToken + `"}`, "manage: gateway 10.0.2.15 is juice's own address"},
		{`{"network":"lan","address":"10.0.2.15/24","gateway":"gw","token":"` + goodToken + `"}`, `manage: gateway "gw" is not an IPv4 address`},
		{`{"network":"lan","address":"10.0.2.15/24","port":70000,"token":"` + goodToken + `"}`, "manage: port 70000 is not between 1 and 65535"},
		{`{"network":"lan","address":"10.0.2.15/24","port":-1,"token":"` + goodToken + `"}`, "manage: port -1 is not between"},
		{`{"network":"lan","address":"10.0.2.15/24"}`, "manage: token is 0 characters; it must be 16 to 128"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"short"}`, "manage: token is 5 characters"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"` + strings.Repeat("x", 129) + `"}`, "manage: token is 129 characters"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"0123456789 abcdef"}`, "manage: token character 10 is not printable ASCII"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"0123456789\u00e9abcdef"}`, "manage: token character 10 is not printable ASCII"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"` + goodToken + `","mac":"52:54:00:00:00:01"}`, "manage: MAC 52:54:00:00:00:01 is vm a's network interface 0's"},
		{`{"network":"lan","address":"10.0.2.15/24","token":"` + goodToken + `","mac":"03:00:00:00:00:01"}`, "manage: MAC 03:00:00:00:00:01 is a multicast address"},
	} {
		b, errs := manageBundle(c.manage)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
			t.Errorf("%s: errors %v, want one containing %q", c.manage, errs, c.want)
			continue
		}
		if b == nil || b.Manage != nil || len(b.VMs) != 2 {
			t.Errorf("%s: bundle %+v: want both VMs and no console", c.manage, b)
		}
	}
	m := Manifest{VMs: []ManifestVM{{Name: "a", Kernel: "k", Memory: "16M",
		Devices: &ManifestDevices{Nets: []ManifestNet{{Network: "lan"}}}}},
		Manage: &ManifestManage{Network: "lan", Address: "10.0.2.15/24", Token: "short"}}
	if _, err := Build(m, map[string][]byte{"k": []byte("K")}); err == nil || !strings.Contains(err.Error(), "manage: token is 5 characters") {
		t.Errorf("Build with a short token: %v", err)
	}
	m.Manage.Token = goodToken
	arc, err := Build(m, map[string][]byte{"k": []byte("K")})
	if err != nil {
		t.Fatal(err)
	}
	if b, errs := Parse(arc); len(errs) != 0 || b.Manage == nil || b.Manage.Token != goodToken {
		t.Fatalf("built bundle parsed back: %v, %+v", errs, b)
	}
}

// TestManageNeedsValidVM: a network named only by a VM the bundle
// refuses does not count.
func TestManageNeedsValidVM(t *testing.T) {
	man := `{"vms":[{"name":"a","kernel":"nosuch","memory":"16M","devices":{"nets":[{"network":"lan"}]}},` +
		`{"name":"b","kernel":"k","memory":"16M"}],` +
		`"manage":{"network":"lan","address":"10.0.2.15/24","token":"` + goodToken + `"}}`
	b, errs := Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
	if len(errs) != 2 || !strings.Contains(errs[1].Error(), "manage: network lan is not a network of any VM") || b.Manage != nil {
		t.Fatalf("errors %v, manage %+v", errs, b.Manage)
	}
}
