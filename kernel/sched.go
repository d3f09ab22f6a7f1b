package kernel

import "juice/cpu"

// Threads. Each Linux thread the Go runtime creates (an M) is a kernel
// thread here: a saved Frame, an FXSAVE area and an FS base. The kernel
// itself has no per-thread stack: a system call or an interrupt saves the
// thread's state into its slot, runs to completion on the CPU's kernel
// stack, and resumes whichever thread is current afterwards. A "blocking"
// system call just marks the thread blocked with the result it will return.

const maxThreads = 64

type threadState uint8

const (
	tFree threadState = iota
	tRunnable
	tFutex // waiting on waitKey
	tSleep // nanosleep until deadline
	tEpoll // epoll_pwait on epoll fd waitKey
	tDead
)

type thread struct {
	frame    Frame
	fx       [512 + 16]byte
	fsbase   uint64
	state    threadState
	tid      int32
	waitKey  uint64 // futex address or epoll fd
	deadline uint64 // TSC at which a blocked thread times out; 0 = never
	timeout  int64  // what the blocked call returns on timeout
	evBuf    uint64 // epoll_pwait: events buffer
	evMax    int32  // epoll_pwait: buffer entries
	cpuTSC   uint64 // TSC ticks spent running
	runSince uint64 // TSC when last resumed
}

var (
	threads  [maxThreads]thread
	lastTID  int32
	nThreads int32

	// quantum is a time slice in TSC ticks, set once the TSC is calibrated.
	quantum uint64
	// needResched asks schedule to rotate to another runnable thread.
	needResched bool
)

// newThread claims a free slot. Kernel context.
//
//go:nosplit
func newThread() (int32, bool) {
	for i := int32(0); i < maxThreads; i++ {
		if threads[i].state == tFree || threads[i].state == tDead {
			t := &threads[i]
			t.state = tRunnable
			lastTID++
			t.tid = lastTID
			t.deadline = 0
			t.cpuTSC = 0
			nThreads++
			return i, true
		}
	}
	return 0, false
}

// block puts the current thread to sleep in state st. ret is what the
// system call returns if it is woken normally (futex wake, eventfd), tmo
// what it returns if the deadline passes first. Kernel context.
//
//go:nosplit
func block(t *thread, st threadState, key uint64, deadline uint64, ret, tmo int64) {
	t.state = st
	t.waitKey = key
	t.deadline = deadline
	t.frame.RAX = uint64(ret)
	t.timeout = tmo
}

// wake makes a blocked thread runnable, returning ret from its call.
//
//go:nosplit
func wake(t *thread, ret int64) {
	t.state = tRunnable
	t.deadline = 0
	t.frame.RAX = uint64(ret)
}

// expire wakes every blocked thread whose deadline has passed and returns
// the earliest deadline still pending (0: none). Kernel context.
//
//go:nosplit
func expire(now uint64) uint64 {
	next := uint64(0)
	for i := range threads {
		t := &threads[i]
		if t.state < tFutex || t.state > tEpoll || t.deadline == 0 {
			continue
		}
		if t.deadline <= now {
			wake(t, t.timeout)
			continue
		}
		if next == 0 || t.deadline < next {
			next = t.deadline
		}
	}
	return next
}

// schedule picks the thread to resume after a kernel entry, idling the CPU
// while none is runnable, and arms the timer for the next deadline or the
// end of the time slice. Kernel context: bounded by maxThreads per pass;
// the idle loop halts the CPU between interrupts.
//
//go:nosplit
func schedule() {
	c := &cpu0
	cur := c.cur
	now := cpu.RDTSC()
	// Account CPU time of the thread leaving the CPU (or continuing).
	t := &threads[cur]
	if now > t.runSince {
		t.cpuTSC += now - t.runSince
	}
	for {
		next := expire(now)
		pick := int32(-1)
		// Round-robin: start after the current thread when asked to rotate.
		start := cur
		if needResched || threads[cur].state != tRunnable {
			start = cur + 1
		}
		for k := int32(0); k < maxThreads; k++ {
			i := (start + k) % maxThreads
			if threads[i].state == tRunnable {
				pick = i
				break
			}
		}
		if pick >= 0 {
			needResched = false
			// Time slice only matters if someone else could run.
			others := false
			for i := int32(0); i < maxThreads; i++ {
				if i != pick && threads[i].state == tRunnable {
					others = true
					break
				}
			}
			if others && quantum != 0 && (next == 0 || now+quantum < next) {
				next = now + quantum
			}
			armTimer(next)
			switchTo(pick)
			threads[pick].runSince = cpu.RDTSC()
			return
		}
		// Nothing to run: sleep until an interrupt (the timer, armed for
		// the earliest deadline, or a device). With no deadline at all
		// (every thread blocked without a timeout) only a device
		// interrupt can wake the CPU.
		armTimer(next)
		cpu.StiHalt()
		now = cpu.RDTSC()
	}
}

// switchTo makes thread i current on this CPU. Kernel context.
//
//go:nosplit
func switchTo(i int32) {
	c := &cpu0
	if i == c.cur && c.frame != 0 {
		return
	}
	c.cur = i
	t := &threads[i]
	c.frame = frameAddr(t)
	c.fx = fxAddr(t)
	cpu.WRMSR(msrFSBase, t.fsbase)
}
