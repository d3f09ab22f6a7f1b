package bundle

import (
	"strings"
	"testing"
)

// TestUplinks: a network's uplink (a host NIC) is carried into the
// NetSpec; names that are not host NIC names, two uplinks for one
// network and one host NIC for two networks, within a VM or across VMs,
// refuse the later VM by name, and the others still run.
func TestUplinks(t *testing.T) {
	parse := func(vms ...string) (*Bundle, []error) {
		man := `{"vms":[` + strings.Join(vms, ",") + `]}`
		return Parse(newc([]entry{{name: "manifest.json", data: []byte(man)}, {name: "k", data: []byte("K")}}, false))
	}
	vm := func(name, nets string) string {
		return `{"name":"` + name + `","kernel":"k","memory":"16M","devices":{"nets":[` + nets + `]}}`
	}
	b, errs := parse(
		vm("a", `{"network":"lan","uplink":"vnet0"},{"network":"dmz"}`),
		vm("b", `{"network":"lan"},{"network":"lan","uplink":"vnet0"}`),
		vm("c", `{"network":"wan","uplink":"vnet12"}`))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if n := b.VMs[0].Devices.Nets; n[0].Uplink != "vnet0" || n[1].Uplink != "" {
		t.Errorf("vm a's nets %+v", n)
	}
	if n := b.VMs[1].Devices.Nets; n[0].Uplink != "" || n[1].Uplink != "vnet0" {
		t.Errorf("vm b's nets %+v", n)
	}
	if n := b.VMs[2].Devices.Nets; n[0].Uplink != "vnet12" {
		t.Errorf("vm c's nets %+v", n)
	}

	for _, c := range []struct {
		vms  []string
		want string
	}{
		{[]string{vm("bad", `{"network":"lan","uplink":"VNET0"}`)}, `network interface 0: uplink "VNET0" is not a name juice gives host NICs`},
		{[]string{vm("bad", `{"network":"lan","uplink":"vnet"}`)}, `network interface 0: uplink "vnet" is not`},
		{[]string{vm("bad", `{"network":"lan","uplink":"vnet01"}`)}, `network interface 0: uplink "vnet01" is not`},
		{[]string{vm("bad", `{"network":"lan","uplink":"vnet1000"}`)}, `network interface 0: uplink "vnet1000" is not`},
		{[]string{vm("bad", `{"network":"lan","uplink":"eth0 "}`)}, `network interface 0: uplink "eth0 " is not`},
		{[]string{vm("bad", `{"network":"lan","uplink":"vnet0"},{"network":"lan","uplink":"vnet1"}`)},
			"network interface 1: network lan has uplinks vnet0 and vnet1"},
		{[]string{vm("bad", `{"network":"lan","uplink":"vnet0"},{"network":"dmz","uplink":"vnet0"}`)},
			"network interface 1: host NIC vnet0 is already the uplink of network lan"},
		{[]string{vm("ok", `{"network":"lan","uplink":"vnet0"}`), vm("bad", `{"network":"lan","uplink":"vnet1"}`)},
			"network interface 0: uplink vnet1 for network lan, which an earlier VM gave uplink vnet0"},
		{[]string{vm("ok", `{"network":"lan","uplink":"vnet0"}`), vm("bad", `{"network":"dmz","uplink":"vnet0"}`)},
			"network interface 0: host NIC vnet0 is already the uplink of network lan"},
	} {
		vms := append([]string{vm("first", `{"network":"x"}`)}, c.vms...)
		b, errs := parse(vms...)
		if b == nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), `vm "bad": `+c.want) {
			t.Errorf("%v: errors %v, want one for vm bad containing %q", c.vms, errs, c.want)
			continue
		}
		if len(b.VMs) != len(vms)-1 {
			t.Errorf("%v: %d VMs kept, want %d", c.vms, len(b.VMs), len(vms)-1)
		}
	}
	// A refused VM's uplink does not count against the later ones.
	b, errs = parse(vm("bad", `{"network":"lan","uplink":"vnet0","mac":"01:00:00:00:00:00"}`), vm("ok", `{"network":"dmz","uplink":"vnet0"}`))
	if len(errs) != 1 || len(b.VMs) != 1 || b.VMs[0].Name != "ok" {
		t.Errorf("errors %v, VMs %d", errs, len(b.VMs))
	}
}

func TestValidHostNIC(t *testing.T) {
	for _, s := range []string{"vnet0", "vnet9", "vnet10", "vnet999", "eth0", "a1", "abcdefgh123"} {
		if !ValidHostNIC(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "0", "vnet", "vnet01", "vnet1000", "Vnet0", "v-net0", "abcdefghi1", "vnet0a", "vnet-1"} {
		if ValidHostNIC(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
