package kernel

import (
	"sync/atomic"

	"juice/cpu"
	"juice/mm"
)

// The Linux system-call personality. The Go runtime is a static linux/amd64
// program; every call it makes lands in sysDispatch with the thread's frame.
// Each call is implemented, or refused on purpose with the errno Linux would
// give, or (for a number juice has never seen the runtime use) reported
// with its number and caller PC before juice halts.

// Linux system-call numbers juice serves.
const (
	sysRead             = 0
	sysWrite            = 1
	sysOpen             = 2
	sysClose            = 3
	sysFstat            = 5
	sysMmap             = 9
	sysMprotect         = 10
	sysMunmap           = 11
	sysRtSigaction      = 13
	sysRtSigprocmask    = 14
	sysRtSigreturn      = 15
	sysIoctl            = 16
	sysPread64          = 17
	sysSchedYield       = 24
	sysMincore          = 27
	sysMadvise          = 28
	sysNanosleep        = 35
	sysGetpid           = 39
	sysClone            = 56
	sysExit             = 60
	sysKill             = 62
	sysUname            = 63
	sysFcntl            = 72
	sysGetrlimit        = 97
	sysSigaltstack      = 131
	sysPrctl            = 157
	sysArchPrctl        = 158
	sysGettid           = 186
	sysTkill            = 200
	sysFutex            = 202
	sysSchedSetaff      = 203
	sysSchedGetaffinity = 204
	sysEpollCreate      = 213
	sysClockGettime     = 228
	sysClockGetres      = 229
	sysExitGroup        = 231
	sysEpollWait        = 232
	sysEpollCtl         = 233
	sysTgkill           = 234
	sysOpenat           = 257
	sysNewfstatat       = 262
	sysReadlinkat       = 267
	sysEpollPwait       = 281
	sysEventfd2         = 290
	sysEpollCreate1     = 291
	sysPipe2            = 293
	sysPrlimit64        = 302
	sysGetrandom        = 318
	sysRseq             = 334
)

// Linux errno values.
const (
	ePERM     = 1
	eNOENT    = 2
	eSRCH     = 3
	eINTR     = 4
	eBADF     = 9
	eAGAIN    = 11
	eNOMEM    = 12
	eFAULT    = 14
	eEXIST    = 17
	eINVAL    = 22
	eNOSYS    = 38
	eTIMEDOUT = 110
)

// Counters for the self-test and the footprint report.
var syscallCount [512]uint64

