package kernel

import (
	"math"
	"runtime/debug"
)

// The Go runtime's collector policy on juice.
//
// The runtime's GC CPU limiter turns mark assists off once the collector
// has used more than half the CPU for about a second (its 1 CPU-second
// bucket). A goroutine that allocates quickly while keeping little live
// then runs unchecked through each mark phase; what it allocates there is
// allocated black, counted as live, and doubles the next heap goal, so the
// heap jumps by tens to hundreds of MiB until juice runs out of frames
// (the self-test's GC check in a 256 MiB machine: 4x RAM allocated, 2 MiB
// live). On juice a GC cycle has a large fixed cost next to the runtime
// default's 4 MiB minimum heap: the kernel image's globals are scanned
// every cycle and each nanotime is a system call. Under QEMU TCG the check
// spent 43% of its time in the collector (a Linux guest running the same
// loop on the same QEMU: 7%) and the limiter engaged after about 2.5 s.
//
// gcPercent doubles the minimum heap (8 MiB) and the growth between
// cycles, halving the number of cycles and so the collector's share; the
// memory limit makes the runtime collect and return pages to juice before
// its footprint reaches the RAM it could get when main starts (frames that
// VMs take later are not subtracted from it). Neither stops the limiter
// itself: the runtime has no switch for it.
const gcPercent = 200

// runtimeMemoryLimit is the soft limit for the Go runtime given the frames
// free now and those already backing the runtime: all of it but a reserve
// (1/16, at least 1 MiB) for page tables and the kernel's own frames. With
// less than minLimitRAM in all it returns math.MaxInt64 (no limit): a limit
// that small would make the collector run without pause.
func runtimeMemoryLimit(free, committed uint64) int64 {
	total := free + committed
	if total < free || total < minLimitRAM {
		return math.MaxInt64
	}
	reserve := max(total/16, 1<<20)
	return int64(min(total-reserve, math.MaxInt64))
}

// minLimitRAM is the least memory runtimeMemoryLimit sets a limit for.
const minLimitRAM = 16 << 20

// tuneRuntime applies juice's collector policy. Normal Go context, once,
// from MainStarted.
func tuneRuntime() {
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(runtimeMemoryLimit(FreeRAM(), RuntimeCommitted()))
}
