package main

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"juice/cmd/juice/launch"
)

// juiceCounts are what juice's end-of-VM report counted for some VMs of
// one run, summed: exits, exits by reason, and the virtio notifications
// of one kind of device (driver kicks, device interrupts).
type juiceCounts struct {
	exits       uint64
	byReason    map[string]uint64
	kicks, irqs uint64
}

// exitReasonRE is one entry of juice's "exits by reason" line.
var exitReasonRE = regexp.MustCompile(`([a-z0-9-]+)=([0-9]+) \(`)

// virtioQueueRE is one queue of juice's virtio notification line.
var virtioQueueRE = regexp.MustCompile(`q[0-9]+ ([0-9]+)/([0-9]+)`)

// Prefixes of juice's report lines (after "juice: vm NAME: ").
const (
	exitsByReasonPrefix = "exits by reason (count, time handling them; HLT's is idle time): "
	guestTimePrefix     = "time in guest entry "
	virtioPrefix        = "notifications per device queue (driver kicks/device interrupts): "
)

// parseJuiceCounts sums the report lines of the named VMs in texts
// (juice's console, timestamps stripped); kind is the virtio device kind
// whose notifications count ("net", "blk").
func parseJuiceCounts(texts []string, names []string, kind string) (juiceCounts, error) {
	c := juiceCounts{byReason: map[string]uint64{}}
	for _, name := range names {
		n, ok := launch.VMExits(texts, name)
		if !ok {
			return c, fmt.Errorf("juice printed no exit count for vm %s", name)
		}
		c.exits += n
		for _, m := range exitReasonRE.FindAllStringSubmatch(juiceVMLine(texts, name, exitsByReasonPrefix), -1) {
			v, _ := strconv.ParseUint(m[2], 10, 64)
			c.byReason[m[1]] += v
		}
		// (A juice that does not count notifications prints no line:
		// they count as zero.)
		line := juiceVMLine(texts, name, virtioPrefix)
		for _, dev := range strings.Split(line, ";") {
			dev = strings.TrimSpace(dev)
			if rest, ok := strings.CutPrefix(dev, kind); !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
				continue
			}
			for _, m := range virtioQueueRE.FindAllStringSubmatch(dev, -1) {
				k, _ := strconv.ParseUint(m[1], 10, 64)
				i, _ := strconv.ParseUint(m[2], 10, 64)
				c.kicks += k
				c.irqs += i
			}
		}
	}
	return c, nil
}

// juiceVMLine is the rest of juice's line about VM name that starts with
// what ("" if there is none).
func juiceVMLine(texts []string, name, what string) string {
	for _, t := range texts {
		if s, ok := strings.CutPrefix(t, "juice: vm "+name+": "+what); ok {
			return s
		}
	}
	return ""
}

// perMiB describes c less base over mib MiB: exits (by reason, largest
// first), driver kicks and device interrupts per MiB.
func (c juiceCounts) perMiB(base juiceCounts, mib float64) string {
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / mib }
	type reason struct {
		name string
		v    float64
	}
	var rs []reason
	names := map[string]bool{}
	for name := range c.byReason {
		names[name] = true
	}
	for name := range base.byReason {
		names[name] = true
	}
	// A reason can come out negative: the run with data had fewer of
	// them than the one without (the boot's share varies).
	for name := range names {
		if v := per(c.byReason[name], base.byReason[name]); math.Abs(v) >= 0.5 {
			rs = append(rs, reason{name, v})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].v > rs[j].v || rs[i].v == rs[j].v && rs[i].name < rs[j].name })
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s %.0f", r.name, r.v))
	}
	return fmt.Sprintf("%.0f exits (%s), %.1f virtio notifications from the drivers (kicks), %.1f to them (interrupts)",
		per(c.exits, base.exits), strings.Join(parts, ", "), per(c.kicks, base.kicks), per(c.irqs, base.irqs))
}
