// Package bundle reads and writes juice's VM bundle: the boot module that
// tells juice which VMs to start. A bundle is a newc cpio archive holding
// manifest.json (see Manifest) and the kernels and modules it names:
//
//	{"vms": [{"name": "web", "kernel": "guest.elf", "cmdline": "console=ttyS0",
//	          "modules": [{"file": "initrd.img", "cmdline": "initrd"}],
//	          "memory": "64M", "vcpus": 1}]}
//
// A VM's network interfaces join virtual switches by network name; a
// network may be bridged to a network interface of the machine (its
// uplink, ManifestNet.Uplink: `"nets": [{"network": "lan", "uplink":
// "vnet0"}]`). An optional top-level "manage" section serves juice's
// console commands over TCP on one of those networks (ManifestManage);
// without it juice has no network console.
//
// Parse runs inside juice on a bundle that came from outside and treats it
// as hostile: every size is checked against the archive before anything is
// allocated, and a bad VM is reported by name without stopping the good
// ones. Build is the host side (juice run) and applies the same rules.
package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/u-root/u-root/pkg/cpio"
)

// ModuleSpec is a validated boot module.
type ModuleSpec struct {
	// File is the module's archive member name.
	File string
	// Cmdline is the module's command line.
	Cmdline string
	// Data is the module's contents (aliasing the archive).
	Data []byte
}

// VMSpec is a validated VM.
type VMSpec struct {
	// Name is the VM's name.
	Name string
	// Kernel is the kernel's archive member name.
	Kernel string
	// KernelData is the kernel image (aliasing the archive).
	KernelData []byte
	// Cmdline is the kernel command line.
	Cmdline string
	// Modules are the boot modules, in manifest order.
	Modules []ModuleSpec
	// MemBytes is the RAM size: a multiple of 4 KiB in [1 MiB, 64 GiB].
	MemBytes uint64
	// VCPUs is the vCPU count, 1 to 64.
	VCPUs int
	// Pin are the host CPUs the vCPUs are bound to (vCPU i on
	// Pin[i mod len(Pin)]); nil: juice places them.
	Pin []int
	// Devices are the VM's virtio devices; nil means none.
	Devices *DeviceSpec
}

// DeviceSpec is a validated ManifestDevices.
type DeviceSpec struct {
	Transport string // "pci" or "mmio"
	Disks     []DiskSpec
	Nets      []NetSpec
	RNG       bool
	Console   bool
}

// DiskSpec is a validated disk: a region of the host disk Host when that
// is set, else Image (aliasing the archive) when it came from a file,
// else a RAM disk of Size bytes.
type DiskSpec struct {
	File     string
	Image    []byte
	Size     uint64
	ReadOnly bool
	Serial   string
	// Host is the host disk (vda, ...) backing the disk. The region is
	// partition Partition (1-based) when that is not 0, else Offset and
	// Size bytes (Size 0: to the end of the host disk); whether it
	// exists is known only to juice at run time.
	Host      string
	Partition int
	Offset    uint64
}

// NetSpec is a validated network interface.
type NetSpec struct {
	Network string
	MAC     [6]byte
	// Uplink is the host NIC (vnet0, ...) the network is bridged to, ""
	// for none (see ManifestNet.Uplink). Whether the machine has it is
	// known only to juice at run time.
	Uplink string
}

// Bundle is a parsed bundle: its valid VMs, in manifest order.
type Bundle struct {
	VMs []VMSpec
	// Manage is the network console's configuration; nil when the
	// manifest has no (valid) manage section: no network console.
	Manage *ManageSpec
}

// member is one archive entry.
type member struct {
	data    []byte
	regular bool
}

// Parse reads a bundle. A broken archive or manifest gives a nil Bundle
// and one error. Otherwise every VM that fails validation gets its own
// error naming it, and the valid VMs are still returned. The returned
// data slices alias archive.
func Parse(archive []byte) (*Bundle, []error) {
	files, err := readArchive(archive)
	if err != nil {
		return nil, []error{fmt.Errorf("bundle: %w", err)}
	}
	mf, ok := files[ManifestName]
	if !ok || !mf.regular {
		return nil, []error{fmt.Errorf("bundle: no %s in the archive", ManifestName)}
	}
	m, err := decodeManifest(mf.data)
	if err != nil {
		return nil, []error{fmt.Errorf("bundle: %w", err)}
	}
	vms, errs := validate(m, files)
	// A bad manage section leaves the console off; the VMs still run.
	manage, err := validateManage(m.Manage, vms)
	if err != nil {
		errs = append(errs, fmt.Errorf("bundle: %w", err))
	}
	return &Bundle{VMs: vms, Manage: manage}, errs
}