// sysDispatch serves the system call in t's frame, leaving the result in
// RAX (or blocking the thread). Kernel context: nosplit, allocation-free.
//
//go:nosplit
func sysDispatch(c *perCPU, t *thread) {
	f := &t.frame
	nr := f.RAX
	a0, a1, a2, a3, a4 := f.RDI, f.RSI, f.RDX, f.R10, f.R8
	if nr < uint64(len(syscallCount)) {
		syscallCount[nr]++
	}
	var r int64
	switch nr {
	case sysWrite:
		r = sysWriteFD(int64(a0), a1, a2)
	case sysRead:
		r = sysReadFD(int64(a0), a1, a2)
	case sysClose:
		r = fdClose(int64(a0))
	case sysOpen, sysOpenat, sysNewfstatat, sysReadlinkat:
		// juice has no file system: every path is absent. The runtime's
		// probes (transparent huge pages, cgroups, /dev/urandom) cope.
		r = -eNOENT
	case sysFstat, sysPread64, sysIoctl:
		r = -eBADF
	case sysMmap, sysMunmap, sysMadvise, sysMprotect:
		r = sysMemory(c, nr, a0, a1, a2, a3)
	case sysMincore:
		r = -eNOSYS
	case sysRtSigaction:
		// No signals are ever delivered (GODEBUG=asyncpreemptoff=1), so a
		// handler is accepted and recorded nowhere; the old one reads as
		// SIG_DFL.
		r = zeroOut(a2, 32)
	case sysRtSigprocmask:
		r = zeroOut(a2, 8)
	case sysSigaltstack:
		r = sysSigaltstackOld(a1)
	case sysRtSigreturn:
		r = -eNOSYS
	case sysKill, sysTkill, sysTgkill:
		// Signals are not delivered: asynchronous preemption is off, and a
		// crashing runtime calls exit_group right after raising one.
		r = 0
	case sysSchedYield:
		atomic.StoreUint32(&c.resched, 1)
		r = 0
	case sysNanosleep:
		r = sysNanosleepTS(c, t, a0)
	case sysGetpid:
		r = 1
	case sysGettid:
		r = int64(t.tid)
	case sysClone:
		r = sysCloneThread(t, a0, a1, a4)
	case sysExit:
		t.state = tDead
		nThreads--
		r = 0
	case sysExitGroup:
		exitGroup(int64(int32(a0)))
	case sysArchPrctl:
		r = sysArchPrctlFS(t, a0, a1)
	case sysPrctl:
		r = -eINVAL
	case sysFcntl:
		r = sysFcntlFD(int64(a0), a1)
	case sysFutex:
		r = sysFutexOp(t, a0, a1, a2, a3)
	case sysSchedGetaffinity:
		r = sysGetaffinity(t, a0, a1, a2)
	case sysSchedSetaff:
		r = sysSetaffinity(c, t, a0, a1, a2)
	case sysClockGettime:
		r = sysClockGettimeTS(t, a0, a1)
	case sysClockGetres:
		r = sysClockGetresTS(a1)
	case sysEpollCreate, sysEpollCreate1:
		r = fdNew(fdEpoll)
	case sysEventfd2:
		r = fdNew(fdEventfd)
		if r >= 0 {
			fds[r].counter = a0
		}
	case sysEpollCtl:
		r = epollCtl(int64(a0), a1, int64(a2), a3)
	case sysEpollWait, sysEpollPwait:
		r = epollWait(t, int64(a0), a1, int64(int32(a2)), int64(int32(a3)))
	case sysPipe2:
		r = -eNOSYS
	case sysPrlimit64:
		r = sysPrlimit(a2, a3)
	case sysGetrlimit:
		r = sysPrlimit(0, a1)
	case sysGetrandom:
		r = sysGetrandomBuf(a0, a1)
	case sysUname, sysRseq:
		r = -eNOSYS
	default:
		unknownSyscall(nr, f.RIP)
	}
	_ = a4
	if t.state == tRunnable {
		f.RAX = uint64(r)
	}
}

// unknownSyscall reports a call juice does not know and halts. Kernel
// context.
//
//go:nosplit
func unknownSyscall(nr, pc uint64) {
	fatalBegin()
	kputs("unknown system call ")
	kputDec(int64(nr))
	kputs(" from PC ")
	kputHex(pc)
	fatalEnd()
}

// checkUser makes [va, va+n) safe for the kernel to touch on the thread's
// behalf: inside the identity-mapped kernel image and RAM, or inside the
// runtime's mappings (faulting their pages in now). Kernel context.
//
//go:nosplit
func checkUser(va, n uint64, write bool) bool {
	if n == 0 {
		return true
	}
	end := va + n
	if end < va {
		return false
	}
	ok := false
	mmLock.lockRecursive()
	if va >= imageBase && end <= imageEnd {
		ok = true
		for pg := va &^ 4095; pg < end; pg += 4096 {
			if inLazy(pg) && !lazyBack(pg) {
				ok = false
				break
			}
		}
	} else if va >= mm.UserBase && end <= mm.UserTop {
		ok = space.Touch(va, n, write) == mm.FaultFixed
	}
	mmLock.unlock()
	return ok
}

//go:nosplit
func zeroOut(va, n uint64) int64 {
	if va == 0 {
		return 0
	}
	if !checkUser(va, n, true) {
		return -eFAULT
	}
	clear(userBytes(va, n))
	return 0
}

//go:nosplit
func sysSigaltstackOld(old uint64) int64 {
	if old == 0 {
		return 0
	}
	if !checkUser(old, 24, true) {
		return -eFAULT
	}
	*userU64(old) = 0
	*userU32(old + 8) = 2 // SS_DISABLE
	*userU64(old + 16) = 0
	return 0
}

//go:nosplit
func sysArchPrctlFS(t *thread, code, addr uint64) int64 {
	switch code {
	case 0x1002: // ARCH_SET_FS
		t.fsbase = addr
		cpu.WRMSR(msrFSBase, addr)
		return 0
	case 0x1003: // ARCH_GET_FS
		if !checkUser(addr, 8, true) {
			return -eFAULT
		}
		*userU64(addr) = t.fsbase
		return 0
	}
	return -eINVAL
}

