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
)

// Manifest is manifest.json: the VMs of a bundle.
type Manifest struct {
	VMs []ManifestVM `json:"vms"`
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
}

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
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("memory %q is not a size", s)
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory %q is out of range", s)
	}
	var shift uint
	switch strings.ToUpper(s[i:]) {
	case "":
	case "K", "KB", "KIB":
		shift = 10
	case "M", "MB", "MIB":
		shift = 20
	case "G", "GB", "GIB":
		shift = 30
	default:
		return 0, fmt.Errorf("memory %q has an unknown unit (want K, M or G)", s)
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
	return spec, nil
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
