// Package selftest is juice's boot self-test: it exercises the parts of
// the Go runtime that lean on the kernel (threads, futexes, the netpoller's
// timers, the clock, memory mapping and the GC, the entropy source) and
// reports one line per check. The same checks run on a normal Linux host
// under `go test`, which keeps them honest.
package selftest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one self-test.
type Check struct {
	Name string
	Run  func(env Env) error
}

// Env is what a check may know about the machine.
type Env struct {
	// RAM is the machine's usable RAM in bytes; the GC check allocates at
	// least 4x this much in total.
	RAM uint64
	// Slack is how late a timer may fire (emulators are slow and noisy).
	Slack time.Duration
}

// Checks returns the self-test, in the order it runs.
func Checks() []Check {
	return []Check{
		{"goroutines", goroutines},
		{"channels", channels},
		{"select", selectCheck},
		{"maps", maps},
		{"defer-panic-recover", deferPanicRecover},
		{"sync", syncCheck},
		{"gc", gc},
		{"timers", timers},
		{"tickers", tickers},
		{"sleep", sleep},
		{"context-deadline", contextDeadline},
		{"crypto-rand", cryptoRand},
	}
}

// Run runs every check, calling report after each, and returns the counts.
func Run(env Env, report func(name string, err error)) (passed, failed int) {
	for _, c := range Checks() {
		err := c.Run(env)
		report(c.Name, err)
		if err != nil {
			failed++
		} else {
			passed++
		}
	}
	return passed, failed
}

func goroutines(Env) error {
	const n = 200
	var wg sync.WaitGroup
	var sum atomic.Int64
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runtime.Gosched()
			sum.Add(int64(i))
		}(i)
	}
	wg.Wait()
	if got, want := sum.Load(), int64(n*(n+1)/2); got != want {
		return fmt.Errorf("sum over %d goroutines = %d, want %d", n, got, want)
	}
	return nil
}

func channels(Env) error {
	// A pipeline of unbuffered and buffered stages.
	src := make(chan int)
	mid := make(chan int, 8)
	out := make(chan int)
	go func() {
		for i := 0; i < 1000; i++ {
			src <- i
		}
		close(src)
	}()
	go func() {
		for v := range src {
			mid <- v * 2
		}
		close(mid)
	}()
	go func() {
		s := 0
		for v := range mid {
			s += v
		}
		out <- s
	}()
	if s := <-out; s != 999*1000 {
		return fmt.Errorf("pipeline sum = %d, want %d", s, 999*1000)
	}
	return nil
}

func selectCheck(env Env) error {
	a, b := make(chan int), make(chan int)
	go func() { a <- 1 }()
	go func() { b <- 2 }()
	got := 0
	for i := 0; i < 2; i++ {
		select {
		case v := <-a:
			got += v
		case v := <-b:
			got += v
		case <-time.After(5 * time.Second):
			return errors.New("select timed out with two ready senders")
		}
	}
	if got != 3 {
		return fmt.Errorf("received %d, want 3", got)
	}
	select {
	case <-a:
		return errors.New("default case not taken with nothing ready")
	default:
	}
	start := time.Now()
	select {
	case <-a:
		return errors.New("received from a channel nobody sends on")
	case <-time.After(10 * time.Millisecond):
	}
	if d := time.Since(start); d < 10*time.Millisecond {
		return fmt.Errorf("time.After(10ms) fired after %v", d)
	}
	return nil
}

func maps(Env) error {
	m := make(map[string]int)
	for i := 0; i < 10000; i++ {
		m[fmt.Sprint("k", i)] = i
	}
	for i := 0; i < 10000; i += 2 {
		delete(m, fmt.Sprint("k", i))
	}
	if len(m) != 5000 {
		return fmt.Errorf("len = %d, want 5000", len(m))
	}
	for i := 1; i < 10000; i += 2 {
		if v, ok := m[fmt.Sprint("k", i)]; !ok || v != i {
			return fmt.Errorf("m[k%d] = %d, %v", i, v, ok)
		}
	}
	// Concurrent use under a mutex.
	var mu sync.Mutex
	var wg sync.WaitGroup
	cm := map[int]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				mu.Lock()
				cm[g*1000+i] = i
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if len(cm) != 4000 {
		return fmt.Errorf("concurrent map has %d entries, want 4000", len(cm))
	}
	return nil
}

func deferPanicRecover(Env) (err error) {
	order := []int{}
	func() {
		defer func() { order = append(order, 1) }()
		defer func() { order = append(order, 2) }()
	}()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		return fmt.Errorf("defers ran in order %v, want [2 1]", order)
	}
	v := func() (v any) {
		defer func() { v = recover() }()
		panic("boom")
	}()
	if v != "boom" {
		return fmt.Errorf("recovered %v, want boom", v)
	}
	// A runtime error (index out of range) is recoverable too.
	r := func() (r any) {
		defer func() { r = recover() }()
		s := []int{1}
		i := 5
		return s[i]
	}()
	if _, ok := r.(runtime.Error); !ok {
		return fmt.Errorf("index out of range recovered as %T, want runtime.Error", r)
	}
	return nil
}

func syncCheck(Env) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				mu.Lock()
				n++
				mu.Unlock()
				if i%100 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	if n != 16000 {
		return fmt.Errorf("mutex-protected counter = %d, want 16000", n)
	}
	var once sync.Once
	calls := 0
	for i := 0; i < 10; i++ {
		once.Do(func() { calls++ })
	}
	if calls != 1 {
		return fmt.Errorf("sync.Once ran %d times", calls)
	}
	// A condition variable handshake.
	var cmu sync.Mutex
	cond := sync.NewCond(&cmu)
	ready := false
	done := make(chan struct{})
	go func() {
		cmu.Lock()
		for !ready {
			cond.Wait()
		}
		cmu.Unlock()
		close(done)
	}()
	time.Sleep(time.Millisecond)
	cmu.Lock()
	ready = true
	cond.Broadcast()
	cmu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return errors.New("sync.Cond waiter never woke")
	}
	return nil
}

