package kernel

import (
	"testing"
	"unsafe"
)

// The entry stubs push exactly the Frame, in field order.
func TestFrameLayout(t *testing.T) {
	var f Frame
	if got := unsafe.Sizeof(f); got != 22*8 {
		t.Fatalf("Frame is %d bytes, the stubs push 176", got)
	}
	if unsafe.Offsetof(f.R15) != 0 || unsafe.Offsetof(f.RAX) != 14*8 ||
		unsafe.Offsetof(f.Vector) != 15*8 || unsafe.Offsetof(f.RIP) != 17*8 || unsafe.Offsetof(f.SS) != 21*8 {
		t.Fatal("Frame field order does not match PUSH_GPRS and the CPU's interrupt frame")
	}
}

func TestTSCConversions(t *testing.T) {
	for _, hz := range []uint64{1_000_000_000, 2_099_858_000, 3_346_020_000, 50_000_000} {
		setTSCHz(hz)
		if ns := ticksToNs(hz); ns < 999_999_000 || ns > 1_000_000_001 {
			t.Errorf("hz=%d: one second of ticks = %d ns", hz, ns)
		}
		if tk := nsToTicks(1e9); tk != hz {
			t.Errorf("hz=%d: nsToTicks(1s) = %d", hz, tk)
		}
		if tk := nsToTicks(1 << 62); tk == 0 {
			t.Errorf("hz=%d: a huge timeout did not saturate", hz)
		}
		if quantum != hz/100 {
			t.Errorf("quantum = %d, want 10 ms of ticks", quantum)
		}
	}
}

func TestMedian3(t *testing.T) {
	for _, c := range [][4]uint64{{1, 2, 3, 2}, {3, 2, 1, 2}, {2, 3, 1, 2}, {5, 5, 1, 5}, {9, 1, 5, 5}} {
		if got := median3(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("median3(%d,%d,%d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

// The scheduler wakes expired sleepers with their timeout result and
// reports the earliest pending deadline.
func TestExpire(t *testing.T) {
	defer func() { threads, threadTop = [maxThreads]thread{}, 0 }()
	threadTop = 4
	threads[0] = thread{state: tFutex, deadline: 100, timeout: -eTIMEDOUT}
	threads[1] = thread{state: tSleep, deadline: 300}
	threads[2] = thread{state: tEpoll, deadline: 0}
	threads[3] = thread{state: tRunnable, deadline: 50}
	next := expire(200)
	if threads[0].state != tRunnable || int64(threads[0].frame.RAX) != -eTIMEDOUT {
		t.Errorf("expired futex waiter: state %d rax %d", threads[0].state, int64(threads[0].frame.RAX))
	}
	if threads[1].state != tSleep || threads[2].state != tEpoll {
		t.Error("a waiter whose deadline has not passed was woken")
	}
	if next != 300 {
		t.Errorf("next deadline = %d, want 300", next)
	}
}

func TestFDTable(t *testing.T) {
	defer func() { fds = [32]fdEntry{} }()
	fdInit()
	ep := fdNew(fdEpoll)
	ev := fdNew(fdEventfd)
	if ep != 3 || ev != 4 {
		t.Fatalf("fds %d, %d; want 3, 4", ep, ev)
	}
	if r := fdClose(ep); r != 0 {
		t.Fatalf("close = %d", r)
	}
	if r := fdClose(ep); r != -eBADF {
		t.Fatalf("second close = %d, want -EBADF", r)
	}
	if r := sysFcntlFD(1, 1); r != 0 {
		t.Fatalf("fcntl(1, F_GETFD) = %d", r)
	}
	if r := sysFcntlFD(9, 1); r != -eBADF {
		t.Fatalf("fcntl on a closed fd = %d", r)
	}
}
