package selftest

import (
	"testing"
	"time"
)

// The self-test must pass on a normal Linux host too.
func TestChecksOnHost(t *testing.T) {
	env := Env{RAM: 64 << 20, Slack: 200 * time.Millisecond}
	for _, c := range Checks() {
		if err := c.Run(env); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
}
