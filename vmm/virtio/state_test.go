package virtio

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"juice/vmm"
	vt "juice/vmm/virtio/virtiotest"
)

// echoDev copies each chain's readable bytes into its writable buffers.
type echoDev struct {
	env        Env
	nq         int
	max        uint16
	features   uint64
	cfg        [12]byte
	activates  int
	resets     int
	notifies   int
	activeErr  error
	stopAfter  int         // StopEarly after this many chains per Notify (0: never)
	afterChain func(q int) // test hook after each chain
	buf        [64]byte
}

func (d *echoDev) Type() uint16                  { return IDConsole }
func (d *echoDev) Features() uint64              { return d.features }
func (d *echoDev) ConfigSize() int               { return len(d.cfg) }
func (d *echoDev) ReadConfig(off int, p []byte)  { copy(p, d.cfg[off:]) }
func (d *echoDev) WriteConfig(off int, p []byte) { copy(d.cfg[off:], p) }
func (d *echoDev) NumQueues() int                { return d.nq }
func (d *echoDev) MaxQueueSize(q int) uint16     { return d.max }
func (d *echoDev) Activate(env Env) error {
	d.env = env
	d.activates++
	return d.activeErr
}
func (d *echoDev) Reset() { d.env = nil; d.resets++ }
func (d *echoDev) Notify(qi int) {
	d.notifies++
	q := d.env.Queue(qi)
	n := 0
	for {
		if d.stopAfter > 0 && n >= d.stopAfter {
			q.StopEarly()
			break
		}
		c, ok, err := q.Next()
		if err != nil || !ok {
			break
		}
		for {
			k := c.Read(d.buf[:])
			if k == 0 {
				break
			}
			c.Write(d.buf[:k])
		}
		q.Done(c, c.Written())
		n++
		if d.afterChain != nil {
			d.afterChain(qi)
		}
	}
	if q.NeedInterrupt() {
		d.env.Interrupt(qi)
	}
}

// rig is a State + MMIO transport + test driver over 1 MiB of RAM.
type rig struct {
	mem   *vmm.GuestMemory
	dev   *echoDev
	s     *State
	mmio  vmm.MMIODevice
	drv   *vt.MMIO
	rings []*vt.Ring
	line  bool
	lines int
	irqs  []string
	logs  []string
}

func newRig(t testing.TB, nq int, size uint16) *rig {
	t.Helper()
	g := &rig{mem: vmm.NewGuestMemory(make([]byte, testRAM), 0), dev: &echoDev{nq: nq, max: 256, features: 1 << 3}}
	g.s = NewState(g.dev, g.mem, func(k IRQKind, q int) {
		g.irqs = append(g.irqs, k.String()+string(rune('0'+q+1)))
	}, func(s string) { g.logs = append(g.logs, s) })
	g.mmio = NewMMIO(g.s, func(level bool) { g.line = level; g.lines++ })
	g.drv = &vt.MMIO{Dev: g.mmio}
	for i := 0; i < nq; i++ {
		g.rings = append(g.rings, vt.NewRing(g.mem, size, ringBase+uint64(i)*vt.RingBytes(size)))
	}
	return g
}

func (g *rig) init(t testing.TB, want uint64) uint64 {
	t.Helper()
	f, err := g.drv.Init(want, g.rings)
	if err != nil {
		t.Fatalf("Init: %v (logs %q)", err, g.logs)
	}
	return f
}

func TestMMIOIdentity(t *testing.T) {
	g := newRig(t, 1, 8)
	for _, r := range []struct {
		off  uint64
		want uint32
	}{
		{0x000, 0x74726976},
		{0x004, 2},
		{0x008, IDConsole},
		{0x00c, MMIOVendorID},
		{0x0b0, 0xffffffff},
		{0x0bc, 0xffffffff},
		{0x0c0, 0},
		{0x050, 0}, // write-only reads 0
	} {
		if got := g.drv.R(r.off); got != r.want {
			t.Errorf("reg %#x = %#x, want %#x", r.off, got, r.want)
		}
	}
	if g.mmio.Read(0, 2) != 0 || g.mmio.Read(2, 4) != 0 {
		t.Error("non-32-bit control register access must read 0")
	}
}

