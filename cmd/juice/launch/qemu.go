// Package launch boots juice under an emulator on a development host: it
// builds QEMU command lines for its boot paths (PVH with -kernel; GRUB
// from a hybrid ISO as a CD or a USB stick, from a USB disk image, or over
// PXE, each under SeaBIOS and OVMF), builds those boot media,
// captures the serial console, and turns QEMU's exit code back into juice's
// status. It also runs juice under Bochs, on an emulated Intel CPU with
// VT-x and EPT (see bochs.go). The host command cmd/juice and the
// integration tests in tests/ both use it, so what `juice run` does is what
// the tests check.
package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Boot selects how the emulator loads juice.
type Boot string

// The boot paths.
const (
	// BootPVH loads the ELF with QEMU -kernel through its PVH note.
	BootPVH Boot = "pvh"
	// BootGRUBBIOS boots a GRUB ISO (multiboot2) under SeaBIOS; the same
	// as BootISOBIOS.
	BootGRUBBIOS Boot = "grub-bios"
	// BootGRUBEFI boots the same GRUB ISO under OVMF (UEFI); the same as
	// BootISOEFI.
	BootGRUBEFI Boot = "grub-efi"
	// BootISOBIOS boots the hybrid ISO (BuildISO) as a CD under SeaBIOS.
	BootISOBIOS Boot = "iso-bios"
	// BootISOEFI boots the hybrid ISO as a CD under OVMF.
	BootISOEFI Boot = "iso-efi"
	// BootISOStickBIOS boots the hybrid ISO written to a USB stick (a
	// usb-storage disk on xHCI) under SeaBIOS.
	BootISOStickBIOS Boot = "iso-usb-bios"
	// BootISOStickEFI boots the hybrid ISO written to a USB stick under
	// OVMF.
	BootISOStickEFI Boot = "iso-usb-efi"
	// BootUSBBIOS boots the USB disk image (BuildUSB) as a USB stick
	// under SeaBIOS.
	BootUSBBIOS Boot = "usb-bios"
	// BootUSBEFI boots the USB disk image as a USB stick under OVMF.
	BootUSBEFI Boot = "usb-efi"
	// BootPXEBIOS boots the PXE tree (BuildPXE) over QEMU's user-mode
	// network (its DHCP and TFTP server) under SeaBIOS: the NIC's iPXE
	// ROM loads GRUB's i386-pc network image, which loads juice and the
	// bundle by TFTP.
	BootPXEBIOS Boot = "pxe-bios"
	// BootPXEEFI is BootPXEBIOS under OVMF with GRUB's x86_64-efi
	// network image.
	BootPXEEFI Boot = "pxe-efi"
	// BootIPXEBIOS boots the PXE tree under SeaBIOS through its iPXE
	// script (PXEScript): DHCP hands the NIC's iPXE ROM the script, which
	// chain-loads GRUB's network image.
	BootIPXEBIOS Boot = "ipxe-bios"
	// BootIPXEEFI is BootIPXEBIOS under OVMF.
	BootIPXEEFI Boot = "ipxe-efi"
)

// Medium is what a boot path boots juice from.
type Medium string

// The media.
const (
	// MediumKernel is QEMU -kernel (PVH): no firmware boot.
	MediumKernel Medium = "kernel"
	// MediumCD is the hybrid ISO as a CD-ROM.
	MediumCD Medium = "cd"
	// MediumISOStick is the hybrid ISO as a USB stick.
	MediumISOStick Medium = "iso-usb"
	// MediumUSB is the USB disk image as a USB stick.
	MediumUSB Medium = "usb"
	// MediumPXE is the PXE tree, DHCP naming GRUB's network image.
	MediumPXE Medium = "pxe"
	// MediumIPXE is the PXE tree, DHCP naming the iPXE script.
	MediumIPXE Medium = "ipxe"
)

// bootPath describes one Boot.
type bootPath struct {
	boot   Boot
	medium Medium
	uefi   bool
}

