// hostile: a hostile virtio driver. The VM has two virtio-mmio devices
// (transport "mmio"): a RAM disk, virtio-blk at 0xfe000000, and an
// entropy source, virtio-rng at 0xfe000200 (disks come first). For each
// attack the guest resets the device, initializes it as a virtio 1.x
// driver does (ACKNOWLEDGE, DRIVER, VERSION_1 and INDIRECT_DESC,
// FEATURES_OK, one queue of 8 entries, QueueReady, DRIVER_OK), posts a
// malicious chain or ring, notifies, and checks that the device set
// DEVICE_NEEDS_RESET (status 0x40) without completing anything; then it
// resets the device and checks that a valid request works again:
//
//	hostile: NAME: needs-reset
//	hostile: NAME: rng works after reset     (or "blk works")
//
// The attacks on virtio-rng: a chain that loops (loop), a next index
// past the table (next-range), buffers outside RAM (outside-ram at
// 1 GiB, ram-end across the end of RAM, mmio-buffer over the device's
// own registers, above-4g: RAM's address plus 4 GiB, which a 32-bit
// truncation would alias), absurd lengths (len-max: 0xffffffff,
// len-wrap: address + length wraps past 2^64), indirect tables outside
// RAM, of a length not a multiple of 16, looping, nested, or with NEXT
// set (indirect-*), an available index more than the queue size ahead
// (avail-jump), a head index past the queue (head-range), a
// device-readable buffer (readable) or one after a writable one
// (read-after-write), and rings outside RAM at QueueReady (ring-outside,
// ring-mmio, ring-above-4g) or a bad queue size (queue-size: 3,
// queue-max: above the device's maximum). ram-end-ok first checks that
// the last 16 bytes of RAM are a valid buffer. On virtio-blk: a header
// shorter than 16 bytes (blk-short-header) and a request without a
// status byte (blk-no-status) need a reset; sectors past the disk
// (blk-sector: 2^64-1, blk-sector-high: 2^32+7, blk-past-end: the
// sector at the capacity) are answered with VIRTIO_BLK_S_IOERR while the
// device stays live ("hostile: NAME: IOERR, device still live"). A blk
// check writes a pattern to sector 7 and reads it back.
//
// It ends with "hostile: all attacks caught, devices recovered" and
// status 0, or "hostile: FAIL: ..." lines and status 1.

#include "textflag.h"
#include "guest.h"

#define BLK_BASE 0xfe000000
#define RNG_BASE 0xfe000200
#define BLK_ID 2
#define RNG_ID 4
#define MMIO_MAGIC 0x74726976
#define BLK_CAPACITY 2048       // sectors: the test gives a 1 MiB disk

// virtio-mmio registers.
#define R_MAGIC 0x000
#define R_DEVID 0x008
#define R_DRVFEAT 0x020
#define R_DRVFEATSEL 0x024
#define R_QSEL 0x030
#define R_QNUM 0x038
#define R_QREADY 0x044
#define R_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESCLO 0x080
#define R_DESCHI 0x084
#define R_DRIVERLO 0x090
#define R_DRIVERHI 0x094
#define R_DEVICELO 0x0a0
#define R_DEVICEHI 0x0a4

// Device status bits.
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVEROK 4
#define S_FEATOK 8
#define S_NEEDSRESET 0x40
#define S_NEGOTIATED (S_ACK+S_DRIVER+S_FEATOK)
#define S_LIVE (S_ACK+S_DRIVER+S_FEATOK+S_DRIVEROK)

// Descriptor flags.
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

// The queue: QSZ entries; offsets in the 4 KiB-aligned area (DI).
#define QSZ 8
#define A_DESC 0x000
#define A_AVAIL 0x400
#define A_USED 0x800
#define A_IND 0xc00
#define A_BUF 0x1000
#define A_HDR 0x1800
#define A_STAT 0x1900
#define A_SIZE 0x2000

// Registers through the whole guest: BX is the device's register window,
// DI the area. Routines keep every register.