func TestMMIOLinuxSequence(t *testing.T) {
	g := newRig(t, 2, 8)
	f := g.init(t, ^uint64(0))
	if want := FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc | 1<<3; f != want {
		t.Fatalf("negotiated %#x, want %#x", f, want)
	}
	if g.dev.activates != 1 || g.s.Features() != f {
		t.Fatalf("activates %d features %#x", g.dev.activates, g.s.Features())
	}
	fill(g.mem, bufBase, []byte("ping"))
	r := g.rings[1]
	head := r.Add(vt.Buf{Addr: bufBase, Len: 4}, vt.Buf{Addr: bufBase + 0x100, Len: 4, Write: true})
	g.drv.Notify(1)
	id, ln, ok := r.PopUsed()
	if !ok || id != uint32(head) || ln != 4 || string(ram(g.mem, bufBase+0x100, 4)) != "ping" {
		t.Fatalf("used %v %d %d, data %q", ok, id, ln, ram(g.mem, bufBase+0x100, 4))
	}
	if !g.line || g.drv.R(0x60) != ISRQueue {
		t.Fatalf("line %v status %#x after completion", g.line, g.drv.R(0x60))
	}
	if len(g.irqs) != 1 || g.irqs[0] != "queue2" {
		t.Fatalf("irq callbacks %q", g.irqs)
	}
	if st := g.drv.Ack(); st != ISRQueue || g.line || g.drv.R(0x60) != 0 {
		t.Fatalf("after ack: status %#x line %v", st, g.line)
	}
	// Kicking an idle queue does nothing.
	g.drv.Notify(0)
	if g.line {
		t.Fatal("spurious interrupt")
	}
	// Queue registers read back.
	g.drv.W(0x30, 1)
	if g.drv.R(0x44) != 1 || g.drv.R(0x34) != 256 {
		t.Fatal("QueueReady/QueueNumMax")
	}
	g.drv.W(0x30, 7) // no such queue
	if g.drv.R(0x34) != 0 || g.drv.R(0x44) != 0 {
		t.Fatal("absent queue must read as unavailable")
	}
	// Disable queue 1 (Linux del_vq) and reset.
	g.drv.W(0x30, 1)
	g.drv.W(0x44, 0)
	if g.drv.R(0x44) != 0 {
		t.Fatal("QueueReady did not clear")
	}
	g.drv.W(0x70, 0)
	if g.drv.Status() != 0 || g.dev.resets == 0 || g.s.Queue(0).Ready() {
		t.Fatal("reset")
	}
}

func TestFeatureNegotiation(t *testing.T) {
	g := newRig(t, 1, 8)
	s := g.s
	s.SetStatus(StatusAcknowledge | StatusDriver)
	s.SetDeviceFeatureSelect(1)
	if s.DeviceFeature() != 1 { // VERSION_1 is bit 32
		t.Fatalf("high word %#x", s.DeviceFeature())
	}
	s.SetDeviceFeatureSelect(2)
	if s.DeviceFeature() != 0 {
		t.Fatal("select 2 must read 0")
	}
	// Accepting an unoffered bit is refused.
	s.SetDriverFeatureSelect(0)
	s.SetDriverFeature(1 << 4)
	s.SetDriverFeatureSelect(1)
	s.SetDriverFeature(1)
	s.SetStatus(StatusAcknowledge | StatusDriver | StatusFeaturesOK)
	if s.Status()&StatusFeaturesOK != 0 {
		t.Fatal("FEATURES_OK kept with unoffered feature bit 4")
	}
	// Lacking VERSION_1 is refused.
	s.SetDriverFeatureSelect(0)
	s.SetDriverFeature(1 << 3)
	s.SetDriverFeatureSelect(1)
	s.SetDriverFeature(0)
	s.SetStatus(StatusFeaturesOK)
	if s.Status()&StatusFeaturesOK != 0 {
		t.Fatal("FEATURES_OK kept without VERSION_1")
	}
	// DRIVER_OK before FEATURES_OK is refused.
	s.SetStatus(StatusDriverOK)
	if s.Status()&StatusDriverOK != 0 || g.dev.activates != 0 {
		t.Fatal("DRIVER_OK accepted before FEATURES_OK")
	}
	s.SetDriverFeature(1)
	if s.DriverFeature() != 1 {
		t.Fatal("driver feature readback")
	}
	s.SetStatus(StatusFeaturesOK)
	if s.Status()&StatusFeaturesOK == 0 || s.Features() != FeatureVersion1|1<<3 {
		t.Fatalf("FEATURES_OK refused: status %#x features %#x, logs %q", s.Status(), s.Features(), g.logs)
	}
	// Frozen after FEATURES_OK.
	s.SetDriverFeatureSelect(0)
	s.SetDriverFeature(0)
	if s.Features() != FeatureVersion1|1<<3 || s.DriverFeature() != 1<<3 {
		t.Fatal("driver features changed after FEATURES_OK")
	}
	// A driver cannot clear bits or set NEEDS_RESET.
	s.SetStatus(StatusNeedsReset)
	if s.Status() != StatusAcknowledge|StatusDriver|StatusFeaturesOK {
		t.Fatalf("status %#x", s.Status())
	}
	if len(g.logs) != 3 {
		t.Fatalf("want 3 refusal log lines, got %q", g.logs)
	}
	// Reset clears negotiation.
	s.SetStatus(0)
	if s.Features() != 0 || s.DriverFeature() != 0 || s.Status() != 0 {
		t.Fatal("reset kept feature state")
	}
}

func TestQueueEnableValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		size uint16
		desc uint64
		want string
	}{
		{"not power of two", 6, ringBase, "power of two"},
		{"above max", 512, ringBase, "above the device maximum"},
		{"outside RAM", 8, testRAM - 16, "outside guest RAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, 1, 8)
			s := g.s
			s.SetStatus(StatusAcknowledge | StatusDriver)
			s.SetDriverFeatureSelect(1)
			s.SetDriverFeature(1)
			s.SetStatus(StatusFeaturesOK)
			s.SetQueueSize(tc.size)
			s.SetQueueAddr(AreaDesc, tc.desc)
			s.SetQueueAddr(AreaDriver, 0x30000)
			s.SetQueueAddr(AreaDevice, 0x31000)
			s.SetQueueEnable(true)
			if s.QueueEnable() || s.Status()&StatusNeedsReset == 0 {
				t.Fatalf("enabled=%v status %#x", s.QueueEnable(), s.Status())
			}
			if len(g.logs) != 1 || !strings.Contains(g.logs[0], tc.want) || !strings.Contains(g.logs[0], "needs reset") {
				t.Fatalf("logs %q", g.logs)
			}
			// DRIVER_OK now does not activate the device.
			s.SetStatus(StatusDriverOK)
			if g.dev.activates != 0 {
				t.Fatal("activated a device that needs reset")
			}
			s.SetStatus(0)
			if s.Status() != 0 {
				t.Fatal("reset must clear NEEDS_RESET")
			}
		})
	}
	// Enabling before FEATURES_OK is ignored.
	g := newRig(t, 1, 8)
	g.s.SetQueueEnable(true)
	if g.s.QueueEnable() {
		t.Fatal("queue enabled before FEATURES_OK")
	}
}

func TestMalformedRingNeedsReset(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, 1, 4)
			g.init(t, ^uint64(0))
			tc.setup(g.mem, g.rings[0])
			g.drv.Notify(0)
			st := g.drv.Status()
			if st&StatusNeedsReset == 0 {
				t.Fatalf("status %#x, want NEEDS_RESET", st)
			}
			if !g.line || g.drv.R(0x60)&ISRConfig == 0 {
				t.Fatal("NEEDS_RESET after DRIVER_OK must raise a config interrupt")
			}
			if len(g.logs) != 1 || !strings.Contains(g.logs[0], "queue 0") || !strings.Contains(g.logs[0], tc.want) {
				t.Fatalf("logs %q", g.logs)
			}
			// Further kicks do nothing and do not log again.
			g.drv.Notify(0)
			if g.dev.notifies != 1 || len(g.logs) != 1 {
				t.Fatalf("notifies %d logs %d after NEEDS_RESET", g.dev.notifies, len(g.logs))
			}
			// The driver resets and reinitializes; the device works again.
			g.rings[0] = vt.NewRing(g.mem, 4, ringBase)
			g.init(t, ^uint64(0))
			g.drv.Ack()
			g.rings[0].Add(vt.Buf{Addr: bufBase, Len: 4}, vt.Buf{Addr: bufBase + 0x100, Len: 4, Write: true})
			g.drv.Notify(0)
			if _, _, ok := g.rings[0].PopUsed(); !ok {
				t.Fatal("device dead after reset")
			}
		})
	}
}

func TestActivateErrorNeedsReset(t *testing.T) {
	g := newRig(t, 1, 8)
	g.dev.activeErr = errors.New("no backend")
	g.drv.Init(^uint64(0), g.rings)
	if g.drv.Status()&StatusNeedsReset == 0 || len(g.logs) != 1 || !strings.Contains(g.logs[0], "no backend") {
		t.Fatalf("status %#x logs %q", g.drv.Status(), g.logs)
	}
}

