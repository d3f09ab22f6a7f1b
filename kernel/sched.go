package kernel

import (
	"sync/atomic"

	"juice/cpu"
)

// Threads. Each Linux thread the Go runtime creates (an M) is a kernel
// thread here: a saved Frame, an FXSAVE area and an FS base. The kernel
// itself has no per-thread stack: a system call or an interrupt saves the
// thread's state into its slot, runs to completion on the CPU's kernel
// stack, and resumes whichever thread is current afterwards. A "blocking"
// system call just marks the thread blocked with the result it will return.
//
// Every CPU runs the same scheduler over the one thread table, under bkl. A
// runnable thread is owned by at most one CPU at a time (owner): the CPU
// running it, or none while it waits. A CPU with nothing to run releases
// the lock and halts; whoever makes a thread runnable sends an idle CPU a
// wake-up IPI (kickWaiting), so no wake-up is lost: the idle flag is set
// under the lock before the CPU halts, and an IPI that arrives before the
// HLT stays pending until STI;HLT takes it.

const maxThreads = 128

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
	owner    int32  // 1 + the CPU running (or about to run) the thread; 0: none
	affinity uint64 // CPUs it may run on (bit i: CPU i); 0: any
	waitKey  uint64 // futex address or epoll fd
	deadline uint64 // TSC at which a blocked thread times out; 0 = never
	timeout  int64  // what the blocked call returns on timeout
	evBuf    uint64 // epoll_pwait: events buffer
	evMax    int32  // epoll_pwait: buffer entries
	cpuTSC   uint64 // TSC ticks spent running
	runSince uint64 // TSC when last resumed
	readyAt  uint64 // TSC when it last became runnable without a CPU
}

var (
	threads  [maxThreads]thread
	lastTID  int32
	nThreads int32
	// threadTop is one past the highest slot ever used: the scheduler's
	// scans stop there.
	threadTop int32

	// quantum is a time slice in TSC ticks, set once the TSC is calibrated.
	quantum uint64
	// maxRunDelay is the longest a runnable thread waited for a CPU
	// (TSC ticks), a measure of wake-up latency.
	maxRunDelay uint64
)