// bootPaths lists every boot path, in the order BootPaths returns them.
var bootPaths = []bootPath{
	{BootPVH, MediumKernel, false},
	{BootGRUBBIOS, MediumCD, false},
	{BootGRUBEFI, MediumCD, true},
	{BootISOBIOS, MediumCD, false},
	{BootISOEFI, MediumCD, true},
	{BootISOStickBIOS, MediumISOStick, false},
	{BootISOStickEFI, MediumISOStick, true},
	{BootUSBBIOS, MediumUSB, false},
	{BootUSBEFI, MediumUSB, true},
	{BootPXEBIOS, MediumPXE, false},
	{BootPXEEFI, MediumPXE, true},
	{BootIPXEBIOS, MediumIPXE, false},
	{BootIPXEEFI, MediumIPXE, true},
}

// BootPaths returns every boot path ParseBoot accepts.
func BootPaths() []Boot {
	out := make([]Boot, len(bootPaths))
	for i, p := range bootPaths {
		out[i] = p.boot
	}
	return out
}

// path returns b's description; ok is false for an unknown Boot.
func (b Boot) path() (bootPath, bool) {
	for _, p := range bootPaths {
		if p.boot == b {
			return p, true
		}
	}
	return bootPath{}, false
}

// Medium returns what b boots juice from ("" for an unknown Boot).
func (b Boot) Medium() Medium {
	p, _ := b.path()
	return p.medium
}

// UEFI reports whether b boots under OVMF (UEFI) rather than SeaBIOS.
func (b Boot) UEFI() bool {
	p, _ := b.path()
	return p.uefi
}

// Tools returns the host programs that building b's boot medium needs,
// besides QEMU (and OVMF when b.UEFI()).
func (b Boot) Tools() []string {
	switch b.Medium() {
	case MediumCD, MediumISOStick:
		return ISOTools
	case MediumUSB:
		return USBTools
	case MediumPXE, MediumIPXE:
		return PXETools
	}
	return nil
}

// MissingTools returns those of b.Tools() that are not on $PATH, and
// GRUB's platform directories when b needs them and they are missing.
func (b Boot) MissingTools() []string {
	switch b.Medium() {
	case MediumCD, MediumISOStick:
		return MissingISOTools()
	case MediumUSB:
		return MissingUSBTools()
	case MediumPXE, MediumIPXE:
		return MissingPXETools()
	}
	return nil
}

// ParseBoot parses a --boot value.
func ParseBoot(s string) (Boot, error) {
	if _, ok := Boot(s).path(); ok {
		return Boot(s), nil
	}
	names := make([]string, len(bootPaths))
	for i, p := range bootPaths {
		names[i] = string(p.boot)
	}
	return "", fmt.Errorf("unknown boot path %q (want one of %s)", s, strings.Join(names, ", "))
}

// DefaultQEMU is the emulator binary used when Config.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

// SelftestArgs are the kernel arguments of a self-test run: run the
// built-in checks and power off, also after a fatal error.
const SelftestArgs = "juice.mode=selftest juice.panic=poweroff"