func TestConfigSpaceAndGeneration(t *testing.T) {
	g := newRig(t, 1, 8)
	copy(g.dev.cfg[:], []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	for _, c := range []struct {
		off  uint64
		size uint8
		want uint64
	}{
		{0, 1, 1},
		{1, 2, 0x0302},
		{4, 4, 0x08070605},
		{0, 8, 0x0807060504030201},
		{10, 2, 0x0c0b},
		{10, 4, 0}, // crosses the end of the 12-byte space
		{12, 1, 0},
		{0xff, 1, 0},
		{0x100, 4, 0},
		{0, 3, 0}, // bad size
	} {
		if got := g.drv.Config(c.off, c.size); got != c.want {
			t.Errorf("config %#x/%d = %#x, want %#x", c.off, c.size, got, c.want)
		}
	}
	g.mmio.Write(0x100+8, 4, 0xdeadbeef)
	if g.drv.Config(8, 4) != 0xdeadbeef {
		t.Error("config write")
	}
	g.mmio.Write(0x100+10, 8, 0) // out of range: ignored
	if g.drv.Config(8, 4) != 0xdeadbeef {
		t.Error("out-of-range config write changed the space")
	}
	gen := g.drv.R(0xfc)
	g.s.ConfigChanged()
	if g.drv.R(0xfc) == gen {
		t.Fatal("generation did not change")
	}
	if g.line {
		t.Fatal("config interrupt before DRIVER_OK")
	}
	g.init(t, ^uint64(0))
	g.s.ConfigChanged()
	if !g.line || g.drv.Ack() != ISRConfig || g.line {
		t.Fatal("config-change interrupt")
	}
	if g.irqs[len(g.irqs)-1] != "config0" {
		t.Fatalf("irq callbacks %q", g.irqs)
	}
}

func TestMSIXAndISR(t *testing.T) {
	g := newRig(t, 2, 8)
	s := g.s
	if s.MSIXConfig() != NoVector || s.QueueMSIXVector() != NoVector {
		t.Fatal("vectors must start at NO_VECTOR")
	}
	s.SetMSIXConfig(0) // no table yet
	if s.MSIXConfig() != NoVector {
		t.Fatal("vector accepted without an MSI-X table")
	}
	s.SetMSIXTableSize(3)
	s.SetMSIXConfig(2)
	s.SetQueueSelect(1)
	s.SetQueueMSIXVector(1)
	s.SetQueueSelect(0)
	s.SetQueueMSIXVector(3) // out of range
	if s.MSIXConfig() != 2 || s.MSIXVector(IRQConfig, -1) != 2 || s.MSIXVector(IRQQueue, 1) != 1 || s.MSIXVector(IRQQueue, 0) != NoVector || s.MSIXVector(IRQQueue, 9) != NoVector {
		t.Fatal("vector bookkeeping")
	}
	s.SetQueueSelect(1)
	if s.QueueNotifyOff() != 1 || s.NumQueues() != 2 || s.QueueSize() != 256 {
		t.Fatal("notify off / num queues / default size")
	}
	s.SetQueueAddr(AreaDriver, 0x1234_5678_9abc)
	s.SetQueueAddrHalf(AreaDriver, true, 7)
	if s.QueueAddr(AreaDriver) != 0x7_5678_9abc {
		t.Fatalf("addr %#x", s.QueueAddr(AreaDriver))
	}
	g.init(t, ^uint64(0))
	g.rings[0].Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	s.Notify(0)
	if s.ReadISR() != ISRQueue || s.InterruptStatus() != 0 || g.line {
		t.Fatal("ISR must be read-to-clear and drop the line")
	}
	s.SetStatus(0)
	if s.MSIXConfig() != NoVector || s.MSIXVector(IRQQueue, 1) != NoVector {
		t.Fatal("reset must clear vectors")
	}
}

// TestNotifyBounded: a driver that keeps re-posting buffers while the
// device works (another vCPU recycling used descriptors) cannot keep one
// Notify running for more than queue-size chains; the rest is finished
// later, bounded again.
func TestNotifyBounded(t *testing.T) {
	g := newRig(t, 1, 8)
	g.init(t, ^uint64(0))
	r := g.rings[0]
	posted := 0
	g.dev.afterChain = func(int) {
		if posted < 100 {
			r.PopUsed()
			r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
			posted++
		}
	}
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	g.drv.Notify(0)
	if r.UsedIdx() != 8 || !g.s.Pending() {
		t.Fatalf("one Notify completed %d chains (pending %v), want the queue size 8", r.UsedIdx(), g.s.Pending())
	}
	g.drv.Ack() // the interrupt handler's ACK resumes the queue
	if r.UsedIdx() != 16 {
		t.Fatalf("after ACK used %d", r.UsedIdx())
	}
	for i := 0; i < 20 && g.s.Pending(); i++ {
		g.s.Poll()
	}
	if r.UsedIdx() != 101 || g.s.Pending() {
		t.Fatalf("used %d pending %v", r.UsedIdx(), g.s.Pending())
	}
}

func TestStopEarlyResumes(t *testing.T) {
	g := newRig(t, 1, 8)
	g.init(t, ^uint64(0))
	g.dev.stopAfter = 1
	for i := 0; i < 3; i++ {
		g.rings[0].Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	}
	g.drv.Notify(0)
	if g.rings[0].UsedIdx() != 1 || !g.s.Pending() {
		t.Fatal("first notify")
	}
	g.s.Poll()
	g.s.Poll()
	if g.rings[0].UsedIdx() != 3 {
		t.Fatalf("used %d", g.rings[0].UsedIdx())
	}
	g.s.Poll() // queue now empty: no longer pending
	if g.s.Pending() {
		t.Fatal("still pending")
	}
	// Reset drops pending work.
	g.rings[0].Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	g.rings[0].Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	g.drv.Notify(0)
	g.drv.W(0x70, 0)
	if g.s.Pending() {
		t.Fatal("pending after reset")
	}
}

func TestEventIdxThroughTransport(t *testing.T) {
	g := newRig(t, 1, 8)
	g.init(t, ^uint64(0))
	r := g.rings[0]
	r.SetUsedEvent(1) // interrupt when the second completion is written
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	g.drv.Notify(0)
	if g.line {
		t.Fatal("interrupt before used_event")
	}
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	g.drv.Notify(0)
	if !g.line {
		t.Fatal("no interrupt at used_event")
	}
	if r.AvailEvent() != 2 {
		t.Fatalf("avail_event %d", r.AvailEvent())
	}
}

func TestStateConcurrent(t *testing.T) {
	g := newRig(t, 2, 64)
	g.init(t, ^uint64(0))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				switch (i + w) % 5 {
				case 0:
					g.mmio.Write(0x50, 4, uint64(i&1))
				case 1:
					g.mmio.Read(0x60, 4)
				case 2:
					g.mmio.Write(0x64, 4, 3)
				case 3:
					g.mmio.Read(0x100, 4)
				case 4:
					g.s.Poll()
				}
			}
		}(w)
	}
	wg.Wait()
}