// AT(off): AX:DX = the guest-physical address of the area's byte off.
#define AT(off) LEAL off(DI), AX; XORL DX, DX
// ABS(lo, hi): AX:DX = hi:lo.
#define ABS(lo, hi) MOVL $lo, AX; MOVL $hi, DX
// DESC(t, i, ln, fl, nx): entry i of the table at area offset t is
// {AX:DX, ln, fl, nx}.
#define DESC(t, i, ln, fl, nx) MOVL AX, (t+16*i)(DI); MOVL DX, (t+16*i+4)(DI); MOVL $ln, (t+16*i+8)(DI); MOVW $fl, (t+16*i+12)(DI); MOVW $nx, (t+16*i+14)(DI)
// STEP(name): the step's name for the lines it prints.
#define STEP(name) MOVL $name(SB), ·hCur(SB)
// BEGIN(name): a reset, live device with an empty queue.
#define BEGIN(name) STEP(name); CALL ·hsetup(SB); CALL ·hready(SB)
// KICK(h): post head h and notify.
#define KICK(h) MOVL $h, AX; CALL ·hkick(SB)
// FAIL(msg): a failed check, AX the value to show.
#define FAIL(msg) MOVL $msg(SB), SI; CALL ·hfail(SB)
// PRINTCUR prints the step's name (clobbers SI, CX).
#define PRINTCUR MOVL ·hCur(SB), SI; MOVL 4(SI), CX; MOVL 0(SI), SI; CALL ·write(SB)

TEXT ·hostile(SB), NOSPLIT, $0-0
	SETUP
	// The end of RAM: multiboot's mem_upper (KiB above 1 MiB).
	MOVL $0x1000000, ·hRAMEnd(SB)
	CMPL AX, $MB_MAGIC
	JNE nombi
	MOVL 0(BX), CX
	TESTL $1, CX
	JEQ nombi
	MOVL 8(BX), CX
	ADDL $1024, CX
	SHLL $10, CX
	MOVL CX, ·hRAMEnd(SB)
