//go:build unix

package launch

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// bochsLockName is the lock file, in the temporary directory, whose
// modification time is the last Bochs start of any process on this host.
const bochsLockName = "juice-bochs-start.lock"

// lockBochsStarts takes the host-wide Bochs start lock (waiting until ctx
// ends at most: then it returns ctx's error) and returns the
// time of the last recorded start (zero if unknown) and release, which
// records started (unless it is zero) and drops the lock. Without a usable
// lock file it returns a zero time and a release that does nothing:
// starts are then spaced only within this process.
func lockBochsStarts(ctx context.Context) (last time.Time, release func(started time.Time), err error) {
	noop := func(time.Time) {}
	path := filepath.Join(os.TempDir(), bochsLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			return time.Time{}, noop, nil
		}
	}
	// Poll for the lock, so that a cancelled context ends the wait (the
	// holder may be another process waiting out its own gap).
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			return time.Time{}, noop, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return time.Time{}, noop, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last = st.ModTime()
	}
	return last, func(started time.Time) {
		if !started.IsZero() {
			// A byte marks that the time stamp is a start, not the
			// file's creation.
			if st, err := f.Stat(); err == nil && st.Size() == 0 {
				f.Write([]byte{'\n'})
			}
			os.Chtimes(path, started, started)
		}
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
