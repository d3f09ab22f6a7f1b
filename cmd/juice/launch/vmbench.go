package launch

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// VMBenchKinds are the operations the bench test guest (tests/guests,
// bench_386.s) times, in the order it prints them. "hypercall" runs only
// under juice.
var VMBenchKinds = []string{"cpuid", "pio", "mmio", "hypercall"}

// VMBench is what one run of the bench guest printed.
type VMBench struct {
	// Juice is whether the guest found juice's CPUID signature ("bench:
	// hypervisor juice, ...").
	Juice bool
	// TicksPerOp maps a kind of VMBenchKinds to its "bench: KIND N
	// ticks/op" figure, in TSC ticks. A kind the guest skipped is absent.
	TicksPerOp map[string]float64
	// TotalTicks is "bench: total T ticks": the guest's run time, in TSC
	// ticks, from its first instruction to its exit.
	TotalTicks float64
}

// The bench guest's lines (after the VM prefix).
var (
	vmBenchKindRE  = regexp.MustCompile(`^bench: ([a-z]+) ([0-9]+) ticks/op$`)
	vmBenchTotalRE = regexp.MustCompile(`^bench: total ([0-9]+) ticks$`)
)

// ParseVMBench extracts the bench guest's figures from console texts
// (timestamps stripped). prefix is what starts each of the guest's lines:
// "[NAME] " under juice (GuestLinePrefix); "" on a bare machine, where a
// line's text from "bench: " on is taken, because the firmware's output
// may precede the first line. It fails if a "bench: ... FAIL" line is
// there, a line is malformed, or the total or a kind other than
// "hypercall" is missing (hypercall is required when the guest says it
// runs under juice).
func ParseVMBench(texts []string, prefix string) (VMBench, error) {
	b := VMBench{TicksPerOp: map[string]float64{}}
	haveTotal := false
	for _, t := range texts {
		var s string
		if prefix != "" {
			if !strings.HasPrefix(t, prefix) {
				continue
			}
			s = strings.TrimPrefix(t, prefix)
			if !strings.HasPrefix(s, "bench: ") {
				continue
			}
		} else {
			i := strings.Index(t, "bench: ")
			if i < 0 {
				continue
			}
			s = t[i:]
		}
		s = strings.TrimRight(s, " \t")
		switch {
		case strings.Contains(s, "FAIL"):
			return b, fmt.Errorf("the guest failed: %q", s)
		case strings.HasPrefix(s, "bench: hypervisor juice"):
			b.Juice = true
		case vmBenchTotalRE.MatchString(s):
			v, err := strconv.ParseFloat(vmBenchTotalRE.FindStringSubmatch(s)[1], 64)
			if err != nil {
				return b, fmt.Errorf("bad total in %q", s)
			}
			b.TotalTicks, haveTotal = v, true
		case vmBenchKindRE.MatchString(s):
			m := vmBenchKindRE.FindStringSubmatch(s)
			if !isVMBenchKind(m[1]) {
				return b, fmt.Errorf("unknown kind in %q", s)
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return b, fmt.Errorf("bad figure in %q", s)
			}
			b.TicksPerOp[m[1]] = v
		}
	}
	var missing []string
	for _, k := range VMBenchKinds {
		if _, ok := b.TicksPerOp[k]; !ok && (k != "hypercall" || b.Juice) {
			missing = append(missing, fmt.Sprintf(`"bench: %s N ticks/op"`, k))
		}
	}
	if !haveTotal {
		missing = append(missing, `"bench: total T ticks"`)
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("the guest's output lacks %s", strings.Join(missing, ", "))
	}
	return b, nil
}

func isVMBenchKind(k string) bool {
	for _, x := range VMBenchKinds {
		if x == k {
			return true
		}
	}
	return false
}

// GuestLinePrefix is what juice puts before each console line of VM name.
func GuestLinePrefix(name string) string { return "[" + name + "] " }

// vmExitsRE matches juice's statistics line about a VM's end.
var vmExitsRE = regexp.MustCompile(`^juice: vm ([a-z0-9-]+): ([0-9]+) exits, `)

// VMExits returns the exit count of juice's "juice: vm NAME: N exits, ..."
// line for VM name among texts (timestamps stripped).
func VMExits(texts []string, name string) (uint64, bool) {
	for _, t := range texts {
		m := vmExitsRE.FindStringSubmatch(t)
		if m == nil || m[1] != name {
			continue
		}
		n, err := strconv.ParseUint(m[2], 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// tscRE matches juice's boot line about its TSC.
var tscRE = regexp.MustCompile(`^cpu: TSC ([0-9]+(?:\.[0-9]+)?) MHz`)

// TSCMHz returns the TSC frequency juice measured at boot ("cpu: TSC F
// MHz ...") among texts (timestamps stripped).
func TSCMHz(texts []string) (float64, bool) {
	for _, t := range texts {
		if m := tscRE.FindStringSubmatch(t); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil || v <= 0 {
				return 0, false
			}
			return v, true
		}
	}
	return 0, false
}