// newThread claims a free slot. Kernel context, bkl held.
//
//go:nosplit
func newThread() (int32, bool) {
	for i := int32(0); i < maxThreads; i++ {
		t := &threads[i]
		if (t.state == tFree || t.state == tDead) && t.owner == 0 {
			t.state = tRunnable
			lastTID++
			t.tid = lastTID
			t.deadline = 0
			t.cpuTSC = 0
			t.affinity = 0
			t.readyAt = cpu.RDTSC()
			nThreads++
			if i >= threadTop {
				threadTop = i + 1
			}
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

// wake makes a blocked thread runnable, returning ret from its call. The
// scheduler pass that follows on this CPU finds it a CPU (kickWaiting).
//
//go:nosplit
func wake(t *thread, ret int64) {
	t.state = tRunnable
	t.readyAt = cpu.RDTSC()
	t.deadline = 0
	t.frame.RAX = uint64(ret)
}

// expire wakes every blocked thread whose deadline has passed and returns
// the earliest deadline still pending (0: none). Kernel context.
//
//go:nosplit
func expire(now uint64) uint64 {
	next := uint64(0)
	for i := int32(0); i < threadTop && i < maxThreads; i++ {
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

// allowedOn reports whether thread t may run on the CPU with mask bit me.
//
//go:nosplit
func allowedOn(t *thread, me uint64) bool {
	return t.affinity == 0 || t.affinity&me != 0
}

// pickThread chooses the next thread for CPU id (mask bit me) whose
// current thread is cur (-1: none), round-robin from after cur when
// rotate is set or cur cannot continue, else cur itself first. It returns
// -1 when nothing this CPU may run is runnable. Pure: it only reads the
// table.
//
//go:nosplit
func pickThread(id int32, cur int32, rotate bool, start int32, me uint64) int32 {
	n := threadTop
	if n <= 0 || n > maxThreads {
		n = maxThreads
	}
	if cur >= 0 && cur < n {
		start = cur
		t := &threads[cur]
		if rotate || t.state != tRunnable || !allowedOn(t, me) {
			start = cur + 1
		}
	}
	for k := int32(0); k < n; k++ {
		i := (start + k) % n
		if i < 0 {
			i = 0
		}
		t := &threads[i]
		if t.state == tRunnable && (t.owner == 0 || t.owner == id+1) && allowedOn(t, me) {
			return i
		}
	}
	return -1
}

// schedule picks the thread to resume on CPU c after a kernel entry,
// idling the CPU while none is runnable, and arms the timer for the next
// deadline or the end of the time slice. It is called with bkl held and
// returns with it released, c.cur set. Kernel context: bounded by the
// thread table per pass; the idle loop halts the CPU between interrupts.
//
//go:nosplit
func schedule(c *perCPU) {
	now := cpu.RDTSC()
	if c.cur >= 0 {
		// Account CPU time of the thread leaving the CPU (or continuing).
		t := &threads[c.cur]
		if now > t.runSince {
			t.cpuTSC += now - t.runSince
			atomic.AddUint64(&c.runTSC, now-t.runSince)
		}
	}
	me := uint64(1) << uint(c.id)
	for {
		next := expire(now)
		// The time slice is the current thread's since it was switched in,
		// not since its last system call: a thread that enters the kernel
		// often must not push its slice's end ahead for ever.
		rotate := atomic.LoadUint32(&c.resched) != 0 || (c.cur >= 0 && c.sliceEnd != 0 && now >= c.sliceEnd)
		pick := pickThread(c.id, c.cur, rotate, c.rr, me)
		if pick >= 0 {
			atomic.StoreUint32(&c.resched, 0)
			if pick != c.cur || c.sliceEnd == 0 || now >= c.sliceEnd {
				c.sliceEnd = now + quantum
			}
			release(c, pick)
			threads[pick].owner = c.id + 1
			// Threads still waiting: idle CPUs get them. A CPU time-slices
			// when a waiting thread could run on it, and on a machine with
			// several CPUs always: a thread woken elsewhere that only a busy
			// CPU may run is picked up at that CPU's next tick, without an
			// IPI into what is likely a guest (see kickWaiting).
			if (kickWaiting(c) || nCPUs > 1) && quantum != 0 && (next == 0 || c.sliceEnd < next) {
				next = c.sliceEnd
			}
			setTimer(c, next)
			switchTo(c, pick)
			threads[pick].runSince = cpu.RDTSC()
			bkl.unlock()
			return
		}
		// Nothing to run: sleep until an interrupt (the timer, armed for
		// the earliest deadline unless another CPU's timer covers it, a
		// wake-up IPI or a device).
		release(c, -1)
		c.sliceEnd = 0
		kickWaiting(c)
		if timerCovered(c, next) {
			next = 0
		}
		setTimer(c, next)
		atomic.StoreUint32(&c.idle, 1)
		bkl.unlock()
		cpu.StiHalt()
		bkl.lock()
		atomic.StoreUint32(&c.idle, 0)
		now = cpu.RDTSC()
	}
}

// release gives up CPU c's current thread unless it is keep.
//
//go:nosplit
func release(c *perCPU, keep int32) {
	if c.cur >= 0 && c.cur != keep {
		if t := &threads[c.cur]; t.owner == c.id+1 {
			t.owner = 0
			t.readyAt = cpu.RDTSC()
		}
		c.rr = c.cur + 1
		c.cur = -1
	}
}

// kickWaiting finds a CPU for every runnable thread no CPU owns: an idle
// CPU it may run on gets a wake-up IPI (and is claimed for that thread, so
// the next one looks further). A busy CPU gets none: it time-slices
// (schedule), so it picks the thread up at its next tick. Busy CPUs are
// left alone on purpose: they are often running a guest, and under QEMU
// 7.2's multi-threaded TCG a stream of IPIs into a CPU running a nested
// guest now and then makes QEMU lose juice's translations right after the
// #VMEXIT (juice triple-faults with intact page tables). It reports
// whether a waiting thread may run on c itself. Kernel context, bkl held;
// bounded by threads × CPUs.
//
//go:nosplit
func kickWaiting(c *perCPU) bool {
	mine := false
	me := uint64(1) << uint(c.id)
	for i := int32(0); i < threadTop && i < maxThreads; i++ {
		t := &threads[i]
		if t.state != tRunnable || t.owner != 0 {
			continue
		}
		if allowedOn(t, me) {
			mine = true
		}
		for k := int32(0); k < nCPUs && k < maxCPUs; k++ {
			o := &cpus[k]
			if o == c || atomic.LoadUint32(&o.state) != cpuOnline || !allowedOn(t, 1<<uint(k)) {
				continue
			}
			if atomic.CompareAndSwapUint32(&o.idle, 1, 0) {
				sendIPI(o, vecWake)
				break
			}
		}
	}
	return mine
}

// timerCovered reports whether another CPU's timer fires by next, so an
// idle CPU need not wake for it: that CPU runs expire after its interrupt
// and re-arms for whatever is still pending.
//
//go:nosplit
func timerCovered(c *perCPU, next uint64) bool {
	if next == 0 {
		return true
	}
	for k := int32(0); k < nCPUs && k < maxCPUs; k++ {
		o := &cpus[k]
		if o == c || atomic.LoadUint32(&o.state) != cpuOnline {
			continue
		}
		if at := atomic.LoadUint64(&o.timerAt); at != 0 && at <= next {
			return true
		}
	}
	return false
}

// setTimer arms CPU c's timer (c is the calling CPU) for TSC value tsc;
// 0 disarms it.
//
//go:nosplit
func setTimer(c *perCPU, tsc uint64) {
	atomic.StoreUint64(&c.timerAt, tsc)
	armTimer(tsc)
}

// switchTo makes thread i current on CPU c. Kernel context.
//
//go:nosplit
func switchTo(c *perCPU, i int32) {
	if i == c.cur && c.frame != 0 {
		return
	}
	c.cur = i
	atomic.AddUint64(&c.switches, 1)
	t := &threads[i]
	if now := cpu.RDTSC(); t.readyAt != 0 && now > t.readyAt {
		if d := now - t.readyAt; d > maxRunDelay {
			maxRunDelay = d
		}
	}
	c.frame = frameAddr(t)
	c.fx = fxAddr(t)
	cpu.WRMSR(msrFSBase, t.fsbase)
}
