package kernel

// File descriptors. juice has no files: fds 0-2 are the console, and the
// runtime's netpoller gets the epoll instance and the eventfd it needs to
// sleep until its next timer. Everything is in a small fixed table.

type fdKind uint8

const (
	fdNone fdKind = iota
	fdConsole
	fdEpoll
	fdEventfd
)

const maxEpollRegs = 8

type epollReg struct {
	fd     int32
	events uint32
	data   uint64
	used   bool
}

type fdEntry struct {
	kind    fdKind
	counter uint64 // eventfd
	regs    [maxEpollRegs]epollReg
}

var fds [32]fdEntry

//go:nosplit
func fdInit() {
	for i := 0; i < 3; i++ {
		fds[i].kind = fdConsole
	}
}

//go:nosplit
func fdNew(k fdKind) int64 {
	for i := 3; i < len(fds); i++ {
		if fds[i].kind == fdNone {
			fds[i] = fdEntry{kind: k}
			return int64(i)
		}
	}
	return -24 // EMFILE
}

//go:nosplit
func fdClose(fd int64) int64 {
	if fd < 0 || fd >= int64(len(fds)) || fds[fd].kind == fdNone {
		return -eBADF
	}
	if fd >= 3 {
		fds[fd] = fdEntry{}
	}
	return 0
}

// sysWriteFD writes to the console or signals an eventfd. Kernel context.
//
//go:nosplit
func sysWriteFD(fd int64, buf, n uint64) int64 {
	if fd < 0 || fd >= int64(len(fds)) {
		return -eBADF
	}
	switch fds[fd].kind {
	case fdConsole:
		if n > 1<<20 {
			n = 1 << 20
		}
		if !checkUser(buf, n, false) {
			return -eFAULT
		}
		consoleWrite(userBytes(buf, n))
		return int64(n)
	case fdEventfd:
		if n < 8 {
			return -eINVAL
		}
		if !checkUser(buf, 8, false) {
			return -eFAULT
		}
		v := *userU64(buf)
		if v == ^uint64(0) {
			return -eINVAL
		}
		fds[fd].counter += v
		eventfdReady(int32(fd))
		return 8
	}
	return -eBADF
}

// sysReadFD drains an eventfd; the console has no input yet.
//
//go:nosplit
func sysReadFD(fd int64, buf, n uint64) int64 {
	if fd < 0 || fd >= int64(len(fds)) {
		return -eBADF
	}
	switch fds[fd].kind {
	case fdEventfd:
		if n < 8 {
			return -eINVAL
		}
		if fds[fd].counter == 0 {
			return -eAGAIN // the runtime's eventfd is non-blocking
		}
		if !checkUser(buf, 8, true) {
			return -eFAULT
		}
		*userU64(buf) = fds[fd].counter
		fds[fd].counter = 0
		return 8
	case fdConsole:
		return -eAGAIN
	}
	return -eBADF
}

// epollCtl registers, changes or removes fd in epoll instance ep.
//
//go:nosplit
func epollCtl(ep int64, op uint64, fd int64, evp uint64) int64 {
	if ep < 0 || ep >= int64(len(fds)) || fds[ep].kind != fdEpoll {
		return -eBADF
	}
	if fd < 0 || fd >= int64(len(fds)) || fds[fd].kind == fdNone {
		return -eBADF
	}
	e := &fds[ep]
	var events uint32
	var data uint64
	if op != 2 { // not EPOLL_CTL_DEL
		if !checkUser(evp, 12, false) {
			return -eFAULT
		}
		events = *userU32(evp)
		data = uint64(*userU32(evp + 4)) | uint64(*userU32(evp + 8))<<32
	}
	slot := -1
	free := -1
	for i := range e.regs {
		if e.regs[i].used && e.regs[i].fd == int32(fd) {
			slot = i
		}
		if !e.regs[i].used && free < 0 {
			free = i
		}
	}
	switch op {
	case 1: // ADD
		if slot >= 0 {
			return -eEXIST
		}
		if free < 0 {
			return -eNOMEM
		}
		e.regs[free] = epollReg{fd: int32(fd), events: events, data: data, used: true}
	case 2: // DEL
		if slot < 0 {
			return -eNOENT
		}
		e.regs[slot] = epollReg{}
	case 3: // MOD
		if slot < 0 {
			return -eNOENT
		}
		e.regs[slot].events = events
		e.regs[slot].data = data
	default:
		return -eINVAL
	}
	return 0
}

// epollCollect writes ready events of instance ep to the buffer and returns
// how many. Only eventfds can be ready (EPOLLIN when their counter is
// non-zero). Kernel context.
//
//go:nosplit
func epollCollect(ep int32, buf uint64, max int32) int64 {
	e := &fds[ep]
	n := int64(0)
	for i := range e.regs {
		r := &e.regs[i]
		if !r.used || int64(n) >= int64(max) {
			continue
		}
		if fds[r.fd].kind == fdEventfd && fds[r.fd].counter != 0 && r.events&1 != 0 {
			p := buf + uint64(n)*12
			*userU32(p) = 1 // EPOLLIN
			*userU32(p + 4) = uint32(r.data)
			*userU32(p + 8) = uint32(r.data >> 32)
			n++
		}
	}
	return n
}

// epollWait returns ready events or blocks the thread until one is ready
// or the timeout (ms; -1 = forever) passes. Kernel context.
//
//go:nosplit
func epollWait(t *thread, ep int64, buf uint64, max, timeoutMs int64) int64 {
	if ep < 0 || ep >= int64(len(fds)) || fds[ep].kind != fdEpoll {
		return -eBADF
	}
	if max <= 0 || max > 1024 {
		return -eINVAL
	}
	if !checkUser(buf, uint64(max)*12, true) {
		return -eFAULT
	}
	if n := epollCollect(int32(ep), buf, int32(max)); n > 0 || timeoutMs == 0 {
		return n
	}
	dl := uint64(0)
	if timeoutMs > 0 {
		dl = deadlineAfter(uint64(timeoutMs) * 1e6)
	}
	t.evBuf = buf
	t.evMax = int32(max)
	block(t, tEpoll, uint64(ep), dl, 0, 0)
	return 0
}

// eventfdReady wakes threads waiting in epoll on an instance watching fd.
// Kernel context.
//
//go:nosplit
func eventfdReady(fd int32) {
	for i := range threads {
		w := &threads[i]
		if w.state != tEpoll {
			continue
		}
		ep := int32(w.waitKey)
		if ep < 0 || int(ep) >= len(fds) || fds[ep].kind != fdEpoll {
			continue
		}
		if n := epollCollect(ep, w.evBuf, w.evMax); n > 0 {
			wake(w, n)
		}
	}
}
