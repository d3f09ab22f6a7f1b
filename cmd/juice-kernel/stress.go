package main

import (
	"crypto/sha256"
	"fmt"
	"log"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"juice/kernel"
)

// The SMP stress run (juice.mode=smpstress, juice.stress=SECONDS): for the
// given time it keeps every CPU busy with goroutines that allocate and
// verify data (so the collector runs all the time, and returns memory to
// juice, which shoots down TLBs), ping-pong over channels (futex wake-ups
// across CPUs), sleep and wait on timers of random length (timer
// wake-ups, the idle loop), contend for a mutex, and hash on threads
// pinned to each CPU (checking they stay there). A watchdog fails the run
// when a worker stops making progress (a lost wake-up or a deadlock), a
// timer that fires far too late is reported, and at the end every CPU must
// have run threads. It prints "smpstress: pass ..." or
// "smpstress: FAIL: ..." and returns the exit status.

const (
	defaultStress = 30 * time.Second
	// stallLimit is how long a worker may make no progress: generous,
	// because QEMU TCG on a loaded host can stop a virtual CPU for a
	// while.
	stallLimit = 20 * time.Second
	// lateLimit is how late a timer may fire before it counts as lost.
	lateLimit = 10 * time.Second
)

type stressWorker struct {
	name     string
	progress atomic.Uint64
}

