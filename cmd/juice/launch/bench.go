package launch

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// Figures are the boot measurements juice prints during a self-test run.
type Figures struct {
	// EntryToMainMs is "boot: entry to main X ms": from the first
	// instruction to Go's main.main.
	EntryToMainMs float64
	// SelftestMs is "selftest: done in Y ms, …": from the first
	// instruction to the end of the self-test.
	SelftestMs float64
	// Passed and Failed are the self-test counts of the same line.
	Passed, Failed int
	// FootprintKiB is "mem: footprint Z KiB": juice's memory use after
	// boot.
	FootprintKiB float64
}

// The lines Figures come from (timestamps stripped).
var (
	entryToMainRE  = regexp.MustCompile(`^boot: entry to main ([0-9]+(?:\.[0-9]+)?) ms`)
	selftestDoneRE = regexp.MustCompile(`^selftest: done in ([0-9]+(?:\.[0-9]+)?) ms, ([0-9]+) passed, ([0-9]+) failed`)
	footprintRE    = regexp.MustCompile(`^mem: footprint ([0-9]+(?:\.[0-9]+)?) KiB`)
)

// SelftestDone parses a "selftest: done in Y ms, N passed, M failed" text.
func SelftestDone(text string) (ms float64, passed, failed int, ok bool) {
	m := selftestDoneRE.FindStringSubmatch(text)
	if m == nil {
		return 0, 0, 0, false
	}
	ms, err1 := strconv.ParseFloat(m[1], 64)
	passed, err2 := strconv.Atoi(m[2])
	failed, err3 := strconv.Atoi(m[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return ms, passed, failed, true
}

// ParseFigures extracts Figures from the console texts (timestamps
// stripped) of one self-test run. It fails if a line is missing.
func ParseFigures(texts []string) (Figures, error) {
	var f Figures
	var haveMain, haveDone, haveMem bool
	for _, t := range texts {
		if m := entryToMainRE.FindStringSubmatch(t); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err == nil {
				f.EntryToMainMs, haveMain = v, true
			}
		}
		if ms, p, fl, ok := SelftestDone(t); ok {
			f.SelftestMs, f.Passed, f.Failed, haveDone = ms, p, fl, true
		}
		if m := footprintRE.FindStringSubmatch(t); m != nil {
			v, err := strconv.ParseFloat(m[1], 64)
			if err == nil {
				f.FootprintKiB, haveMem = v, true
			}
		}
	}
	var missing []string
	if !haveMain {
		missing = append(missing, `"boot: entry to main X ms"`)
	}
	if !haveDone {
		missing = append(missing, `"selftest: done in Y ms, N passed, M failed"`)
	}
	if !haveMem {
		missing = append(missing, `"mem: footprint Z KiB"`)
	}
	if len(missing) > 0 {
		return f, fmt.Errorf("console lacks %v", missing)
	}
	return f, nil
}

// ErrNoSamples is returned by Median for an empty slice.
var ErrNoSamples = errors.New("no samples")

// Median returns the median of xs (the mean of the middle two for an even
// count). xs is not modified.
func Median(xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, ErrNoSamples
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], nil
	}
	return (s[n/2-1] + s[n/2]) / 2, nil
}