// Config describes one emulator run.
type Config struct {
	// Emulator is the program that runs the machine; empty means
	// EmulatorQEMU.
	Emulator Emulator
	// Kernel is the path of juice's ELF image (build/juice.elf).
	Kernel string
	// Boot is the boot path; empty means BootPVH under QEMU and
	// BootGRUBBIOS, the only one it has, under Bochs.
	Boot Boot
	// Mem is the guest RAM in QEMU -m syntax ("256M"); empty means 256M.
	Mem string
	// CPUs is the number of virtual CPUs; 0 means 1.
	CPUs int
	// SingleTCGThread runs a machine with several CPUs in one TCG thread
	// (-accel tcg,thread=single) instead of one host thread per CPU. A run
	// with guests (a bundle in Initrd) on several CPUs always does: QEMU
	// 7.2's multi-threaded TCG now and then loses juice's own translations
	// right after a #VMEXIT while a nested guest runs and another CPU is
	// busy (juice triple-faults at the instruction after VMRUN; its page
	// tables are intact when QEMU stops). It is no default otherwise: the
	// Go runtime on several CPUs crawls in one thread (a CPU that waits
	// for another, for a lock or a garbage-collection handshake, may wait
	// for QEMU's 100 ms round-robin slice).
	SingleTCGThread bool
	// MultiTCGThreads runs a machine with several CPUs with one TCG
	// thread per CPU (-accel tcg,thread=multi) even with guests: the
	// only way several emulated CPUs run at once, for measuring a
	// parallel speed-up (juice bench --scale). Expect the occasional run
	// that dies of the QEMU 7.2 fault SingleTCGThread describes. Setting
	// both is an error.
	MultiTCGThreads bool
	// Append is juice's command line.
	Append string
	// Initrd, if set, is a file juice gets as its first boot module: the
	// bundle of VMs to run (see BuildBundle). PVH passes it with QEMU
	// -initrd (the first module of hvm_start_info); the GRUB paths put it
	// on their medium as /boot/bundle.cpio and load it with module2.
	Initrd string
	// Timeout kills the run after this long; 0 means no limit.
	Timeout time.Duration
	// Interactive multiplexes the QEMU monitor onto the console
	// (-serial mon:stdio: Ctrl-A x quits, Ctrl-A c toggles) and gives QEMU
	// this process's standard input. Bochs ignores it: its console is a
	// file, output only.
	Interactive bool
	// Stdin, if set (and not Interactive), is what QEMU reads as the
	// serial console's input: tests type on the guest's console with it.
	Stdin io.Reader
	// Echo, if set, receives a copy of the console output as it arrives.
	Echo io.Writer
	// EchoStderr, if set, receives a copy of QEMU's standard error, or of
	// Bochs's without its info lines.
	EchoStderr io.Writer
	// QEMU is the QEMU binary; empty means DefaultQEMU.
	QEMU string
	// Bochs is the Bochs binary; empty means DefaultBochs.
	Bochs string
	// WorkDir holds the files a run needs (ISO, UEFI variable store; for
	// Bochs also the bochsrc, the serial output and Bochs's log). Empty
	// means a fresh temporary directory, removed when the run ends.
	WorkDir string
	// CPU is the CPU model: QEMU's -cpu, empty meaning "max" (AMD-V with
	// NPT); under Bochs a model of `bochs --help cpu`, empty meaning
	// DefaultBochsCPU (VT-x with EPT; "ryzen" gives AMD-V).
	CPU string
	// NoDebugExit leaves out the isa-debug-exit device, so that juice
	// powers off through ACPI (QEMU then exits 0).
	NoDebugExit bool
	// ExtraArgs are appended to the QEMU command line; under Bochs they
	// are lines appended to the bochsrc (a later line overrides).
	ExtraArgs []string
	// HostNIC, if set, gives the machine a network interface on QEMU's
	// user-mode network (see HostNIC): juice brings it up as vnet0 (eth0
	// for an e1000 model; when it is the machine's first NIC of its
	// driver), and a bundle network bridged to it (`"uplink": "vnet0"`)
	// reaches QEMU's gateway, and through it the host. QEMU only.
	HostNIC *HostNIC
	// AHCIDisks are raw disk images on ports of the q35 machine's
	// built-in AHCI controller (ICH9, 00:1f.2; see AHCIDisk): juice
	// brings them up as sda, sdb, ... QEMU only.
	AHCIDisks []AHCIDisk
}

// QEMU's user-mode network (slirp) as a machine on it, or a VM bridged to
// it, sees it: no DHCP is needed, the addresses are fixed.
const (
	// UserNetPrefixLen is the network's prefix length (10.0.2.0/24).
	UserNetPrefixLen = 24
	// UserNetGateway is the network's gateway. It is also the way to
	// the host: QEMU turns a connection to UserNetGateway:PORT into one
	// to 127.0.0.1:PORT on the host, so a server a test runs on the
	// host's loopback is reachable from the VMs.
	UserNetGateway = "10.0.2.2"
	// UserNetDNS is QEMU's DNS forwarder.
	UserNetDNS = "10.0.2.3"
	// UserNetGuestIP is the address QEMU's DHCP server hands out first,
	// the customary static choice for one VM.
	UserNetGuestIP = "10.0.2.15"
	// DefaultHostNICMAC is a HostNIC's address unless it says
	// otherwise (not QEMU's default 52:54:00:12:34:56, which manifests
	// often give a VM: the uplink's port and a VM may not share one).
	DefaultHostNICMAC = "52:54:00:6a:75:01"
	// hostNICID is the netdev's id on QEMU's command line.
	hostNICID = "hostnic"
)

