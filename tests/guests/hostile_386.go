package main

// hostile is the entry point of the hostile guest (hostile_386.s).
func hostile()

// Routines of the hostile guest; see hostile_386.s for their registers.
func hsetup()
func hready()
func hkick()
func hfail()
func hcaught()
func hringcaught()
func hexpect()
func hrngok()
func hblkreq()
func hblkok()
func hioerr()
func hprobe()

// hArea holds the queue the guest hands its devices (descriptor table,
// available and used rings, an indirect table, buffers), aligned to 4 KiB
// at run time.
var hArea [0x2000 + 4095]byte

// hFailed is set to 1 by a failed check.
var hFailed uint32

// hCur points at the name (a Go string) of the step under way.
var hCur uint32

// hRAMEnd is the end of the guest's RAM, from the multiboot information
// (16 MiB if the loader gave none).
var hRAMEnd uint32

// Lines hostile prints.
var (
	hStart    = "hostile: attacking virtio-blk at 0xfe000000 and virtio-rng at 0xfe000200\n"
	hPrefix   = "hostile: "
	hFail     = "hostile: FAIL: "
	hColon    = ": "
	hValue    = ", value "
	hCaught   = ": needs-reset\n"
	hRngWorks = ": rng works after reset\n"
	hBlkWorks = ": blk works after reset\n"
	hIOErr    = ": IOERR, device still live\n"
	hRAMOK    = ": the last 16 bytes of RAM filled\n"
	hDone     = "hostile: all attacks caught, devices recovered\n"
	hBad      = "hostile: FAIL: some checks failed\n"

	// Failure reasons (printed after the step's name).
	mProbe      = "no such virtio-mmio device (magic or device ID)"
	mFeat       = "FEATURES_OK refused; status"
	mReady      = "device not live after DRIVER_OK; status"
	mNotCaught  = "not caught: no NEEDS_RESET; status"
	mUsed       = "the device completed a request; used idx"
	mQReady     = "QueueReady reads 1 after a bad queue"
	mStatus     = "status after a valid request"
	mUsedIdx    = "used idx after a valid request"
	mUsedID     = "used id"
	mUsedLen    = "used len"
	mRngZero    = "entropy buffer still all zero"
	mBlkStatus  = "blk status byte"
	mBlkData    = "blk read back differs at dword"
	mIOErrState = "device status after an IOERR request"

	// Steps, as printed.
	nStart         = "start"
	nLoop          = "loop"
	nNextRange     = "next-range"
	nOutside       = "outside-ram"
	nRAMEndOK      = "ram-end-ok"
	nRAMEnd        = "ram-end"
	nMMIOBuf       = "mmio-buffer"
	nAbove4G       = "above-4g"
	nLenMax        = "len-max"
	nLenWrap       = "len-wrap"
	nIndOutside    = "indirect-outside"
	nIndLen        = "indirect-len"
	nIndLoop       = "indirect-loop"
	nIndNested     = "indirect-nested"
	nIndNext       = "indirect-next"
	nAvailJump     = "avail-jump"
	nHeadRange     = "head-range"
	nReadable      = "readable"
	nReadAfter     = "read-after-write"
	nRingOutside   = "ring-outside"
	nRingMMIO      = "ring-mmio"
	nRingAbove4G   = "ring-above-4g"
	nQueueSize     = "queue-size"
	nQueueMax      = "queue-max"
	nBlkSector     = "blk-sector"
	nBlkHighSector = "blk-sector-high"
	nBlkPastEnd    = "blk-past-end"
	nBlkShortHdr   = "blk-short-header"
	nBlkNoStatus   = "blk-no-status"
)
