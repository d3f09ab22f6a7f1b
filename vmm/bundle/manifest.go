package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// ManifestName is the archive member holding the manifest.
const ManifestName = "manifest.json"

// Limits on what a manifest may ask for.
const (
	MaxManifestSize = 1 << 20  // bytes of manifest.json
	MaxNameLen      = 32       // VM name length
	MinMemory       = 1 << 20  // 1 MiB
	MaxMemory       = 64 << 30 // 64 GiB
	MemoryAlign     = 4096     // guest RAM is whole pages
	MaxVCPUs        = 64
	MaxHostCPUs     = 256 // host CPU numbers in "pin" are below this
)

// Manifest is manifest.json: the VMs of a bundle, and optionally juice's
// management console on one of their networks.
type Manifest struct {
	VMs []ManifestVM `json:"vms"`
	// Manage, if set, serves juice's console commands over TCP (see
	// ManifestManage); absent, there is no network console.
	Manage *ManifestManage `json:"manage,omitempty"`
}

// ManifestVM is one VM of the manifest.
type ManifestVM struct {
	// Name is the VM's name: 1 to 32 of [a-z0-9-], not starting with '-'.
	Name string `json:"name"`
	// Kernel is the archive member holding the guest kernel.
	Kernel string `json:"kernel"`
	// Cmdline is the kernel command line.
	Cmdline string `json:"cmdline,omitempty"`
	// Modules are the boot modules, in order.
	Modules []ManifestModule `json:"modules,omitempty"`
	// Memory is the RAM size: bytes ("67108864") or a number with a
	// binary suffix K, M or G ("64M", "1G"; "MiB"/"MB" spellings too).
	// It must be a multiple of 4 KiB between 1 MiB and 64 GiB; it is not
	// rounded.
	Memory Memory `json:"memory"`
	// VCPUs is the number of vCPUs, 1 to 64; 0 or absent means 1.
	VCPUs int `json:"vcpus,omitempty"`
	// Pin, if set, binds the VM's vCPUs to host CPUs (juice's numbers,
	// as its "smp: cpu N" lines print them): vCPU i runs on
	// Pin[i mod len(Pin)] only. At most MaxVCPUs numbers, each below
	// MaxHostCPUs; juice refuses to start the VM if one is not online.
	// Absent: juice places the vCPUs.
	Pin []int `json:"pin,omitempty"`
	// Devices selects the VM's paravirtual devices; absent means none.
	Devices *ManifestDevices `json:"devices,omitempty"`
}

// ManifestDevices are a VM's virtio devices.
type ManifestDevices struct {
	// Transport is "pci" (virtio-pci behind a PCI host bridge; the
	// default) or "mmio" (virtio-mmio devices described in the DSDT).
	Transport string `json:"transport,omitempty"`
	// Disks are the VM's block devices, in order (vda, vdb, ...).
	Disks []ManifestDisk `json:"disks,omitempty"`
	// Nets are the VM's network interfaces, in order (eth0, ...).
	Nets []ManifestNet `json:"nets,omitempty"`
	// RNG adds a virtio entropy device.
	RNG bool `json:"rng,omitempty"`
	// Console adds a virtio console (the guest's hvc0), shown on juice's
	// console like COM1.
	Console bool `json:"console,omitempty"`
}