// HostNIC is a network interface of the machine (virtio-net-pci unless
// Model names an Intel e1000) on QEMU's user-mode network (`-netdev
// user`: QEMU's own NAT, DHCP and DNS; no privileges needed). Its option
// ROM is left out (juice does not boot from it, and firmware would spend
// seconds running it under TCG).
type HostNIC struct {
	// Model is QEMU's device: "" or NICVirtio (virtio-net-pci, juice's
	// vnetN), or one of the Intel e1000 models juice/drivers/e1000 drives
	// (ethN): NICE1000 (82540EM), NICE1000E (82574L), NICE100082545EM.
	Model string
	// MAC is the NIC's address; empty means DefaultHostNICMAC.
	MAC string
	// Slot is its PCI device number on the root bus (1 to 31); 0 lets
	// QEMU choose.
	Slot int
	// HostFwd are QEMU hostfwd rules, "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"
	// (or udp): connections to the host's port reach a VM's, the
	// other direction from UserNetGateway.
	HostFwd []string
}

// HostNIC models: QEMU's device names.
const (
	NICVirtio       = "virtio-net-pci"
	NICE1000        = "e1000"         // Intel 82540EM, 8086:100e
	NICE1000E       = "e1000e"        // Intel 82574L, 8086:10d3
	NICE100082545EM = "e1000-82545em" // Intel 82545EM copper, 8086:100f
)

var (
	macRE     = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	hostFwdRE = regexp.MustCompile(`^(tcp|udp):[0-9.]*:[0-9]{1,5}-[0-9.]*:[0-9]{1,5}$`)
)

// args returns the QEMU options attaching the NIC.
func (n HostNIC) args() ([]string, error) {
	mac := n.MAC
	if mac == "" {
		mac = DefaultHostNICMAC
	}
	if !macRE.MatchString(mac) {
		return nil, fmt.Errorf("host NIC: bad MAC %q (want six hex bytes, 52:54:00:12:34:56)", mac)
	}
	if b, _ := strconv.ParseUint(mac[:2], 16, 8); b&1 != 0 {
		return nil, fmt.Errorf("host NIC: MAC %s is a multicast address", mac)
	}
	if n.Slot < 0 || n.Slot > 31 {
		return nil, fmt.Errorf("host NIC: PCI slot %d is not 0 to 31", n.Slot)
	}
	netdev := "user,id=" + hostNICID
	for _, f := range n.HostFwd {
		if !hostFwdRE.MatchString(f) {
			return nil, fmt.Errorf("host NIC: bad forwarding rule %q (want tcp:HOSTADDR:PORT-GUESTADDR:PORT)", f)
		}
		netdev += ",hostfwd=" + f
	}
	model := n.Model
	switch model {
	case "":
		model = NICVirtio
	case NICVirtio, NICE1000, NICE1000E, NICE100082545EM:
	default:
		return nil, fmt.Errorf("host NIC: unknown model %q (want %s, %s, %s or %s)", model, NICVirtio, NICE1000, NICE1000E, NICE100082545EM)
	}
	dev := model + ",netdev=" + hostNICID + ",mac=" + strings.ToLower(mac) + ",romfile="
	if n.Slot != 0 {
		dev += ",addr=" + strconv.Itoa(n.Slot)
	}
	return []string{"-netdev", netdev, "-device", dev}, nil
}

// memRE is the accepted form of Config.Mem.
var memRE = regexp.MustCompile(`^[0-9]+[KMGTkmgt]?$`)