// newc header layout: "070701" then 13 eight-digit hex fields; namesize is
// the 12th field.
const (
	newcHeader   = 110
	newcNameSize = 6 + 11*8
)

// readArchive reads every member of a newc archive up to its trailer.
// Before u-root's reader sees a header, the header and name must lie in
// the archive (the reader allocates the name size it reads); after it, the
// file data must too. Duplicate names are an error.
func readArchive(archive []byte) (map[string]member, error) {
	rr := cpio.Newc.Reader(bytes.NewReader(archive))
	if e, ok := rr.(cpio.EOFReader); ok {
		rr = e.RecordReader // see the trailer ourselves: truncation is an error
	}
	size := uint64(len(archive))
	files := map[string]member{}
	for pos := uint64(0); ; {
		if size-pos < newcHeader {
			return nil, fmt.Errorf("archive truncated at %#x: no TRAILER!!! record", pos)
		}
		nameLen, err := strconv.ParseUint(string(archive[pos+newcNameSize:pos+newcNameSize+8]), 16, 32)
		if err == nil && nameLen > size-pos-newcHeader {
			return nil, fmt.Errorf("archive entry at %#x: name runs past the archive", pos)
		}
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("archive truncated at %#x: no TRAILER!!! record", pos)
		}
		if err != nil {
			return nil, fmt.Errorf("archive entry at %#x: %w", pos, err)
		}
		if rec.Name == cpio.Trailer {
			return files, nil
		}
		start, n := uint64(rec.FilePos), rec.FileSize
		if start > size || n > size-start {
			return nil, fmt.Errorf("archive member %q: %d bytes run past the end of the archive", rec.Name, n)
		}
		if _, dup := files[rec.Name]; dup {
			return nil, fmt.Errorf("archive member %q appears twice", rec.Name)
		}
		files[rec.Name] = member{
			data:    archive[start : start+n : start+n],
			regular: rec.Mode&cpio.S_IFMT == cpio.S_IFREG,
		}
		pos = (start + n + 3) &^ 3
	}
}

// Build writes a bundle holding m (as manifest.json) and files. m must
// pass the same validation Parse applies, and every name in files must be
// a clean relative path other than manifest.json; files the manifest does
// not name are included too. Members are written manifest first, then by
// name, with zero timestamps and owners, so the output is reproducible.
func Build(m Manifest, files map[string][]byte) ([]byte, error) {
	members := make(map[string]member, len(files))
	names := make([]string, 0, len(files))
	for name, data := range files {
		if err := checkFileName(name); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if name == ManifestName {
			return nil, fmt.Errorf("bundle: a file may not be named %s", ManifestName)
		}
		if uint64(len(data)) > 0xffffffff {
			return nil, fmt.Errorf("bundle: %s is larger than the 4 GiB a newc archive can hold", name)
		}
		members[name] = member{data: data, regular: true}
		names = append(names, name)
	}
	sort.Strings(names)
	vms, errs := validate(&m, members)
	if _, err := validateManage(m.Manage, vms); err != nil {
		errs = append(errs, fmt.Errorf("bundle: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	js, err := encodeManifest(m)
	if err != nil {
		return nil, err
	}
	if len(js) > MaxManifestSize {
		return nil, fmt.Errorf("bundle: %s would be %d bytes, more than %d", ManifestName, len(js), MaxManifestSize)
	}

	var out bytes.Buffer
	w := cpio.Newc.Writer(&out)
	write := func(ino int, name string, data []byte) error {
		return w.WriteRecord(cpio.StaticRecord(data, cpio.Info{
			Ino: uint64(ino), Mode: cpio.S_IFREG | 0o644, NLink: 1, Name: name,
		}))
	}
	if err := write(1, ManifestName, js); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	for i, name := range names {
		if err := write(i+2, name, files[name]); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return out.Bytes(), nil
}