//go:nosplit
func sysFcntlFD(fd int64, cmd uint64) int64 {
	if fd < 0 || fd >= int64(len(fds)) || fds[fd].kind == fdNone {
		return -eBADF
	}
	switch cmd {
	case 1: // F_GETFD
		return 0
	case 2: // F_SETFD
		return 0
	case 3: // F_GETFL
		return 2 // O_RDWR
	case 4: // F_SETFL
		return 0
	}
	return -eINVAL
}

// sysGetaffinity reports the thread's CPU mask: the CPUs juice runs on,
// or those sched_setaffinity narrowed it to. The runtime sizes GOMAXPROCS
// from it.
//
//go:nosplit
func sysGetaffinity(t *thread, pid, size, mask uint64) int64 {
	if pid != 0 && pid != uint64(t.tid) {
		return -eSRCH
	}
	if size < 8 {
		return -eINVAL
	}
	if !checkUser(mask, 8, true) {
		return -eFAULT
	}
	m := atomic.LoadUint64(&onlineMask)
	if t.affinity != 0 {
		m &= t.affinity
	}
	*userU64(mask) = m
	return 8
}

// sysSetaffinity restricts the calling thread to the CPUs in the mask
// (those that are online); it moves at once if its CPU is not among them.
// Only the caller itself may be named.
//
//go:nosplit
func sysSetaffinity(c *perCPU, t *thread, pid, size, mask uint64) int64 {
	if pid != 0 && pid != uint64(t.tid) {
		return -eSRCH
	}
	if size == 0 {
		return -eINVAL
	}
	if size > 8 {
		size = 8
	}
	if !checkUser(mask, size, false) {
		return -eFAULT
	}
	var m uint64
	for i, b := range userBytes(mask, size) {
		m |= uint64(b) << (8 * i)
	}
	m &= atomic.LoadUint64(&onlineMask)
	if m == 0 {
		return -eINVAL
	}
	t.affinity = m
	if m&(1<<uint(c.id)) == 0 {
		atomic.StoreUint32(&c.resched, 1)
	}
	return 0
}

// sysMemory serves mmap, munmap, madvise and mprotect under mmLock, and
// makes the other CPUs flush their TLBs when translations went away or
// lost rights (tlbShootdown) before the call returns.
//
//go:nosplit
func sysMemory(c *perCPU, nr, a0, a1, a2, a3 uint64) int64 {
	mmLock.lockRecursive()
	pages, tables := space.Committed(), kpt.TableFrames()
	var r int64
	shoot := false
	switch nr {
	case sysMmap:
		v, e := space.Mmap(a0, a1, a2, a3)
		if e != 0 {
			r = -int64(e)
		} else {
			r = int64(v)
		}
	case sysMunmap:
		r = -int64(space.Munmap(a0, a1))
	case sysMadvise:
		r = -int64(space.Madvise(a0, a1, a2))
	case sysMprotect:
		r = -int64(space.Mprotect(a0, a1, a2))
		shoot = r == 0
	}
	if shoot || space.Committed() < pages || kpt.TableFrames() < tables {
		tlbShootdown(c)
	}
	mmLock.unlock()
	return r
}

//go:nosplit
func sysPrlimit(newp, oldp uint64) int64 {
	if oldp != 0 {
		if !checkUser(oldp, 16, true) {
			return -eFAULT
		}
		*userU64(oldp) = 1024
		*userU64(oldp + 8) = 4096
	}
	return 0
}

// sysCloneThread creates a thread the way the runtime's newosproc asks:
// CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|CLONE_THREAD
// plus CLONE_SETTLS. The child resumes at the same instruction with RAX=0,
// RSP=stack and every other register as the parent had it.
//
//go:nosplit
func sysCloneThread(t *thread, flags, stack, tls uint64) int64 {
	const need = 0x100 | 0x10000 // CLONE_VM | CLONE_THREAD
	if flags&need != need {
		return -eINVAL
	}
	i, ok := newThread()
	if !ok {
		return -eAGAIN
	}
	c := &threads[i]
	c.frame = t.frame
	c.fx = t.fx
	c.frame.RAX = 0
	c.frame.RSP = stack
	c.fsbase = t.fsbase
	if flags&0x80000 != 0 { // CLONE_SETTLS
		c.fsbase = tls
	}
	return int64(c.tid)
}

