package ahci

// Register layout and bit definitions (Serial ATA AHCI 1.3.1, sections 3
// and 4; ATA/ATAPI Command Set ACS-3 for the commands and IDENTIFY).

// Generic host control registers (section 3.1), offsets into the ABAR.
const (
	regCAP  = 0x00 // host capabilities
	regGHC  = 0x04 // global host control
	regIS   = 0x08 // interrupt status (one bit per port)
	regPI   = 0x0C // ports implemented
	regVS   = 0x10 // version
	regCAP2 = 0x24 // host capabilities extended
	regBOHC = 0x28 // BIOS/OS handoff control and status

	portBase   = 0x100 // port 0's registers
	portStride = 0x80  // bytes of registers per port
	// MaxPorts is the most ports an HBA has.
	MaxPorts = 32
)

// CAP bits.
const (
	capNP   = 0x1F    // number of ports - 1
	capNCS  = 0x1F00  // number of command slots - 1 (bits 12:8)
	capSAM  = 1 << 18 // supports AHCI mode only
	capSCLO = 1 << 24 // supports command list override
	capSSS  = 1 << 27 // supports staggered spin-up
	capSNCQ = 1 << 30 // supports native command queuing
	capS64A = 1 << 31 // supports 64-bit addressing
)

// GHC bits.
const (
	ghcHR = 1 << 0  // HBA reset
	ghcIE = 1 << 1  // interrupt enable
	ghcAE = 1 << 31 // AHCI enable
)

// CAP2 and BOHC bits (section 3.1.10, 3.1.11; handoff: section 10.6).
const (
	cap2BOH = 1 << 0 // BIOS/OS handoff supported

	bohcBOS = 1 << 0 // BIOS owned semaphore
	bohcOOS = 1 << 1 // OS owned semaphore
	bohcOOC = 1 << 3 // OS ownership change (RWC)
	bohcBB  = 1 << 4 // BIOS busy
)

// Port registers (section 3.3), offsets from the port's base.
const (
	pxCLB  = 0x00 // command list base address
	pxCLBU = 0x04
	pxFB   = 0x08 // FIS base address
	pxFBU  = 0x0C
	pxIS   = 0x10 // interrupt status
	pxIE   = 0x14 // interrupt enable
	pxCMD  = 0x18 // command and status
	pxTFD  = 0x20 // task file data
	pxSIG  = 0x24 // signature
	pxSSTS = 0x28 // SATA status (SStatus)
	pxSCTL = 0x2C // SATA control (SControl)
	pxSERR = 0x30 // SATA error (SError)
	pxSACT = 0x34 // SATA active (NCQ)
	pxCI   = 0x38 // command issue
)

// PxCMD bits.
const (
	cmdST  = 1 << 0  // start: process the command list
	cmdSUD = 1 << 1  // spin-up device
	cmdPOD = 1 << 2  // power on device
	cmdCLO = 1 << 3  // command list override
	cmdFRE = 1 << 4  // FIS receive enable
	cmdFR  = 1 << 14 // FIS receive running
	cmdCR  = 1 << 15 // command list running
)

// PxIS bits.
const (
	isDHRS = 1 << 0  // device to host register FIS
	isPSS  = 1 << 1  // PIO setup FIS
	isUFS  = 1 << 4  // unknown FIS
	isPRCS = 1 << 22 // PhyRdy changed
	isOFS  = 1 << 24 // overflow
	isINFS = 1 << 26 // interface non-fatal error
	isIFS  = 1 << 27 // interface fatal error
	isHBDS = 1 << 28 // host bus data error
	isHBFS = 1 << 29 // host bus fatal error
	isTFES = 1 << 30 // task file error
	// isError are the bits that fail a command.
	isError = isTFES | isHBFS | isHBDS | isIFS | isINFS | isOFS | isUFS | isPRCS
	// isFatal are the errors after which the port is reset whatever the
	// task file says (section 6.1.2: the HBA stops, the device's state is
	// unknown).
	isFatal = isHBFS | isHBDS | isIFS | isOFS | isUFS | isPRCS
)

// PxTFD status bits (the ATA status register).
const (
	tfdERR = 1 << 0
	tfdDRQ = 1 << 3
	tfdDF  = 1 << 5 // device fault
	tfdBSY = 1 << 7
)

// PxSSTS / PxSCTL fields.
const (
	sstsDET        = 0xF // device detection
	detPresentPhy  = 3   // device present, PHY communication established
	detOffline     = 4   // PHY offline (disabled or in loopback)
	sctlDET        = 0xF
	sctlDETComInit = 1        // perform interface initialisation (COMRESET)
	sctlIPMNone    = 3 << 8   // no transitions to partial or slumber
	sctlSPD        = 0xF << 4 // speed limit (kept)
)

// Device signatures (PxSIG, section 3.3.9, from the first D2H FIS).
const (
	SigATA   = 0x00000101
	SigATAPI = 0xEB140101
	SigSEMB  = 0xC33C0101
	SigPM    = 0x96690101
)

// DMA structures (section 4.2).
const (
	cmdListBytes  = 1024 // 32 command headers of 32 bytes; 1 KiB aligned
	fisAreaBytes  = 256  // received FIS area; 256-byte aligned
	cmdHeaderCFL  = 5    // command FIS length in dwords (a register H2D FIS)
	hdrWrite      = 1 << 6
	cmdTablePRDT  = 0x80 // the PRD table's offset in a command table
	prdBytes      = 16   // one PRD entry
	prdMaxBytes   = 4 << 20
	rfisOffset    = 0x40 // the D2H register FIS in the received FIS area
	fisTypeH2D    = 0x27
	fisTypeD2H    = 0x34
	fisH2DCommand = 0x80 // C bit: the FIS carries a command
)

// ATA commands (ACS-3).
const (
	ataIdentify    = 0xEC
	ataReadDMAExt  = 0x25
	ataWriteDMAExt = 0x35
	ataFlushExt    = 0xEA
	ataFlush       = 0xE7
	ataDevLBA      = 1 << 6 // device register: LBA addressing
	ataErrABRT     = 1 << 2
)
