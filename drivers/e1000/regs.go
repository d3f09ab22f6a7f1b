package e1000

// Register offsets in BAR 0 (PCI/PCI-X Family of Gigabit Ethernet
// Controllers Software Developer's Manual, 8254x, section 13.4 "Register
// Summary"; the 82574L datasheet, section 10.2, keeps the same offsets
// for everything this driver uses). All are 32-bit registers.
const (
	regCTRL   = 0x0000 // device control
	regSTATUS = 0x0008 // device status
	regEERD   = 0x0014 // EEPROM read
	regFCAL   = 0x0028 // flow control address low
	regFCAH   = 0x002C // flow control address high
	regFCT    = 0x0030 // flow control type
	regICR    = 0x00C0 // interrupt cause read (clears on read)
	regITR    = 0x00C4 // interrupt throttling
	regIMC    = 0x00D8 // interrupt mask clear
	regRCTL   = 0x0100 // receive control
	regFCTTV  = 0x0170 // flow control transmit timer value
	regTCTL   = 0x0400 // transmit control
	regTIPG   = 0x0410 // transmit inter-packet gap
	regRDBAL  = 0x2800 // receive descriptor base, low dword
	regRDBAH  = 0x2804 // receive descriptor base, high dword
	regRDLEN  = 0x2808 // receive descriptor ring length in bytes
	regRDH    = 0x2810 // receive descriptor head
	regRDT    = 0x2818 // receive descriptor tail
	regRDTR   = 0x2820 // receive delay timer
	regRADV   = 0x282C // receive interrupt absolute delay timer
	regTDBAL  = 0x3800 // transmit descriptor base, low dword
	regTDBAH  = 0x3804 // transmit descriptor base, high dword
	regTDLEN  = 0x3808 // transmit descriptor ring length in bytes
	regTDH    = 0x3810 // transmit descriptor head
	regTDT    = 0x3818 // transmit descriptor tail
	regTIDV   = 0x3820 // transmit interrupt delay value
	regTXDCTL = 0x3828 // transmit descriptor control
	regTADV   = 0x382C // transmit absolute interrupt delay value
	regRXCSUM = 0x5000 // receive checksum control
	regRFCTL  = 0x5008 // receive filter control (82574)
	regMTA    = 0x5200 // multicast table array, 128 dwords
	regRAL0   = 0x5400 // receive address 0, low dword
	regRAH0   = 0x5404 // receive address 0, high word and flags
)

// Table sizes.
const (
	mtaEntries = 128 // MTA dwords (4096 hash bits)
	raEntries  = 16  // receive address registers (RAL/RAH pairs)
)

// RegsSize is the part of BAR 0 the driver maps: every register above
// lies below it. The 82540EM and 82574L decode 128 KiB.
const RegsSize = 0x20000

// minRegs is the least BAR 0 the driver accepts: through RAH15.
const minRegs = regRAL0 + 8*raEntries

// CTRL bits (8254x manual section 13.4.1).
const (
	ctrlFD     = 1 << 0  // full duplex
	ctrlLRST   = 1 << 3  // link reset
	ctrlASDE   = 1 << 5  // auto-speed detection enable
	ctrlSLU    = 1 << 6  // set link up
	ctrlILOS   = 1 << 7  // invert loss-of-signal
	ctrlRST    = 1 << 26 // device reset, self-clearing
	ctrlRFCE   = 1 << 27 // receive flow control enable
	ctrlTFCE   = 1 << 28 // transmit flow control enable
	ctrlVME    = 1 << 30 // VLAN mode enable
	ctrlPHYRST = 1 << 31 // PHY reset
)

// STATUS bits (section 13.4.2).
const (
	statusFD = 1 << 0 // full duplex
	statusLU = 1 << 1 // link up
)

// EERD fields (section 13.4.4 for the 82540EM; the 82574L datasheet,
// section 10.2.2.3, moves DONE to bit 1 and the address to bits 2-15).
const (
	eerdStart         = 1 << 0
	eerdDone82540     = 1 << 4
	eerdAddrShift8254 = 8
	eerdDone82574     = 1 << 1
	eerdAddrShift8257 = 2
	eerdDataShift     = 16
)

