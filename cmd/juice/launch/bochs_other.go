//go:build !unix

package launch

import "time"

// lockBochsStarts has no host-wide lock on this system: Bochs starts are
// spaced only within this process.
func lockBochsStarts() (time.Time, func(time.Time)) {
	return time.Time{}, func(time.Time) {}
}