// Futexes: a waiter sleeps on the address itself. Only the private
// WAIT/WAKE operations the runtime uses exist.
//
//go:nosplit
func sysFutexOp(t *thread, addr, op, val, tsp uint64) int64 {
	switch op &^ 128 { // FUTEX_PRIVATE_FLAG
	case 0: // FUTEX_WAIT
		if addr&3 != 0 || !checkUser(addr, 4, false) {
			return -eFAULT
		}
		if *userU32(addr) != uint32(val) {
			return -eAGAIN
		}
		dl := uint64(0)
		if tsp != 0 {
			ns, ok := readTimespec(tsp)
			if !ok {
				return -eFAULT
			}
			if ns < 0 {
				return -eINVAL
			}
			dl = deadlineAfter(uint64(ns))
		}
		block(t, tFutex, addr, dl, 0, -eTIMEDOUT)
		return 0
	case 1: // FUTEX_WAKE
		n := int64(0)
		for i := range threads {
			w := &threads[i]
			if int64(n) >= int64(val) {
				break
			}
			if w.state == tFutex && w.waitKey == addr {
				wake(w, 0)
				n++
			}
		}
		return n
	}
	return -eNOSYS
}

// readTimespec reads a struct timespec as nanoseconds.
//
//go:nosplit
func readTimespec(va uint64) (int64, bool) {
	if !checkUser(va, 16, false) {
		return 0, false
	}
	sec := int64(*userU64(va))
	nsec := int64(*userU64(va + 8))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return -1, true
	}
	if sec > 1<<32 {
		sec = 1 << 32
	}
	return sec*1e9 + nsec, true
}

//go:nosplit
func sysNanosleepTS(c *perCPU, t *thread, req uint64) int64 {
	ns, ok := readTimespec(req)
	if !ok {
		return -eFAULT
	}
	if ns < 0 {
		return -eINVAL
	}
	if ns == 0 {
		atomic.StoreUint32(&c.resched, 1)
		return 0
	}
	block(t, tSleep, 0, deadlineAfter(uint64(ns)), 0, 0)
	return 0
}

//go:nosplit
func sysClockGettimeTS(t *thread, clk, tsp uint64) int64 {
	if !checkUser(tsp, 16, true) {
		return -eFAULT
	}
	var ns int64
	switch clk {
	case 0, 5: // REALTIME, REALTIME_COARSE
		ns = realBase + int64(nanotime())
	case 1, 4, 6, 7: // MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE, BOOTTIME
		ns = int64(nanotime())
	case 2, 3: // PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID
		now := cpu.RDTSC()
		d := t.cpuTSC
		if now > t.runSince {
			d += now - t.runSince
		}
		ns = int64(ticksToNs(d))
	default:
		return -eINVAL
	}
	*userU64(tsp) = uint64(ns / 1e9)
	*userU64(tsp + 8) = uint64(ns % 1e9)
	return 0
}

//go:nosplit
func sysClockGetresTS(tsp uint64) int64 {
	if tsp == 0 {
		return 0
	}
	if !checkUser(tsp, 16, true) {
		return -eFAULT
	}
	*userU64(tsp) = 0
	*userU64(tsp + 8) = 1
	return 0
}

// sysGetrandomBuf fills the buffer from RDSEED, falling back to RDRAND per
// word; both are hardware entropy sources, and juice refuses to boot on a
// CPU with neither. At most 64 KiB per call (Linux may also return short).
//
//go:nosplit
func sysGetrandomBuf(buf, n uint64) int64 {
	if n > 64<<10 {
		n = 64 << 10
	}
	if !checkUser(buf, n, true) {
		return -eFAULT
	}
	b := userBytes(buf, n)
	for i := uint64(0); i < n; i += 8 {
		v, ok := hwRandom()
		if !ok {
			if i == 0 {
				return -eAGAIN
			}
			return int64(i)
		}
		for j := uint64(0); j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return int64(n)
}

var hasRDSEED, hasRDRAND bool

// hwRandom returns 64 bits from the CPU's entropy source, retrying a
// bounded number of times as Intel's guidance suggests.
//
//go:nosplit
func hwRandom() (uint64, bool) {
	for try := 0; try < 64; try++ {
		if hasRDSEED {
			if v, ok := cpu.RDSEED64(); ok {
				return v, true
			}
		}
		if hasRDRAND {
			if v, ok := cpu.RDRAND64(); ok {
				return v, true
			}
		}
		cpu.Pause()
	}
	return 0, false
}