// ManifestDisk is one block device: an image from the bundle (File; the
// guest's writes go to a copy-on-write layer in RAM and never change
// the image), a zeroed RAM disk (Size), or storage on a disk of the
// machine juice runs on (Host).
type ManifestDisk struct {
	File string `json:"file,omitempty"`
	// Size is a RAM disk's size, or with Host the size of the host-disk
	// region (bytes or K/M/G, a multiple of 512).
	Size     Memory `json:"size,omitempty"`
	ReadOnly bool   `json:"readonly,omitempty"`
	// Host names a disk of the machine as juice lists it at boot
	// ("hostdisk: vda ..."; virtio-blk disks are vda to vdz, SATA disks
	// behind AHCI HBAs sda to sdz): the guest's disk is that whole
	// disk, one of its partitions (Partition), or the byte range Offset,
	// Size of it. Writes go to the host disk and the guest's flushes
	// reach its stable storage, so what a guest flushed survives a power
	// cycle. No two guest disks may overlap on a host disk unless both
	// are read-only (juice refuses the later VM).
	Host string `json:"host,omitempty"`
	// Partition is a partition number on Host as Linux numbers them (1
	// is vda1; MBR logical partitions from 5, GPT entries by slot).
	Partition *int `json:"partition,omitempty"`
	// Offset is where the region starts on Host (bytes or K/M/G, a
	// multiple of 512); Size is its length, absent meaning to the end of
	// the disk.
	Offset Memory `json:"offset,omitempty"`
	// Serial is what the guest reads with GET_ID (at most 20 bytes);
	// empty means "juice-<vm>-<n>".
	Serial string `json:"serial,omitempty"`
}

// ManifestNet is one network interface on a virtual switch.
type ManifestNet struct {
	// Network names the switch (1 to 32 of [a-z0-9-]); VMs on the same
	// network see each other, and no one else.
	Network string `json:"network"`
	// MAC is the interface's address ("52:54:00:12:34:56"); empty means
	// one derived stably from the VM's name and the interface's index.
	MAC string `json:"mac,omitempty"`
	// Uplink bridges the whole network to a network interface of the
	// machine juice runs on, as juice names it at boot ("hostnic: vnet0
	// ..."; virtio-net NICs are vnet0, vnet1, ..., Intel e1000-class
	// NICs eth0, eth1, ...): the host NIC becomes
	// one more port of the network's switch, not locked to an address,
	// and frames between the VMs and the NIC's wire cross it both ways,
	// so the network is the wire's LAN (the VMs use its addresses, its
	// gateway and its DHCP server, if any). Naming it on one interface of
	// one VM is enough; every interface that names it must name the same
	// NIC, and a host NIC uplinks at most one network. A VM whose
	// interface names a NIC the machine does not have is refused at boot,
	// like a missing host disk.
	Uplink string `json:"uplink,omitempty"`
}

// Device limits.
const (
	MaxDisks     = 8
	MaxNets      = 4
	MaxDiskSize  = 1 << 40 // 1 TiB (a RAM disk's pages are allocated as written)
	MaxSerialLen = 20
	// MaxPartition is the highest partition number a disk may name.
	MaxPartition = 1024
	// MaxHostNICName is the longest host NIC name an uplink may give.
	MaxHostNICName = 15
)

// ManifestModule is one boot module of a VM.
type ManifestModule struct {
	// File is the archive member holding the module.
	File string `json:"file"`
	// Cmdline is the module's command line (its "string" in multiboot).
	Cmdline string `json:"cmdline,omitempty"`
}

// Memory is a RAM size as written in the manifest. In JSON it is a string
// or an integer.
type Memory string

// UnmarshalJSON accepts a JSON string or integer.
func (m *Memory) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*m = Memory(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("memory must be a string or an integer, not %s", b)
	}
	*m = Memory(n.String())
	return nil
}

// Bytes parses the size.
func (m Memory) Bytes() (uint64, error) {
	s := string(m)
	if s == "" {
		return 0, fmt.Errorf("memory is missing")
	}
	n, shift, err := splitSize(s)
	if err != nil {
		return 0, fmt.Errorf("memory %v", err)
	}
	if n > MaxMemory>>shift {
		return 0, fmt.Errorf("memory %q is more than %d GiB", s, MaxMemory>>30)
	}
	n <<= shift
	switch {
	case n < MinMemory:
		return 0, fmt.Errorf("memory %q is less than 1 MiB", s)
	case n%MemoryAlign != 0:
		return 0, fmt.Errorf("memory %q is not a multiple of 4 KiB", s)
	}
	return n, nil
}

