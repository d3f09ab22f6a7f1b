package kernel

import (
	"math"
	"testing"
)

func TestRuntimeMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		free, committed uint64
		want            int64
	}{
		// 256 MiB machine: 1/16 kept back.
		{free: 230 << 20, committed: 10 << 20, want: 225 << 20},
		// 64 MiB machine.
		{free: 40 << 20, committed: 8 << 20, want: 45 << 20},
		// The reserve is at least 1 MiB.
		{free: 15 << 20, committed: 1 << 20, want: 15 << 20},
		// Too little for a limit that would not thrash: none.
		{free: 8 << 20, committed: 4 << 20, want: math.MaxInt64},
		{free: 0, committed: 0, want: math.MaxInt64},
		// Overflowing sums and huge machines stay in range.
		{free: math.MaxUint64, committed: 1, want: math.MaxInt64},
		{free: 1 << 63, committed: 1 << 62, want: math.MaxInt64},
	} {
		if got := runtimeMemoryLimit(c.free, c.committed); got != c.want {
			t.Errorf("runtimeMemoryLimit(%d MiB free, %d MiB committed) = %d, want %d", c.free>>20, c.committed>>20, got, c.want)
		}
	}
}
