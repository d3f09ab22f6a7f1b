package launch

import (
	"errors"
	"testing"
)

func TestParseFigures(t *testing.T) {
	texts := []string{
		"juice: booted by pvh",
		"boot: entry to main 12.345 ms",
		"selftest: gc ok",
		"selftest: done in 250.5 ms, 11 passed, 2 failed",
		"mem: footprint 4242 KiB",
		"juice: power off, status 1",
	}
	f, err := ParseFigures(texts)
	if err != nil {
		t.Fatal(err)
	}
	want := Figures{EntryToMainMs: 12.345, SelftestMs: 250.5, Passed: 11, Failed: 2, FootprintKiB: 4242}
	if f != want {
		t.Fatalf("ParseFigures = %+v, want %+v", f, want)
	}
	if _, err := ParseFigures(texts[:3]); err == nil {
		t.Fatal("ParseFigures accepted a console without the done and footprint lines")
	}
	if _, err := ParseFigures([]string{"boot: entry to main x ms", texts[3], texts[4]}); err == nil {
		t.Fatal("ParseFigures accepted a malformed entry-to-main line")
	}
}

func TestSelftestDone(t *testing.T) {
	ms, p, f, ok := SelftestDone("selftest: done in 7 ms, 3 passed, 0 failed")
	if !ok || ms != 7 || p != 3 || f != 0 {
		t.Fatalf("SelftestDone = %v %v %v %v", ms, p, f, ok)
	}
	for _, bad := range []string{"selftest: done in 7 ms", "selftest: done in ms, 3 passed, 0 failed", "x selftest: done in 7 ms, 3 passed, 0 failed"} {
		if _, _, _, ok := SelftestDone(bad); ok {
			t.Errorf("SelftestDone(%q) matched", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	xs := []float64{5, 1, 3}
	if m, _ := Median(xs); m != 3 {
		t.Errorf("Median odd = %v", m)
	}
	if xs[0] != 5 {
		t.Error("Median reordered its input")
	}
	if m, _ := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("Median even = %v", m)
	}
	if _, err := Median(nil); !errors.Is(err, ErrNoSamples) {
		t.Errorf("Median(nil) err = %v", err)
	}
}
