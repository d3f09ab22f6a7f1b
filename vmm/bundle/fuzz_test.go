package bundle

import (
	"bytes"
	"testing"
)

// FuzzParse feeds arbitrary archives to Parse: it must not panic, must
// return either a bundle or errors consistently, and every VM it returns
// must satisfy the documented limits with data inside the archive.
func FuzzParse(f *testing.F) {
	f.Add(newc(goodFiles(), false))
	f.Add(newc(goodFiles(), true))
	f.Add(newc([]entry{{name: "manifest.json", data: []byte(`{"vms":[{"name":"a","kernel":"k","memory":"16M","vcpus":3}]}`)}, {name: "k", data: []byte("K")}}, false))
	f.Add(newc([]entry{{name: "manifest.json", data: []byte(`{"vms":[{"name":"a","kernel":"k","memory":"16M","devices":{"disks":[{"host":"vda","partition":2},{"host":"vdb","offset":"1M","size":4096}]}}]}`)}, {name: "k", data: []byte("K")}}, false))
	f.Add(newc([]entry{{name: "manifest.json", data: []byte(`{"vms":[{"name":"a","kernel":"k","memory":"16M","devices":{"nets":[{"network":"lan"}]}}],"manage":{"network":"lan","address":"10.0.2.15/24","gateway":"10.0.2.2","token":"0123456789abcdef"}}`)}, {name: "k", data: []byte("K")}}, false))
	f.Add([]byte("070701"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, arc []byte) {
		b, errs := Parse(arc)
		if b == nil {
			if len(errs) != 1 {
				t.Fatalf("nil bundle with %d errors", len(errs))
			}
			return
		}
		if m := b.Manage; m != nil && (checkToken(m.Token) != nil || !m.Address.Addr().Is4() || m.Port == 0 || m.MAC[0]&1 != 0 ||
			m.Gateway.IsValid() && !m.Address.Masked().Contains(m.Gateway)) {
			t.Fatalf("invalid manage section returned: %+v", m)
		}
		inArc := func(d []byte) bool { return len(d) <= len(arc) && bytes.Contains(arc, d) }
		for _, vm := range b.VMs {
			if !validName(vm.Name) || vm.MemBytes < MinMemory || vm.MemBytes > MaxMemory || vm.MemBytes%MemoryAlign != 0 ||
				vm.VCPUs < 1 || vm.VCPUs > MaxVCPUs || !inArc(vm.KernelData) {
				t.Fatalf("invalid VM returned: %+v", vm)
			}
			for _, m := range vm.Modules {
				if !inArc(m.Data) {
					t.Fatalf("module data outside the archive")
				}
			}
			if vm.Devices == nil {
				continue
			}
			for _, d := range vm.Devices.Disks {
				if d.Host != "" && (!ValidHostDisk(d.Host) || d.Image != nil || d.Offset%512 != 0 || d.Size%512 != 0 ||
					d.Partition < 0 || d.Partition > MaxPartition || d.Partition != 0 && (d.Offset != 0 || d.Size != 0)) {
					t.Fatalf("invalid host disk returned: %+v", d)
				}
			}
		}
	})
}