// splitSize splits a size ("64M", "4096") into its number and the shift
// its unit (K, M, G, with KB/KiB spellings) stands for.
func splitSize(s string) (n uint64, shift uint, err error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, 0, fmt.Errorf("%q is not a size", s)
	}
	if n, err = strconv.ParseUint(s[:i], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%q is out of range", s)
	}
	switch strings.ToUpper(s[i:]) {
	case "":
	case "K", "KB", "KIB":
		shift = 10
	case "M", "MB", "MIB":
		shift = 20
	case "G", "GB", "GIB":
		shift = 30
	default:
		return 0, 0, fmt.Errorf("%q has an unknown unit (want K, M or G)", s)
	}
	return n, shift, nil
}

// decodeManifest parses manifest.json strictly: unknown fields and
// trailing data are errors.
func decodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", ManifestName, len(b), MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if rest := bytes.Trim(b[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return nil, fmt.Errorf("%s: data after the JSON object", ManifestName)
	}
	return &m, nil
}

// validName reports whether s is a valid VM name.
func validName(s string) bool {
	if s == "" || len(s) > MaxNameLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkFileName rejects member names a manifest may not use: empty,
// absolute, with a ".." element, not in clean form, or with a NUL.
func checkFileName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty file name")
	case strings.HasPrefix(s, "/"):
		return fmt.Errorf("file name %q is absolute", s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("file name %q has a NUL byte", s)
	}
	for _, e := range strings.Split(s, "/") {
		if e == ".." {
			return fmt.Errorf("file name %q has a \"..\" element", s)
		}
	}
	if path.Clean(s) != s || s == "." {
		return fmt.Errorf("file name %q is not a clean relative path", s)
	}
	return nil
}

// checkCmdline rejects command lines that cannot be C strings.
func checkCmdline(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s has a NUL byte", what)
	}
	return nil
}

// vmLabel names a VM in errors.
func vmLabel(i int, name string) string {
	if validName(name) {
		return fmt.Sprintf("vm %q", name)
	}
	return fmt.Sprintf("vm #%d (name %q)", i, name)
}

