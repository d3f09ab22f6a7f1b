package launch

import (
	"strings"
	"testing"
)

// TestQEMUArgsHostNICModel: a host NIC's model picks QEMU's device (the
// default stays virtio-net-pci; the three e1000 models juice drives are
// accepted), the rest of the device line is unchanged, and an unknown
// model is refused.
func TestQEMUArgsHostNICModel(t *testing.T) {
	for model, dev := range map[string]string{
		"":              "virtio-net-pci",
		NICVirtio:       "virtio-net-pci",
		NICE1000:        "e1000",
		NICE1000E:       "e1000e",
		NICE100082545EM: "e1000-82545em",
	} {
		args, err := QEMUArgs(Config{Kernel: "k.elf", HostNIC: &HostNIC{Model: model, Slot: 6}}, Media{})
		if err != nil {
			t.Fatalf("model %q: %v", model, err)
		}
		want := "-device " + dev + ",netdev=hostnic,mac=" + DefaultHostNICMAC + ",romfile=,addr=6 "
		if line := strings.Join(args, " ") + " "; !strings.Contains(line, want) {
			t.Errorf("model %q: no %q in %s", model, want, line)
		}
	}
	for _, model := range []string{"rtl8139", "e1000,netdev=x", "E1000"} {
		if _, err := QEMUArgs(Config{Kernel: "k.elf", HostNIC: &HostNIC{Model: model}}, Media{}); err == nil || !strings.Contains(err.Error(), "host NIC: unknown model") {
			t.Errorf("model %q: %v", model, err)
		}
	}
}