func TestMMIOAllocs(t *testing.T) {
	g := newRig(t, 1, 16)
	// Replace the recording callbacks with allocation-free ones.
	g.s.irq = func(IRQKind, int) {}
	g.s.SetLine(func(level bool) { g.line = level })
	g.init(t, ^uint64(0))
	r := g.rings[0]
	fill(g.mem, bufBase, []byte("0123456789"))
	allocs := testing.AllocsPerRun(200, func() {
		r.Add(vt.Buf{Addr: bufBase, Len: 10}, vt.Buf{Addr: bufBase + 0x100, Len: 10, Write: true})
		r.AddIndirect(tableBase, vt.Buf{Addr: bufBase, Len: 4}, vt.Buf{Addr: bufBase + 0x200, Len: 4, Write: true})
		g.drv.Notify(0)
		g.drv.Ack()
		for {
			if _, _, ok := r.PopUsed(); !ok {
				break
			}
		}
		g.drv.Config(0, 4)
		g.drv.R(0x70)
		g.drv.R(0xfc)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per notify round trip, want 0", allocs)
	}
	if r.UsedIdx() == 0 {
		t.Fatal("nothing processed")
	}
}

// TestFailLoggingBounded: a guest that breaks its device, resets it and
// breaks it again 300 times gets the first 64 reasons logged and then
// only the 128th and 256th (with their counts): its console flood is
// bounded; every failure still sets NEEDS_RESET.
func TestFailLoggingBounded(t *testing.T) {
	g := newRig(t, 1, 8)
	s := g.s
	for i := 0; i < 300; i++ {
		s.SetStatus(StatusAcknowledge | StatusDriver)
		s.Fail("broken ring")
		s.Fail("broken again before the reset") // not logged: already failed
		if s.Status()&StatusNeedsReset == 0 {
			t.Fatalf("failure %d: status %#x", i+1, s.Status())
		}
		s.SetStatus(0)
	}
	if len(g.logs) != 66 {
		t.Fatalf("%d log lines, want 66: %q", len(g.logs), g.logs)
	}
	if !strings.Contains(g.logs[64], "(failure 128;") || !strings.Contains(g.logs[65], "(failure 256;") {
		t.Fatalf("the sparse lines: %q", g.logs[64:])
	}
}