// validate checks every VM of m against the archive members in files and
// returns the valid VMs and one error per invalid VM. A VM whose name
// repeats an earlier VM's is invalid.
func validate(m *Manifest, files map[string]member) ([]VMSpec, []error) {
	var (
		vms  []VMSpec
		errs []error
		seen = map[string]bool{}
		up   = uplinks{of: map[string]string{}, net: map[string]string{}}
	)
	if len(m.VMs) == 0 {
		return nil, []error{fmt.Errorf("bundle: %s lists no VMs", ManifestName)}
	}
	for i, mv := range m.VMs {
		label := vmLabel(i, mv.Name)
		if !validName(mv.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be 1 to %d of [a-z0-9-], not starting with '-'", label, MaxNameLen))
			continue
		}
		if seen[mv.Name] {
			errs = append(errs, fmt.Errorf("%s: name used by an earlier VM", label))
			continue
		}
		seen[mv.Name] = true
		spec, err := validateVM(mv, files)
		if err == nil && spec.Devices != nil {
			if err = up.check(spec.Devices); err == nil {
				up.add(spec.Devices)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		vms = append(vms, spec)
	}
	return vms, errs
}

// validateVM checks one VM and resolves its files.
func validateVM(mv ManifestVM, files map[string]member) (VMSpec, error) {
	spec := VMSpec{Name: mv.Name, Kernel: mv.Kernel, Cmdline: mv.Cmdline, VCPUs: mv.VCPUs}
	var err error
	if spec.MemBytes, err = mv.Memory.Bytes(); err != nil {
		return VMSpec{}, err
	}
	if spec.VCPUs == 0 {
		spec.VCPUs = 1
	}
	if spec.VCPUs < 1 || spec.VCPUs > MaxVCPUs {
		return VMSpec{}, fmt.Errorf("vcpus %d is not between 1 and %d", mv.VCPUs, MaxVCPUs)
	}
	if len(mv.Pin) > MaxVCPUs {
		return VMSpec{}, fmt.Errorf("pin lists %d CPUs, at most %d", len(mv.Pin), MaxVCPUs)
	}
	for _, c := range mv.Pin {
		if c < 0 || c >= MaxHostCPUs {
			return VMSpec{}, fmt.Errorf("pin: host CPU %d is not between 0 and %d", c, MaxHostCPUs-1)
		}
	}
	spec.Pin = append([]int(nil), mv.Pin...)
	if err := checkCmdline("cmdline", mv.Cmdline); err != nil {
		return VMSpec{}, err
	}
	if spec.KernelData, err = lookup(files, "kernel", mv.Kernel); err != nil {
		return VMSpec{}, err
	}
	for i, mm := range mv.Modules {
		data, err := lookup(files, fmt.Sprintf("module %d", i), mm.File)
		if err != nil {
			return VMSpec{}, err
		}
		if err := checkCmdline(fmt.Sprintf("module %d cmdline", i), mm.Cmdline); err != nil {
			return VMSpec{}, err
		}
		spec.Modules = append(spec.Modules, ModuleSpec{File: mm.File, Cmdline: mm.Cmdline, Data: data})
	}
	if mv.Devices != nil {
		if spec.Devices, err = validateDevices(mv.Name, mv.Devices, files); err != nil {
			return VMSpec{}, err
		}
	}
	return spec, nil
}

// validateDevices checks a VM's devices and resolves its disk images.
func validateDevices(vm string, d *ManifestDevices, files map[string]member) (*DeviceSpec, error) {
	ds := &DeviceSpec{Transport: d.Transport, RNG: d.RNG, Console: d.Console}
	switch d.Transport {
	case "":
		ds.Transport = "pci"
	case "pci", "mmio":
	default:
		return nil, fmt.Errorf("devices: transport %q is not pci or mmio", d.Transport)
	}
	if len(d.Disks) > MaxDisks {
		return nil, fmt.Errorf("devices: %d disks, at most %d", len(d.Disks), MaxDisks)
	}
	if len(d.Nets) > MaxNets {
		return nil, fmt.Errorf("devices: %d network interfaces, at most %d", len(d.Nets), MaxNets)
	}
	for i, md := range d.Disks {
		what := fmt.Sprintf("disk %d", i)
		disk := DiskSpec{File: md.File, ReadOnly: md.ReadOnly, Serial: md.Serial}
		switch {
		case md.Host != "" || md.Partition != nil || md.Offset != "":
			if err := validateHostDisk(md, &disk); err != nil {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
		case md.File != "" && md.Size != "":
			return nil, fmt.Errorf("%s: give a file or a size, not both", what)
		case md.File != "":
			data, err := lookup(files, what, md.File)
			if err != nil {
				return nil, err
			}
			if len(data) == 0 || len(data)%512 != 0 {
				return nil, fmt.Errorf("%s: image %q is %d bytes, not a non-zero multiple of 512", what, md.File, len(data))
			}
			disk.Image, disk.Size = data, uint64(len(data))
		case md.Size != "":
			n, err := parseSize(string(md.Size))
			if err != nil {
				return nil, fmt.Errorf("%s: size: %v", what, err)
			}
			if n == 0 || n%512 != 0 || n > MaxDiskSize {
				return nil, fmt.Errorf("%s: size %q is not a non-zero multiple of 512 up to 1 TiB", what, md.Size)
			}
			disk.Size = n
		default:
			return nil, fmt.Errorf("%s: needs a file or a size", what)
		}
		if disk.Serial == "" {
			disk.Serial = fmt.Sprintf("juice-%s-%d", vm, i)
		}
		if len(disk.Serial) > MaxSerialLen {
			return nil, fmt.Errorf("%s: serial %q is longer than %d bytes", what, disk.Serial, MaxSerialLen)
		}
		ds.Disks = append(ds.Disks, disk)
	}
	seenMAC := map[[6]byte]bool{}
	for i, mn := range d.Nets {
		what := fmt.Sprintf("network interface %d", i)
		if !validName(mn.Network) {
			return nil, fmt.Errorf("%s: network name %q must be 1 to %d of [a-z0-9-]", what, mn.Network, MaxNameLen)
		}
		var mac [6]byte
		if mn.MAC == "" {
			mac = DerivedMAC(vm, i)
		} else {
			var err error
			if mac, err = parseMAC(mn.MAC); err != nil {
				return nil, fmt.Errorf("%s: %v", what, err)
			}
		}
		if seenMAC[mac] {
			return nil, fmt.Errorf("%s: MAC %s repeats another interface's", what, formatMAC(mac))
		}
		seenMAC[mac] = true
		if mn.Uplink != "" && !ValidHostNIC(mn.Uplink) {
			return nil, fmt.Errorf("%s: uplink %q is not a name juice gives host NICs (vnet0, eth0, ...)", what, mn.Uplink)
		}
		ds.Nets = append(ds.Nets, NetSpec{Network: mn.Network, MAC: mac, Uplink: mn.Uplink})
	}
	return ds, nil
}

// ValidHostNIC reports whether s has the form of a host NIC name juice
// gives: 1 to 8 lower-case letters and a number below 1000 ("vnet0";
// other drivers' prefixes, like an "eth" of an e1000 driver, fit too).
func ValidHostNIC(s string) bool {
	i := 0
	for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		i++
	}
	if i == 0 || i > 8 || len(s)-i < 1 || len(s)-i > 3 || len(s) > MaxHostNICName {
		return false
	}
	for _, c := range s[i:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s[i] != '0' || len(s) == i+1 // no leading zeros
}

// uplinks tracks the networks' uplinks across a bundle's VMs.
type uplinks struct {
	of  map[string]string // network -> host NIC
	net map[string]string // host NIC -> network
}

// check reports whether ds's uplinks agree with each other and with the
// earlier VMs' (add records them).
func (u *uplinks) check(ds *DeviceSpec) error {
	mine := map[string]string{}
	for i, n := range ds.Nets {
		if n.Uplink == "" {
			continue
		}
		what := fmt.Sprintf("network interface %d", i)
		if prev, ok := mine[n.Network]; ok && prev != n.Uplink {
			return fmt.Errorf("%s: network %s has uplinks %s and %s", what, n.Network, prev, n.Uplink)
		}
		if prev, ok := u.of[n.Network]; ok && prev != n.Uplink {
			return fmt.Errorf("%s: uplink %s for network %s, which an earlier VM gave uplink %s", what, n.Uplink, n.Network, prev)
		}
		if other, ok := u.net[n.Uplink]; ok && other != n.Network {
			return fmt.Errorf("%s: host NIC %s is already the uplink of network %s", what, n.Uplink, other)
		}
		for net, nic := range mine {
			if nic == n.Uplink && net != n.Network {
				return fmt.Errorf("%s: host NIC %s is already the uplink of network %s", what, n.Uplink, net)
			}
		}
		mine[n.Network] = n.Uplink
	}
	return nil
}

// add records ds's uplinks (after check).
func (u *uplinks) add(ds *DeviceSpec) {
	for _, n := range ds.Nets {
		if n.Uplink != "" {
			u.of[n.Network] = n.Uplink
			u.net[n.Uplink] = n.Network
		}
	}
}

// validateHostDisk checks a disk backed by a host disk: a host disk name
// juice gives (vda to vdz, sda to sdz), no file, and either a partition or a
// sector-aligned byte range, not both.
func validateHostDisk(md ManifestDisk, disk *DiskSpec) error {
	switch {
	case md.Host == "":
		return fmt.Errorf("partition and offset select a region of a host disk: name the disk with host")
	case md.File != "":
		return fmt.Errorf("give a file or a host disk, not both")
	case !ValidHostDisk(md.Host):
		return fmt.Errorf("host disk %q is not a name juice gives host disks (vda to vdz, sda to sdz)", md.Host)
	case md.Partition != nil && (md.Offset != "" || md.Size != ""):
		return fmt.Errorf("give a partition or an offset and size on host disk %s, not both", md.Host)
	}
	disk.Host = md.Host
	if md.Partition != nil {
		if n := *md.Partition; n < 1 || n > MaxPartition {
			return fmt.Errorf("partition %d on host disk %s: partitions are numbered from 1 to %d (%s1 is 1)", n, md.Host, MaxPartition, md.Host)
		}
		disk.Partition = *md.Partition
		return nil
	}
	if md.Offset != "" {
		n, err := parseSize(string(md.Offset))
		if err != nil {
			return fmt.Errorf("offset: %v", err)
		}
		if n%512 != 0 {
			return fmt.Errorf("offset %q is not a multiple of 512 bytes", md.Offset)
		}
		disk.Offset = n
	}
	if md.Size != "" {
		n, err := parseSize(string(md.Size))
		if err != nil {
			return fmt.Errorf("size: %v", err)
		}
		if n == 0 || n%512 != 0 {
			return fmt.Errorf("size %q is not a non-zero multiple of 512", md.Size)
		}
		disk.Size = n
	}
	return nil
}

// ValidHostDisk reports whether s is a name juice gives the host's
// disks: vd (virtio-blk) or sd (AHCI) followed by one letter a to z.
func ValidHostDisk(s string) bool {
	return len(s) == 3 && (s[:2] == "vd" || s[:2] == "sd") && s[2] >= 'a' && s[2] <= 'z'
}

// parseSize parses a size like Memory.Bytes but without RAM's limits.
func parseSize(s string) (uint64, error) {
	n, shift, err := splitSize(s)
	if err != nil {
		return 0, err
	}
	if n > MaxDiskSize>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// parseMAC parses "aa:bb:cc:dd:ee:ff": a unicast address (bit 0 of the
// first byte clear), not all zeros.
func parseMAC(s string) ([6]byte, error) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("MAC %q is not six hex bytes separated by colons", s)
	}
	for i, p := range parts {
		if len(p) != 2 {
			return m, fmt.Errorf("MAC %q is not six hex bytes separated by colons", s)
		}
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return m, fmt.Errorf("MAC %q is not six hex bytes separated by colons", s)
		}
		m[i] = byte(v)
	}
	if m[0]&1 != 0 {
		return m, fmt.Errorf("MAC %s is a multicast address", s)
	}
	if m == [6]byte{} {
		return m, fmt.Errorf("MAC %s is all zeros", s)
	}
	return m, nil
}

// formatMAC writes a MAC address in the manifest's form.
func formatMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// DerivedMAC is the MAC of interface index of VM vm when the manifest
// gives none: locally administered unicast 52:xx:xx:xx:xx:xx from an
// FNV-1a hash of the name and index, so it is the same on every boot.
func DerivedMAC(vm string, index int) [6]byte {
	h := uint64(14695981039346656037)
	for _, c := range []byte(fmt.Sprintf("%s/%d", vm, index)) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return [6]byte{0x52, byte(h >> 32), byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
}

// lookup returns the contents of the regular member name.
func lookup(files map[string]member, what, name string) ([]byte, error) {
	if err := checkFileName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if name == ManifestName {
		return nil, fmt.Errorf("%s %q is the manifest", what, name)
	}
	f, ok := files[name]
	if !ok {
		return nil, fmt.Errorf("%s %q is not in the bundle", what, name)
	}
	if !f.regular {
		return nil, fmt.Errorf("%s %q is not a regular file", what, name)
	}
	return f.data, nil
}

// encodeManifest writes m as indented JSON.
func encodeManifest(m Manifest) ([]byte, error) {
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return append(js, '\n'), nil
}