// gc allocates at least 4x the machine's RAM in total, in many GC cycles,
// while keeping a bounded live set whose contents it verifies.
func gc(env Env) error {
	total := 4 * env.RAM
	if total < 64<<20 {
		total = 64 << 20
	}
	const chunk = 64 << 10
	const live = 32
	var ring [live][]byte
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var allocated uint64
	for i := 0; allocated < total; i++ {
		b := make([]byte, chunk)
		tag := byte(i)
		for j := 0; j < len(b); j += 4096 {
			b[j] = tag
		}
		slot := i % live
		if old := ring[slot]; old != nil {
			want := byte(i - live)
			for j := 0; j < len(old); j += 4096 {
				if old[j] != want {
					return fmt.Errorf("live object %d corrupted at %d: %#x, want %#x", i-live, j, old[j], want)
				}
			}
		}
		ring[slot] = b
		allocated += chunk
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	cycles := after.NumGC - before.NumGC
	if got := after.TotalAlloc - before.TotalAlloc; got < total {
		return fmt.Errorf("allocated %d MiB, want at least %d MiB", got>>20, total>>20)
	}
	if cycles < 4 {
		return fmt.Errorf("only %d GC cycles for %d MiB", cycles, total>>20)
	}
	return nil
}

func timers(env Env) error {
	fired := make(chan time.Duration, 1)
	start := time.Now()
	time.AfterFunc(15*time.Millisecond, func() { fired <- time.Since(start) })
	select {
	case d := <-fired:
		if d < 15*time.Millisecond {
			return fmt.Errorf("AfterFunc(15ms) fired after %v", d)
		}
	case <-time.After(5 * time.Second):
		return errors.New("AfterFunc never fired")
	}
	t := time.NewTimer(time.Hour)
	if !t.Stop() {
		return errors.New("Stop on a pending timer reported it had fired")
	}
	t.Reset(5 * time.Millisecond)
	select {
	case <-t.C:
	case <-time.After(5 * time.Second):
		return errors.New("reset timer never fired")
	}
	// Many timers: each fires, and none before its deadline.
	const n = 20
	type firing struct {
		i  int
		at time.Duration
	}
	got := make(chan firing, n)
	start = time.Now()
	for i := n - 1; i >= 0; i-- {
		i := i
		time.AfterFunc(time.Duration(i+1)*2*time.Millisecond, func() { got <- firing{i, time.Since(start)} })
	}
	seen := map[int]bool{}
	for k := 0; k < n; k++ {
		select {
		case f := <-got:
			if want := time.Duration(f.i+1) * 2 * time.Millisecond; f.at < want {
				return fmt.Errorf("timer %d (%v) fired after %v", f.i, want, f.at)
			}
			if seen[f.i] {
				return fmt.Errorf("timer %d fired twice", f.i)
			}
			seen[f.i] = true
		case <-time.After(5 * time.Second):
			return fmt.Errorf("only %d of %d timers fired", k, n)
		}
	}
	return nil
}

func tickers(env Env) error {
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	start := time.Now()
	for i := 0; i < 5; i++ {
		select {
		case <-tk.C:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("tick %d never came", i)
		}
	}
	d := time.Since(start)
	if d < 40*time.Millisecond || d > 50*time.Millisecond+5*env.Slack {
		return fmt.Errorf("5 ticks of 10ms took %v", d)
	}
	return nil
}

func sleep(env Env) error {
	for _, want := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		start := time.Now()
		time.Sleep(want)
		d := time.Since(start)
		if d < want {
			return fmt.Errorf("Sleep(%v) returned after %v", want, d)
		}
		if d > want+env.Slack {
			return fmt.Errorf("Sleep(%v) took %v (slack %v)", want, d, env.Slack)
		}
	}
	// The monotonic clock never goes back.
	prev := time.Now()
	for i := 0; i < 10000; i++ {
		now := time.Now()
		if now.Before(prev) {
			return fmt.Errorf("time went back: %v after %v", now, prev)
		}
		prev = now
	}
	return nil
}

func contextDeadline(env Env) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		return errors.New("context deadline never expired")
	}
	d := time.Since(start)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("ctx.Err() = %v", ctx.Err())
	}
	if d < 30*time.Millisecond || d > 30*time.Millisecond+env.Slack {
		return fmt.Errorf("30ms deadline expired after %v", d)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if !errors.Is(ctx2.Err(), context.Canceled) {
		return errors.New("cancel did not cancel")
	}
	return nil
}

func cryptoRand(Env) error {
	a := make([]byte, 64)
	b := make([]byte, 64)
	if _, err := rand.Read(a); err != nil {
		return err
	}
	if _, err := rand.Read(b); err != nil {
		return err
	}
	if bytes.Equal(a, b) {
		return errors.New("two reads returned the same 64 bytes")
	}
	if bytes.Equal(a, make([]byte, 64)) {
		return errors.New("read returned zeros")
	}
	// Bits look balanced: 4096 random bits, expect ~2048 ones.
	big4k := make([]byte, 512)
	rand.Read(big4k)
	ones := 0
	for _, c := range big4k {
		for ; c != 0; c &= c - 1 {
			ones++
		}
	}
	if ones < 1800 || ones > 2300 {
		return fmt.Errorf("%d of 4096 bits set", ones)
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1000))
	if err != nil || n.Sign() < 0 || n.Int64() >= 1000 {
		return fmt.Errorf("rand.Int = %v, %v", n, err)
	}
	return nil
}