// normalize fills defaults and checks the configuration.
func (c Config) normalize() (Config, error) {
	switch c.Emulator {
	case "":
		c.Emulator = EmulatorQEMU
	case EmulatorQEMU, EmulatorBochs:
	default:
		return c, fmt.Errorf("unknown emulator %q (want qemu or bochs)", c.Emulator)
	}
	if c.Emulator == EmulatorBochs {
		if c.HostNIC != nil {
			return c, errors.New("a host NIC needs QEMU (Bochs has no user-mode network)")
		}
		if len(c.AHCIDisks) > 0 {
			return c, errors.New("AHCI disks need QEMU (its q35 machine's AHCI controller)")
		}
		if c.Boot == "" {
			c.Boot = BootGRUBBIOS
		}
		if c.Boot != BootGRUBBIOS {
			return c, fmt.Errorf("Bochs boots only %s (a GRUB ISO under its BIOS), not %s", BootGRUBBIOS, c.Boot)
		}
		if c.Bochs == "" {
			c.Bochs = DefaultBochs
		}
		if c.CPU == "" {
			c.CPU = DefaultBochsCPU
		}
		if !bochsModelRE.MatchString(c.CPU) {
			return c, fmt.Errorf("bad Bochs CPU model %q", c.CPU)
		}
	}
	if c.Boot == "" {
		c.Boot = BootPVH
	}
	if _, err := ParseBoot(string(c.Boot)); err != nil {
		return c, err
	}
	if c.Mem == "" {
		c.Mem = "256M"
	}
	if !memRE.MatchString(c.Mem) {
		return c, fmt.Errorf("bad memory size %q (want e.g. 256M or 1G)", c.Mem)
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.CPUs < 0 || c.CPUs > 255 {
		return c, fmt.Errorf("bad CPU count %d", c.CPUs)
	}
	if c.Kernel == "" {
		return c, errors.New("no kernel image given")
	}
	if c.QEMU == "" {
		c.QEMU = DefaultQEMU
	}
	return c, nil
}

// Media are the prepared files a firmware boot needs.
type Media struct {
	// ISO is the hybrid GRUB ISO image (MediumCD, MediumISOStick).
	ISO string
	// Disk is the USB disk image (MediumUSB).
	Disk string
	// TFTP is the root of the PXE tree QEMU's TFTP server serves
	// (MediumPXE, MediumIPXE).
	TFTP string
	// Firmware is the UEFI firmware (UEFI boot paths).
	Firmware Firmware
	// Vars is the writable copy of the UEFI variable store, if the
	// firmware is split into code and variables.
	Vars string
}

// cpuModel returns the -cpu value for a Config.CPU.
func cpuModel(m string) string {
	if m == "" {
		return "max"
	}
	return m
}

// QEMUArgs returns the emulator arguments (without the binary) for cfg,
// using media for the GRUB paths. It fills the same defaults Start does.
func QEMUArgs(cfg Config, media Media) ([]string, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Emulator != EmulatorQEMU {
		return nil, fmt.Errorf("QEMUArgs: emulator %s is not QEMU (see BochsRC)", cfg.Emulator)
	}
	accel := "tcg"
	switch {
	case cfg.SingleTCGThread && cfg.MultiTCGThreads:
		return nil, errors.New("QEMUArgs: SingleTCGThread and MultiTCGThreads both set")
	case cfg.CPUs > 1 && cfg.MultiTCGThreads:
		accel = "tcg,thread=multi"
	case cfg.CPUs > 1 && (cfg.SingleTCGThread || cfg.Initrd != ""):
		accel = "tcg,thread=single"
	}
	args := []string{
		"-machine", "q35",
		"-accel", accel,
		"-cpu", cpuModel(cfg.CPU),
		"-m", cfg.Mem,
		"-smp", strconv.Itoa(cfg.CPUs),
		"-nographic",
		"-no-reboot",
		// No default network card: its option ROM only slows the
		// firmware down.
		"-nic", "none",
	}
	if cfg.Interactive {
		args = append(args, "-serial", "mon:stdio")
	} else {
		// -nographic would put the monitor on stdio too.
		args = append(args, "-serial", "stdio", "-monitor", "none")
	}
	if !cfg.NoDebugExit {
		args = append(args, "-device", "isa-debug-exit,iobase=0xf4,iosize=4")
	}
	if cfg.HostNIC != nil {
		nic, err := cfg.HostNIC.args()
		if err != nil {
			return nil, err
		}
		args = append(args, nic...)
	}
	if len(cfg.AHCIDisks) > 0 {
		disks, err := ahciArgs(cfg.AHCIDisks, cfg.Boot)
		if err != nil {
			return nil, err
		}
		args = append(args, disks...)
	}
	if cfg.Boot == BootPVH {
		args = append(args, "-kernel", cfg.Kernel)
		if cfg.Append != "" {
			args = append(args, "-append", cfg.Append)
		}
		if cfg.Initrd != "" {
			args = append(args, "-initrd", cfg.Initrd)
		}
		return append(args, cfg.ExtraArgs...), nil
	}
	if cfg.Boot.UEFI() {
		fw, err := media.Firmware.args(media.Vars)
		if err != nil {
			return nil, err
		}
		args = append(args, fw...)
	}
	medium, err := mediaArgs(cfg.Boot, media)
	if err != nil {
		return nil, err
	}
	args = append(args, medium...)
	return append(args, cfg.ExtraArgs...), nil
}

// mediaArgs returns the QEMU options that attach b's boot medium from
// media and make the firmware boot from it.
func mediaArgs(b Boot, media Media) ([]string, error) {
	switch b.Medium() {
	case MediumCD:
		if media.ISO == "" {
			return nil, fmt.Errorf("no ISO image for --boot %s", b)
		}
		return []string{"-cdrom", media.ISO, "-boot", "d"}, nil
	case MediumISOStick:
		if media.ISO == "" {
			return nil, fmt.Errorf("no ISO image for --boot %s", b)
		}
		return usbStickArgs(media.ISO), nil
	case MediumUSB:
		if media.Disk == "" {
			return nil, fmt.Errorf("no USB disk image for --boot %s", b)
		}
		return usbStickArgs(media.Disk), nil
	case MediumPXE, MediumIPXE:
		if media.TFTP == "" {
			return nil, fmt.Errorf("no PXE tree for --boot %s", b)
		}
		return []string{
			"-netdev", "user,id=pxe,tftp=" + qemuOptEscape(media.TFTP) + ",bootfile=" + qemuOptEscape(PXEBootFile(b)),
			// QEMU gives the NIC iPXE's ROM (efi-virtio.rom: legacy PXE
			// and UEFI drivers); bootindex makes both firmwares try the
			// network first.
			"-device", "virtio-net-pci,netdev=pxe,bootindex=0",
		}, nil
	}
	return nil, fmt.Errorf("boot path %s has no boot medium", b)
}

// usbStickArgs attaches image as a USB stick (usb-storage on an xHCI
// controller, which SeaBIOS and OVMF both boot from) that the firmware
// tries first.
func usbStickArgs(image string) []string {
	return []string{
		"-drive", "if=none,id=stick,format=raw,file=" + qemuOptEscape(image),
		"-device", "qemu-xhci,id=xhci",
		"-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
	}
}

// ErrNoEmulator is returned (wrapped) by Start when the emulator binary
// cannot be started.
var ErrNoEmulator = errors.New("cannot start the emulator (run `make setup`)")

// Machine is a running emulator.
type Machine struct {
	// Console receives the guest's serial output.
	Console *Console
	// Args is the full command line, binary first.
	Args []string
	// BochsRC is the configuration of a Bochs run (see BochsRC); empty
	// for QEMU.
	BochsRC string

	cmd      *exec.Cmd
	parent   context.Context
	stderr   lockedBuffer
	done     chan struct{}
	result   Result
	stop     context.CancelFunc
	killed   atomic.Bool
	timedOut atomic.Bool
	rebooted atomic.Bool // Bochs: stopped because the machine reset
	cleanup  func()
	// finish, if set, runs once the emulator has exited, before the
	// console closes (Bochs: copy the rest of the serial file).
	finish func()
	// classify turns the emulator's exit code into a Result, before
	// timeouts and kills are accounted for.
	classify func(code int) Result
}

// Start prepares the boot media and starts the emulator. The run ends when
// the guest exits, when cfg.Timeout passes (TimedOut), or when ctx ends or
// Kill is called (Killed). Call Wait to collect the result and remove the
// temporary files.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg.Kernel); err != nil {
		return nil, fmt.Errorf("kernel image: %w", err)
	}
	if cfg.Initrd != "" {
		if _, err := os.Stat(cfg.Initrd); err != nil {
			return nil, fmt.Errorf("boot module: %w", err)
		}
	}
	if cfg.Emulator == EmulatorBochs {
		return startBochs(ctx, cfg)
	}
	var media Media
	cleanup := func() {}
	if cfg.Boot.Medium() != MediumKernel {
		dir := cfg.WorkDir
		if dir == "" {
			dir, err = os.MkdirTemp("", "juice-run-")
			if err != nil {
				return nil, err
			}
			cleanup = func() { os.RemoveAll(dir) }
		}
		media, err = prepareMedia(ctx, cfg, dir)
		if err != nil {
			cleanup()
			return nil, err
		}
	}
	args, err := QEMUArgs(cfg, media)
	if err != nil {
		cleanup()
		return nil, err
	}

	m := &Machine{
		Console: NewConsole(),
		Args:    append([]string{cfg.QEMU}, args...),
		done:    make(chan struct{}),
		cleanup: cleanup,
		parent:  ctx,
	}
	m.cmd = exec.Command(cfg.QEMU, args...)
	dieWithParent(m.cmd)
	m.cmd.Stdout = m.Console
	if cfg.Echo != nil {
		m.cmd.Stdout = io.MultiWriter(m.Console, cfg.Echo)
	}
	m.cmd.Stderr = &m.stderr
	if cfg.EchoStderr != nil {
		m.cmd.Stderr = io.MultiWriter(&m.stderr, cfg.EchoStderr)
	}
	if cfg.Interactive {
		m.cmd.Stdin = os.Stdin
	} else if cfg.Stdin != nil {
		// An *os.File, so that Wait does not wait for a copy from
		// cfg.Stdin (which may never end) once QEMU has exited.
		pr, pw, err := os.Pipe()
		if err != nil {
			cleanup()
			return nil, err
		}
		m.cmd.Stdin = pr
		go func() {
			io.Copy(pw, cfg.Stdin)
			pw.Close()
		}()
		prev := cleanup
		cleanup = func() {
			pr.Close()
			pw.Close() // ends the copy at its next write
			prev()
		}
		m.cleanup = cleanup
	}
	if err := m.cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("%w: %s: %v", ErrNoEmulator, cfg.QEMU, err)
	}
	m.classify = func(code int) Result {
		return Classify(code, m.Console.Texts(), m.stderr.String())
	}
	m.run(ctx, cfg.Timeout)
	return m, nil
}

