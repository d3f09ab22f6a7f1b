package kernel

import (
	"sync/atomic"

	"juice/cpu"
)

// Locks. Kernel state is shared by every CPU and guarded by two spinlocks,
// always taken with interrupts off:
//
//   - bkl, the big kernel lock: the thread table and scheduler, the file
//     descriptors, the console and everything a system call touches.
//   - mmLock: the frame allocator, juice's page tables and the runtime's
//     address space. Page faults take it without bkl; system calls take it
//     inside bkl (never the other way round); vmm.Host takes it from thread
//     context (Host in host.go), where a page fault inside the locked
//     region may take it again on the same CPU, so it is recursive.
//
// No lock is held while a CPU halts or runs a thread. A CPU spinning for a
// lock answers TLB shootdowns (tlbAck), because the CPU that holds the lock
// may be waiting for exactly that.

// spinlock is a ticket lock: CPUs get the lock in the order they asked
// for it. (A test-and-set lock let a CPU that releases and retakes it in a
// loop, such as one serving a stream of system calls, starve another for
// tens of seconds under QEMU.)
type spinlock struct {
	next    uint32 // the next ticket to hand out
	serving uint32 // the ticket that holds the lock
	owner   int32  // 1 + the holder's CPU number; 0: free
	depth   int32  // recursive holds (mmLock)
}

var (
	bkl    spinlock
	mmLock spinlock
)

// lock takes l, spinning. Interrupts must be off. Kernel context.
//
//go:nosplit
func (l *spinlock) lock() {
	me := myCPU()
	if atomic.LoadInt32(&l.owner) == me.id+1 {
		fatal("kernel lock taken twice on one CPU")
	}
	l.acquire(me)
	l.depth = 1
}

// lockRecursive takes l, or counts one more hold when this CPU holds it.
//
//go:nosplit
func (l *spinlock) lockRecursive() {
	me := myCPU()
	if atomic.LoadInt32(&l.owner) == me.id+1 {
		l.depth++
		return
	}
	l.acquire(me)
	l.depth = 1
}

//go:nosplit
func (l *spinlock) acquire(me *perCPU) {
	ticket := atomic.AddUint32(&l.next, 1) - 1
	for atomic.LoadUint32(&l.serving) != ticket {
		tlbAck(me)
		cpu.Pause()
	}
	atomic.StoreInt32(&l.owner, me.id+1)
	// The previous holder may have changed mappings.
	tlbAck(me)
}

// unlock releases one hold of l.
//
//go:nosplit
func (l *spinlock) unlock() {
	if l.depth > 1 {
		l.depth--
		return
	}
	l.depth = 0
	atomic.StoreInt32(&l.owner, 0)
	atomic.AddUint32(&l.serving, 1)
}

// held reports whether this CPU holds l.
//
//go:nosplit
func (l *spinlock) held() bool {
	return atomic.LoadInt32(&l.owner) == myCPU().id+1
}