func smpStress() int {
	d := defaultStress
	if s := kernel.StressSeconds(); s > 0 {
		d = time.Duration(s) * time.Second
	}
	cpus := kernel.OnlineCPUs()
	log.Printf("smpstress: %d CPUs, GOMAXPROCS %d, running for %v", len(cpus), runtime.GOMAXPROCS(0), d)
	before := kernel.CPUStats()
	shoot0 := kernel.TLBShootdowns()

	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		workers []*stressWorker
		failMu  sync.Mutex
		fails   []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(fails) < 10 {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
	}
	spawn := func(name string, f func(w *stressWorker)) {
		w := &stressWorker{name: name}
		workers = append(workers, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w)
		}()
	}
	n := len(cpus)

	// Allocation with a verified live set.
	for i := 0; i < 2*n; i++ {
		spawn(fmt.Sprintf("alloc%d", i), func(w *stressWorker) {
			var ring [16][]uint64
			for k := 0; !stop.Load(); k++ {
				b := make([]uint64, 1024+k%4096)
				for j := range b {
					b[j] = uint64(k)*7 + uint64(j)
				}
				slot := k % len(ring)
				if old := ring[slot]; old != nil {
					want := uint64(k - len(ring))
					for j := range old {
						if old[j] != want*7+uint64(j) {
							fail("%s: live slice of round %d corrupted at %d", w.name, want, j)
							return
						}
					}
				}
				ring[slot] = b
				m := map[int]int{}
				for j := 0; j < 64; j++ {
					m[j] = j * k
				}
				if m[63] != 63*k {
					fail("%s: map lost an entry", w.name)
					return
				}
				w.progress.Add(1)
			}
		})
	}
	// Ping-pong pairs over unbuffered channels.
	for i := 0; i < n; i++ {
		ping, pong := make(chan uint64), make(chan uint64)
		spawn(fmt.Sprintf("pong%d", i), func(w *stressWorker) {
			for v := range ping {
				pong <- v + 1
				w.progress.Add(1)
			}
			close(pong)
		})
		spawn(fmt.Sprintf("ping%d", i), func(w *stressWorker) {
			defer close(ping)
			for v := uint64(0); !stop.Load(); v += 2 {
				ping <- v
				if got := <-pong; got != v+1 {
					fail("%s: sent %d, got back %d", w.name, v, got)
					return
				}
				w.progress.Add(1)
			}
		})
	}
	// Timers: sleeps, timers and AfterFunc of random length, checked for
	// lateness.
	var maxLate atomic.Int64
	for i := 0; i < 2*n; i++ {
		spawn(fmt.Sprintf("timer%d", i), func(w *stressWorker) {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for k := 0; !stop.Load(); k++ {
				want := time.Duration(r.IntN(5000)) * time.Microsecond
				start := time.Now()
				switch k % 3 {
				case 0:
					time.Sleep(want)
				case 1:
					<-time.NewTimer(want).C
				case 2:
					done := make(chan struct{})
					time.AfterFunc(want, func() { close(done) })
					<-done
				}
				got := time.Since(start)
				if got < want {
					fail("%s: a %v timer fired after %v", w.name, want, got)
					return
				}
				late := int64(got - want)
				for {
					m := maxLate.Load()
					if late <= m || maxLate.CompareAndSwap(m, late) {
						break
					}
				}
				if got-want > lateLimit {
					fail("%s: a %v timer fired %v late", w.name, want, got-want)
				}
				w.progress.Add(1)
			}
		})
	}
	// A contended mutex.
	var mu sync.Mutex
	var shared, adds uint64
	for i := 0; i < n; i++ {
		spawn(fmt.Sprintf("mutex%d", i), func(w *stressWorker) {
			for !stop.Load() {
				mu.Lock()
				shared++
				mu.Unlock()
				atomic.AddUint64(&adds, 1)
				if w.progress.Add(1)%1024 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	// Threads pinned to each CPU.
	for _, c := range cpus {
		spawn(fmt.Sprintf("pinned%d", c), func(w *stressWorker) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := kernel.PinThread(c); err != nil {
				fail("%s: %v", w.name, err)
				return
			}
			defer kernel.UnpinThread()
			var buf [256]byte
			for !stop.Load() {
				h := sha256.Sum256(buf[:])
				copy(buf[:], h[:])
				if got := kernel.CPU(); got != c {
					fail("%s: pinned to cpu %d, running on cpu %d", w.name, c, got)
					return
				}
				w.progress.Add(1)
				if w.progress.Load()%256 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	// The collector, and memory handed back to juice.
	spawn("gc", func(w *stressWorker) {
		for k := 0; !stop.Load(); k++ {
			if k%4 == 3 {
				debug.FreeOSMemory()
			} else {
				runtime.GC()
			}
			w.progress.Add(1)
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The watchdog.
	end := time.Now().Add(d)
	last := make([]uint64, len(workers))
	seen := make([]time.Time, len(workers))
	for i := range seen {
		seen[i] = time.Now()
	}
	nextReport := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		now := time.Now()
		for i, w := range workers {
			if p := w.progress.Load(); p != last[i] {
				last[i], seen[i] = p, now
			} else if now.Sub(seen[i]) > stallLimit {
				fail("%s made no progress for %v", w.name, now.Sub(seen[i]).Round(time.Second))
				seen[i] = now
			}
		}
		if now.After(nextReport) {
			log.Printf("smpstress: %v left, %d TLB shootdowns so far", end.Sub(now).Round(time.Second), kernel.TLBShootdowns()-shoot0)
			nextReport = now.Add(10 * time.Second)
		}
	}
	stop.Store(true)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stallLimit):
		for _, w := range workers {
			log.Printf("smpstress: worker %s: %d rounds", w.name, w.progress.Load())
		}
		fail("workers did not stop within %v", stallLimit)
	}
	mu.Lock()
	if shared != atomic.LoadUint64(&adds) {
		fail("mutex counter %d, want %d: lost updates", shared, atomic.LoadUint64(&adds))
	}
	mu.Unlock()

	after := kernel.CPUStats()
	for _, a := range after {
		var b kernel.CPUStat
		for _, x := range before {
			if x.CPU == a.CPU {
				b = x
			}
		}
		ran := (a.RunNs - b.RunNs) / 1e6
		log.Printf("smpstress: cpu %d (apic %d) ran threads for %d ms, %d switches, %d IPIs",
			a.CPU, a.APIC, ran, a.Switches-b.Switches, a.IPIs-b.IPIs)
		if ran == 0 {
			fail("cpu %d ran no thread", a.CPU)
		}
	}
	var rounds uint64
	for _, w := range workers {
		rounds += w.progress.Load()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	log.Printf("smpstress: %d CPUs, %d workers, %d rounds, %d GC cycles, %d TLB shootdowns, latest timer %v late, longest wait for a CPU %v",
		len(cpus), len(workers), rounds, ms.NumGC, kernel.TLBShootdowns()-shoot0, time.Duration(maxLate.Load()).Round(time.Microsecond),
		kernel.MaxRunDelay().Round(time.Microsecond))
	if len(fails) > 0 {
		for _, f := range fails {
			log.Printf("smpstress: FAIL: %s", f)
		}
		return 1
	}
	log.Printf("smpstress: pass")
	return 0
}