// RAH bits.
const rahAV = 1 << 31 // address valid

// RCTL bits (section 13.4.22).
const (
	rctlEN    = 1 << 1  // receiver enable
	rctlSBP   = 1 << 2  // store bad packets
	rctlUPE   = 1 << 3  // unicast promiscuous
	rctlMPE   = 1 << 4  // multicast promiscuous
	rctlLPE   = 1 << 5  // long packet enable
	rctlLBM   = 3 << 6  // loopback mode
	rctlBAM   = 1 << 15 // broadcast accept mode
	rctlBSIZE = 3 << 16 // buffer size; 00 with BSEX clear is 2048 bytes
	rctlBSEX  = 1 << 25 // buffer size extension
	rctlSECRC = 1 << 26 // strip the Ethernet CRC
)

// TCTL fields (section 13.4.33).
const (
	tctlEN        = 1 << 1 // transmitter enable
	tctlPSP       = 1 << 3 // pad short packets
	tctlCTShift   = 4      // collision threshold
	tctlCOLDShift = 12     // collision distance
	tctlCT        = 0x0F << tctlCTShift
	tctlCOLD      = 0x40 << tctlCOLDShift // 64 byte times: full duplex
)

// TIPG values (section 13.4.34: IPGT 10 for 10/100/1000BASE-T on the
// 82540EM, IPGR1 8, IPGR2 6; the 82574L wants IPGT 8).
const (
	tipg82540 = 10 | 8<<10 | 6<<20
	tipg82574 = 8 | 8<<10 | 6<<20
)

// TXDCTL bit 22: on the 82571 family (the 82574L included) Intel's
// drivers set it at initialization (descriptor granularity).
const txdctlGran = 1 << 22

// RFCTL.EXSTEN (82574L): extended receive descriptors. Left clear, the
// device writes legacy descriptors.
const rfctlEXSTEN = 1 << 15

// Legacy descriptor layouts (sections 3.2.3 and 3.3.3): 16 bytes each.
const (
	descSize = 16

	// Receive: buffer address (8), length (2), checksum (2),
	// status (1), errors (1), special (2).
	rxLenOff    = 8
	rxStatusBit = 32 // bit of status in the upper quadword
	rxErrorsBit = 40

	// Transmit: buffer address (8), length (2), CSO (1), CMD (1),
	// STA (1), CSS (1), special (2).
	txCmdBit = 24 // bit of CMD in the upper quadword
	txStaBit = 32
)

// Receive descriptor status and error bits.
const (
	rxdStatDD  = 1 << 0 // descriptor done
	rxdStatEOP = 1 << 1 // end of packet

	rxdErrCE  = 1 << 0 // CRC or alignment error
	rxdErrSE  = 1 << 1 // symbol error
	rxdErrSEQ = 1 << 2 // sequence error
	rxdErrCXE = 1 << 4 // carrier extension error
	rxdErrTCP = 1 << 5 // TCP/UDP checksum error (offload only)
	rxdErrIPE = 1 << 6 // IP checksum error (offload only)
	rxdErrRXE = 1 << 7 // RX data error
	// rxdErrFrame are the errors that make a frame bad; the checksum
	// errors are ignored (offload is turned off, and a guest checks its
	// own checksums anyway).
	rxdErrFrame = rxdErrCE | rxdErrSE | rxdErrSEQ | rxdErrCXE | rxdErrRXE
)

// Transmit descriptor command and status bits.
const (
	txdCmdEOP  = 1 << 0 // end of packet
	txdCmdIFCS = 1 << 1 // insert the FCS
	txdCmdRS   = 1 << 3 // report status (DD)
	txdStatDD  = 1 << 0 // descriptor done
	txdStatEC  = 1 << 1 // excess collisions
	txdStatLC  = 1 << 2 // late collision
	txdStatTU  = 1 << 3 // transmit underrun (82544 only)
)