// run starts watching the started emulator: it ends after timeout (0: no
// limit) or with ctx. It returns the context of the run, which ends when
// the run does.
func (m *Machine) run(ctx context.Context, timeout time.Duration) context.Context {
	runCtx := ctx
	var cancelTimeout context.CancelFunc = func() {}
	if timeout > 0 {
		runCtx, cancelTimeout = context.WithTimeout(ctx, timeout)
	}
	runCtx, cancel := context.WithCancel(runCtx)
	m.stop = func() { cancel(); cancelTimeout() }
	go m.watch(runCtx, ctx)
	go m.wait()
	return runCtx
}

// stopGrace is how long the emulator gets to exit after SIGTERM before
// SIGKILL. QEMU exits cleanly on SIGTERM and then restores the terminal
// settings that an interactive run changed.
const stopGrace = 2 * time.Second

// watch stops the emulator when runCtx ends before the emulator does.
func (m *Machine) watch(runCtx, parent context.Context) {
	select {
	case <-m.done:
		return
	case <-runCtx.Done():
	}
	if parent.Err() != nil {
		m.killed.Store(true)
	} else if !m.killed.Load() {
		m.timedOut.Store(true)
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(stopGrace):
		m.cmd.Process.Kill()
	}
}

// wait reaps the emulator and records the result.
func (m *Machine) wait() {
	err := m.cmd.Wait()
	if m.finish != nil {
		m.finish()
	}
	m.Console.Close()
	code := m.cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1 // I/O error after a clean exit: not a status
	}
	r := m.classify(code)
	switch {
	case m.rebooted.Load():
		// Stopped on purpose: classify said why.
	case m.timedOut.Load():
		r.Outcome, r.Status = TimedOut, 0
	case m.killed.Load() || m.parent.Err() != nil:
		// The parent context covers a signal that reached QEMU
		// (same process group) before watch saw it.
		r.Outcome, r.Status = Killed, 0
	}
	m.result = r
	m.stop()
	m.cleanup()
	close(m.done)
}

// Wait waits for the emulator to end and returns how it ended.
func (m *Machine) Wait() Result {
	<-m.done
	return m.result
}

// Done is closed when the emulator has ended.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Running reports whether the emulator is still running.
func (m *Machine) Running() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// Kill stops the emulator (Outcome Killed unless it had already ended) and
// waits for it to end.
func (m *Machine) Kill() Result {
	if m.Running() {
		m.killed.Store(true)
		m.cmd.Process.Kill()
	}
	return m.Wait()
}

// Stderr returns what QEMU has written to its standard error so far (for
// Bochs: its standard output and error).
func (m *Machine) Stderr() string { return m.stderr.String() }

// CommandLine renders Args as a shell command line, for logs.
func (m *Machine) CommandLine() string { return ShellQuote(m.Args) }

// ShellQuote renders args for a POSIX shell.
func ShellQuote(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%") == "" {
			b.WriteString(a)
			continue
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns the contents.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