nombi:
	PRINT(·hStart)
	MOVL $·hArea+4095(SB), DI
	ANDL $0xfffff000, DI

	STEP(·nStart)
	MOVL $BLK_BASE, BX
	MOVL $BLK_ID, AX
	CALL ·hprobe(SB)
	MOVL $RNG_BASE, BX
	MOVL $RNG_ID, AX
	CALL ·hprobe(SB)
	MOVL ·hFailed(SB), AX
	TESTL AX, AX
	JNE failed
	CALL ·hrngok(SB)
	MOVL $BLK_BASE, BX
	CALL ·hblkok(SB)

	// --- virtio-rng ---
	MOVL $RNG_BASE, BX

	// 0 -> 1 -> 0 -> ...
	BEGIN(·nLoop)
	AT(A_BUF)
	DESC(A_DESC, 0, 16, F_WRITE+F_NEXT, 1)
	AT(A_BUF+16)
	DESC(A_DESC, 1, 16, F_WRITE+F_NEXT, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nNextRange)
	AT(A_BUF)
	DESC(A_DESC, 0, 16, F_WRITE+F_NEXT, 200)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nOutside)
	ABS(0x40000000, 0)
	DESC(A_DESC, 0, 64, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// The last 16 bytes of RAM are a buffer like any other...
	BEGIN(·nRAMEndOK)
	MOVL ·hRAMEnd(SB), AX
	SUBL $16, AX
	XORL DX, DX
	DESC(A_DESC, 0, 16, F_WRITE, 0)
	KICK(0)
	MOVL $16, DX
	CALL ·hexpect(SB)
	MOVL ·hFailed(SB), AX
	TESTL AX, AX
	JNE ramend
	PRINT(·hPrefix)
	PRINTCUR
	PRINT(·hRAMOK)
ramend:
	// ... but not 32 bytes from there.
	BEGIN(·nRAMEnd)
	MOVL ·hRAMEnd(SB), AX
	SUBL $16, AX
	XORL DX, DX
	DESC(A_DESC, 0, 32, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// The device's own registers as an entropy buffer.
	BEGIN(·nMMIOBuf)
	ABS(BLK_BASE, 0)
	DESC(A_DESC, 0, 0x200, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// The buffer's address plus 4 GiB: valid if truncated to 32 bits.
	BEGIN(·nAbove4G)
	AT(A_BUF)
	MOVL $1, DX
	DESC(A_DESC, 0, 64, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nLenMax)
	AT(A_BUF)
	DESC(A_DESC, 0, 0xffffffff, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// 0xfffffffffffff000 + 0x2000 wraps to 0x1000.
	BEGIN(·nLenWrap)
	ABS(0xfffff000, 0xffffffff)
	DESC(A_DESC, 0, 0x2000, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// Indirect tables.
	BEGIN(·nIndOutside)
	ABS(0x40000000, 0)
	DESC(A_DESC, 0, 32, F_INDIRECT, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nIndLen)
	AT(A_BUF)
	DESC(A_IND, 0, 16, F_WRITE+F_NEXT, 1)
	AT(A_BUF+16)
	DESC(A_IND, 1, 16, F_WRITE, 0)
	AT(A_IND)
	DESC(A_DESC, 0, 24, F_INDIRECT, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nIndLoop)
	AT(A_BUF)
	DESC(A_IND, 0, 16, F_WRITE+F_NEXT, 1)
	AT(A_BUF+16)
	DESC(A_IND, 1, 16, F_WRITE+F_NEXT, 0)
	AT(A_IND)
	DESC(A_DESC, 0, 32, F_INDIRECT, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// An indirect table whose entry is itself.
	BEGIN(·nIndNested)
	AT(A_IND)
	DESC(A_IND, 0, 16, F_INDIRECT, 0)
	DESC(A_DESC, 0, 16, F_INDIRECT, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nIndNext)
	AT(A_BUF)
	DESC(A_IND, 0, 16, F_WRITE, 0)
	DESC(A_DESC, 1, 16, F_WRITE, 0)
	AT(A_IND)
	DESC(A_DESC, 0, 16, F_INDIRECT+F_NEXT, 1)
	KICK(0)
	CALL ·hcaught(SB)

	// The available index QSZ+5 ahead.
	BEGIN(·nAvailJump)
	AT(A_BUF)
	DESC(A_DESC, 0, 16, F_WRITE, 0)
	MOVW $(QSZ+5), (A_AVAIL+2)(DI)
	MOVL $0, R_NOTIFY(BX)
	CALL ·hcaught(SB)

	BEGIN(·nHeadRange)
	KICK(0x1234)
	CALL ·hcaught(SB)

	// Entropy requests must be device-writable.
	BEGIN(·nReadable)
	AT(A_BUF)
	DESC(A_DESC, 0, 64, 0, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nReadAfter)
	AT(A_BUF)
	DESC(A_DESC, 0, 16, F_WRITE+F_NEXT, 1)
	AT(A_BUF+16)
	DESC(A_DESC, 1, 16, 0, 0)
	KICK(0)
	CALL ·hcaught(SB)

	// Bad rings, refused at QueueReady.
	STEP(·nRingOutside)
	CALL ·hsetup(SB)
	MOVL $0x40000000, R_DESCLO(BX)
	MOVL $1, R_QREADY(BX)
	CALL ·hringcaught(SB)

	// The used ring over the device's own registers.
	STEP(·nRingMMIO)
	CALL ·hsetup(SB)
	MOVL $RNG_BASE, R_DEVICELO(BX)
	MOVL $1, R_QREADY(BX)
	CALL ·hringcaught(SB)

	// The available ring 4 GiB above where it really is.
	STEP(·nRingAbove4G)
	CALL ·hsetup(SB)
	MOVL $1, R_DRIVERHI(BX)
	MOVL $1, R_QREADY(BX)
	CALL ·hringcaught(SB)

	STEP(·nQueueSize)
	CALL ·hsetup(SB)
	MOVL $3, R_QNUM(BX)
	MOVL $1, R_QREADY(BX)
	CALL ·hringcaught(SB)

	STEP(·nQueueMax)
	CALL ·hsetup(SB)
	MOVL $0x8000, R_QNUM(BX)
	MOVL $1, R_QREADY(BX)
	CALL ·hringcaught(SB)

	// --- virtio-blk ---
	MOVL $BLK_BASE, BX

	// Reads and writes outside the disk: IOERR, the device stays live.
	BEGIN(·nBlkSector)
	MOVL $0, AX                     // VIRTIO_BLK_T_IN
	MOVL $0xffffffff, CX
	MOVL $0xffffffff, DX
	MOVL $F_WRITE, SI
	CALL ·hblkreq(SB)
	MOVL $0, DX                     // a failed read: nothing written
	CALL ·hioerr(SB)

	BEGIN(·nBlkHighSector)
	MOVL $1, AX                     // VIRTIO_BLK_T_OUT
	MOVL $7, CX
	MOVL $1, DX
	MOVL $0, SI
	CALL ·hblkreq(SB)
	MOVL $1, DX                     // a write: the status byte
	CALL ·hioerr(SB)

	BEGIN(·nBlkPastEnd)
	MOVL $1, AX
	MOVL $BLK_CAPACITY, CX
	MOVL $0, DX
	MOVL $0, SI
	CALL ·hblkreq(SB)
	MOVL $1, DX                     // a write: the status byte
	CALL ·hioerr(SB)

	// Unanswerable requests.
	BEGIN(·nBlkShortHdr)
	AT(A_HDR)
	DESC(A_DESC, 0, 8, F_NEXT, 1)
	AT(A_STAT)
	DESC(A_DESC, 1, 1, F_WRITE, 0)
	KICK(0)
	CALL ·hcaught(SB)

	BEGIN(·nBlkNoStatus)
	AT(A_HDR)
	DESC(A_DESC, 0, 16, 0, 0)
	KICK(0)
	CALL ·hcaught(SB)

	MOVL ·hFailed(SB), AX
	TESTL AX, AX
	JNE failed
	PRINT(·hDone)
	EXIT(0)
failed:
	PRINT(·hBad)
	EXIT(1)

// hprobe checks that BX is a virtio-mmio device with device ID AX.
TEXT ·hprobe(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL AX, DX
	MOVL R_MAGIC(BX), AX
	CMPL AX, $MMIO_MAGIC
	JNE bad
	MOVL R_DEVID(BX), AX
	CMPL AX, DX
	JEQ done
bad:
	FAIL(·mProbe)
done:
	POPAL
	RET

// hsetup resets the device at BX, clears the area, negotiates VERSION_1
// and INDIRECT_DESC and configures queue 0 (QSZ entries, rings in the
// area) without enabling it.
TEXT ·hsetup(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL $0, R_STATUS(BX)
	PUSHL DI
	XORL AX, AX
	MOVL $(A_SIZE/4), CX
	CLD
	REP; STOSL
	POPL DI
	MOVL $S_ACK, R_STATUS(BX)
	MOVL $(S_ACK+S_DRIVER), R_STATUS(BX)
	MOVL $1, R_DRVFEATSEL(BX)
	MOVL $1, R_DRVFEAT(BX)          // VIRTIO_F_VERSION_1 (bit 32)
	MOVL $0, R_DRVFEATSEL(BX)
	MOVL $0x10000000, R_DRVFEAT(BX) // VIRTIO_F_INDIRECT_DESC (bit 28)
	MOVL $S_NEGOTIATED, R_STATUS(BX)
	MOVL R_STATUS(BX), AX
	CMPL AX, $S_NEGOTIATED
	JEQ featok
	FAIL(·mFeat)
featok:
	MOVL $0, R_QSEL(BX)
	MOVL $QSZ, R_QNUM(BX)
	LEAL A_DESC(DI), AX
	MOVL AX, R_DESCLO(BX)
	MOVL $0, R_DESCHI(BX)
	LEAL A_AVAIL(DI), AX
	MOVL AX, R_DRIVERLO(BX)
	MOVL $0, R_DRIVERHI(BX)
	LEAL A_USED(DI), AX
	MOVL AX, R_DEVICELO(BX)
	MOVL $0, R_DEVICEHI(BX)
	POPAL
	RET

// hready enables queue 0 and sets DRIVER_OK.
TEXT ·hready(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL $1, R_QREADY(BX)
	MOVL $S_LIVE, R_STATUS(BX)
	MOVL R_STATUS(BX), AX
	CMPL AX, $S_LIVE
	JEQ ok
	FAIL(·mReady)
ok:
	POPAL
	RET

// hkick puts head AX in the next available-ring slot, publishes it and
// notifies queue 0.
TEXT ·hkick(SB), NOSPLIT, $0-0
	PUSHAL
	MOVWLZX (A_AVAIL+2)(DI), CX
	MOVL CX, DX
	ANDL $(QSZ-1), DX
	MOVW AX, (A_AVAIL+4)(DI)(DX*2)
	ADDL $1, CX
	MOVW CX, (A_AVAIL+2)(DI)
	MOVL $0, R_NOTIFY(BX)
	POPAL
	RET

// hfail reports a failed check of the current step: the Go string at SI
// and the value AX.
TEXT ·hfail(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL $1, ·hFailed(SB)
	MOVL SI, BP
	PRINT(·hFail)
	PRINTCUR
	PRINT(·hColon)
	MOVL 4(BP), CX
	MOVL 0(BP), SI
	CALL ·write(SB)
	PRINT(·hValue)
	CALL ·puthex(SB)
	PRINT(·newline)
	POPAL
	RET

// hcaught checks that the device at BX needs a reset and completed
// nothing, says so, and checks that it works again after a reset.
TEXT ·hcaught(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL R_STATUS(BX), AX
	TESTL $S_NEEDSRESET, AX
	JNE caught
	FAIL(·mNotCaught)
	JMP recover
caught:
	MOVWLZX (A_USED+2)(DI), AX
	TESTL AX, AX
	JEQ clean
	FAIL(·mUsed)
	JMP recover
clean:
	PRINT(·hPrefix)
	PRINTCUR
	PRINT(·hCaught)
recover:
	CMPL BX, $RNG_BASE
	JNE blk
	CALL ·hrngok(SB)
	JMP done
blk:
	CALL ·hblkok(SB)
done:
	POPAL
	RET

// hringcaught is hcaught for a queue refused at QueueReady: QueueReady
// must read 0.
TEXT ·hringcaught(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL R_QREADY(BX), AX
	TESTL AX, AX
	JEQ ok
	FAIL(·mQReady)
ok:
	CALL ·hcaught(SB)
	POPAL
	RET

// hexpect checks that the device at BX is live and completed one
// request, head 0, with used length DX.
TEXT ·hexpect(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL R_STATUS(BX), AX
	CMPL AX, $S_LIVE
	JEQ st
	FAIL(·mStatus)
	JMP out
st:
	MOVWLZX (A_USED+2)(DI), AX
	CMPL AX, $1
	JEQ idx
	FAIL(·mUsedIdx)
	JMP out
idx:
	MOVL (A_USED+4)(DI), AX
	TESTL AX, AX
	JEQ id
	FAIL(·mUsedID)
	JMP out
id:
	MOVL (A_USED+8)(DI), AX
	CMPL AX, DX
	JEQ out
	FAIL(·mUsedLen)
out:
	POPAL
	RET

// hrngok resets the rng at BX, asks it for 64 bytes and checks that it
// gave them.
TEXT ·hrngok(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL ·hFailed(SB), BP
	MOVL $0, ·hFailed(SB)
	CALL ·hsetup(SB)
	CALL ·hready(SB)
	AT(A_BUF)
	DESC(A_DESC, 0, 64, F_WRITE, 0)
	KICK(0)
	MOVL $64, DX
	CALL ·hexpect(SB)
	// 64 random bytes are not all zero (the area was cleared).
	LEAL A_BUF(DI), SI
	MOVL $16, CX
	XORL AX, AX
or:
	ORL 0(SI), AX
	ADDL $4, SI
	SUBL $1, CX
	JNE or
	TESTL AX, AX
	JNE filled
	FAIL(·mRngZero)
filled:
	MOVL ·hFailed(SB), AX
	ORL AX, BP
	MOVL BP, ·hFailed(SB)
	TESTL AX, AX
	JNE out
	PRINT(·hPrefix)
	PRINTCUR
	PRINT(·hRngWorks)
out:
	POPAL
	RET

// hblkreq posts a request to the blk at BX: type AX, sector DX:CX, 512
// bytes of data at A_BUF in a descriptor with flags SI (F_WRITE for a
// read), the status byte at A_STAT (set to 0xff first).
TEXT ·hblkreq(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL AX, (A_HDR+0)(DI)
	MOVL $0, (A_HDR+4)(DI)
	MOVL CX, (A_HDR+8)(DI)
	MOVL DX, (A_HDR+12)(DI)
	MOVB $0xff, A_STAT(DI)
	MOVL SI, BP
	ADDL $F_NEXT, BP
	AT(A_HDR)
	DESC(A_DESC, 0, 16, F_NEXT, 1)
	AT(A_BUF)
	MOVL AX, (A_DESC+16)(DI)
	MOVL DX, (A_DESC+20)(DI)
	MOVL $512, (A_DESC+24)(DI)
	MOVW BP, (A_DESC+28)(DI)
	MOVW $2, (A_DESC+30)(DI)
	AT(A_STAT)
	DESC(A_DESC, 2, 1, F_WRITE, 0)
	KICK(0)
	POPAL
	RET

// hblkok resets the blk at BX, writes a pattern to sector 7, reads it
// back and compares.
TEXT ·hblkok(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL ·hFailed(SB), BP
	MOVL $0, ·hFailed(SB)
	PUSHL BP
	CALL ·hsetup(SB)
	CALL ·hready(SB)
	LEAL A_BUF(DI), SI
	XORL CX, CX
fill:
	LEAL 0x6a750000(CX), AX
	MOVL AX, (SI)(CX*4)
	ADDL $1, CX
	CMPL CX, $128
	JNE fill
	MOVL $1, AX                     // VIRTIO_BLK_T_OUT
	MOVL $7, CX
	XORL DX, DX
	XORL SI, SI
	CALL ·hblkreq(SB)
	MOVL $1, DX                     // the status byte
	CALL ·hexpect(SB)
	MOVBLZX A_STAT(DI), AX
	TESTL AX, AX
	JEQ wrote
	FAIL(·mBlkStatus)
wrote:
	// Clear the buffer, read the sector into it.
	PUSHL DI
	LEAL A_BUF(DI), DI
	XORL AX, AX
	MOVL $128, CX
	CLD
	REP; STOSL
	POPL DI
	MOVL $0, AX                     // VIRTIO_BLK_T_IN
	MOVL $7, CX
	XORL DX, DX
	MOVL $F_WRITE, SI
	CALL ·hblkreq(SB)
	MOVBLZX A_STAT(DI), AX
	TESTL AX, AX
	JEQ read
	FAIL(·mBlkStatus)
read:
	MOVWLZX (A_USED+2)(DI), AX
	CMPL AX, $2
	JEQ idx
	FAIL(·mUsedIdx)
idx:
	MOVL (A_USED+16)(DI), AX        // used ring[1].len: 512 + the status
	CMPL AX, $513
	JEQ cmp
	FAIL(·mUsedLen)
cmp:
	LEAL A_BUF(DI), SI
	XORL CX, CX
check:
	LEAL 0x6a750000(CX), AX
	CMPL AX, (SI)(CX*4)
	JEQ same
	MOVL CX, AX
	FAIL(·mBlkData)
	JMP checked
same:
	ADDL $1, CX
	CMPL CX, $128
	JNE check
checked:
	POPL BP
	MOVL ·hFailed(SB), AX
	ORL AX, BP
	MOVL BP, ·hFailed(SB)
	TESTL AX, AX
	JNE out
	PRINT(·hPrefix)
	PRINTCUR
	PRINT(·hBlkWorks)
out:
	POPAL
	RET

// hioerr checks that the blk at BX answered the one request posted with
// VIRTIO_BLK_S_IOERR and used length DX (the status byte counts only
// when all the data before it was written) and stays live, then checks a
// good request.
TEXT ·hioerr(SB), NOSPLIT, $0-0
	PUSHAL
	MOVL ·hFailed(SB), BP
	MOVL $0, ·hFailed(SB)
	CALL ·hexpect(SB)
	MOVBLZX A_STAT(DI), AX
	CMPL AX, $1
	JEQ ioerr
	FAIL(·mBlkStatus)
ioerr:
	MOVL ·hFailed(SB), AX
	ORL AX, BP
	MOVL BP, ·hFailed(SB)
	TESTL AX, AX
	JNE out
	PRINT(·hPrefix)
	PRINTCUR
	PRINT(·hIOErr)
out:
	CALL ·hblkok(SB)
	POPAL
	RET
