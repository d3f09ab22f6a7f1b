package apic

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentIPIsAndEOIs: two local APICs driven from two goroutines at
// once, as two vCPUs of a VM on two host CPUs drive them: each goroutine
// sends the other fixed IPIs of a low and a high vector (the ICR write
// delivers into the other APIC's IRR from the sender's goroutine) while
// taking its own pending vectors the way the core injects them (Pending,
// then Ack), nesting a higher one over a lower one, and EOIs them. No
// vector is handed out while it is in service, every IPI is delivered
// exactly once (a sender waits for the previous one of a vector to be
// taken, so none is merged in the IRR), and the ISRs end empty. Run it
// with -race as well.
func TestConcurrentIPIsAndEOIs(t *testing.T) {
	const n = 2000
	vecs := [2]uint8{0x41, 0xfd}
	var aps [2]*LAPIC
	for i := range aps {
		aps[i] = New(uint32(i), func() int64 { return 0 }, 0, nil, func(ipi IPI) {
			if ipi.Dest < uint32(len(aps)) {
				aps[ipi.Dest].Accept(ipi.Vector)
			}
		})
		enable(aps[i])
	}
	var got [2][2]atomic.Int64 // [target][vector index] vectors taken
	var bad atomic.Int64       // vectors handed out while in service
	var done atomic.Bool
	var wg sync.WaitGroup
	for i := range aps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a, other := aps[i], 1-i
			var sent [2]int64
			var stack [4]uint8
			for !done.Load() {
				// The core's injection: take what is deliverable,
				// nested by priority, then EOI innermost first.
				depth := 0
				for depth < len(stack) {
					v, ok := a.Pending()
					if !ok {
						break
					}
					if rd(a, RegISR+uint32(v>>5)*16)&(1<<(v&31)) != 0 {
						bad.Add(1)
					}
					a.Ack(v)
					for k, w := range vecs {
						if w == v {
							got[i][k].Add(1)
						}
					}
					stack[depth] = v
					depth++
				}
				for ; depth > 0; depth-- {
					wr(a, RegEOI, 0)
				}
				// Send the other the next IPI of each vector whose
				// previous one it has taken.
				for k, w := range vecs {
					if sent[k] < n && got[other][k].Load() == sent[k] {
						sent[k]++
						wr(a, RegICRHigh, uint32(other)<<24)
						wr(a, RegICRLow, uint32(w))
					}
				}
			}
		}(i)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := true
		for i := range got {
			for k := range got[i] {
				all = all && got[i][k].Load() == n
			}
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	done.Store(true)
	wg.Wait()
	for i := range got {
		for k, w := range vecs {
			if c := got[i][k].Load(); c != n {
				t.Errorf("APIC %d took vector %#x %d times, want %d (IPIs lost or duplicated)", i, w, c, n)
			}
		}
		for r := uint32(0); r < 8; r++ {
			if isr, irr := rd(aps[i], RegISR+r*16), rd(aps[i], RegIRR+r*16); isr != 0 || irr != 0 {
				t.Errorf("APIC %d: ISR[%d] %#x, IRR[%d] %#x at the end, want 0", i, r, isr, r, irr)
			}
		}
	}
	if b := bad.Load(); b != 0 {
		t.Errorf("%d vectors handed out while in service", b)
	}
}
