package e1000

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/drivers/nic"
	"juice/drivers/pci"
)

const testRAM = 4 << 20

// models are the two register layouts the driver distinguishes.
var models = []Model{Model82540EM, Model82574L}

// newRig returns a model of kind and the driver brought up on it.
func newRig(t testing.TB, kind Model, o Options) (*model, *Dev) {
	t.Helper()
	m := newModel(t, kind, testRAM)
	d, err := New(m, m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, kind, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, d
}

// frame returns an n-byte Ethernet frame whose bytes depend on seed.
func frame(n int, seed int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i*7 + seed*13)
	}
	copy(f, []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0, 0, 0, byte(seed >> 8), byte(seed)})
	return f
}

// recvAll drains the driver (no test delivers more than 1000 frames
// between drains: more means the driver returns stale descriptors).
func recvAll(t *testing.T, d *Dev) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	for len(got) <= 1000 {
		n, ok, err := d.Recv(buf)
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if !ok {
			return got
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
	t.Fatalf("Recv keeps returning frames (%d so far)", len(got))
	return nil
}

// TestBringUp checks the registers after New on both models: reset,
// interrupts masked, MAC from receive address 0, link set up without
// link or PHY reset, multicast table cleared, both rings programmed with
// every receive descriptor armed, RCTL and TCTL as the manual's
// initialization sections say, checksum offload off.
func TestBringUp(t *testing.T) {
	for _, kind := range models {
		t.Run(kind.String(), func(t *testing.T) {
			m, d := newRig(t, kind, Options{Name: "eth0"})
			if m.resets != 1 {
				t.Errorf("%d resets, want 1", m.resets)
			}
			if ims := m.r(regIMSshadow); ims != 0 {
				t.Errorf("IMS %#x: interrupts left enabled", ims)
			}
			if d.MAC() != m.mac || d.macFrom != "RAL0" {
				t.Errorf("MAC %x from %s, want %x from RAL0", d.MAC(), d.macFrom, m.mac)
			}
			ctrl := m.r(regCTRL)
			if ctrl&ctrlSLU == 0 || ctrl&(ctrlLRST|ctrlPHYRST|ctrlVME|ctrlILOS|ctrlRST) != 0 {
				t.Errorf("CTRL %#x", ctrl)
			}
			for i := uint32(0); i < mtaEntries; i++ {
				if v := m.r(regMTA + 4*i); v != 0 {
					t.Fatalf("MTA[%d] = %#x, not cleared", i, v)
				}
			}
			if rctl := m.r(regRCTL); rctl != rctlEN|rctlBAM|rctlSECRC {
				t.Errorf("RCTL %#x, want EN|BAM|SECRC with 2048-byte buffers", rctl)
			}
			if tctl := m.r(regTCTL); tctl != tctlEN|tctlPSP|0x0F<<4|0x40<<12 {
				t.Errorf("TCTL %#x", tctl)
			}
			wantTIPG := uint32(10 | 8<<10 | 6<<20)
			if kind == Model82574L {
				wantTIPG = 8 | 8<<10 | 6<<20
				if m.r(regTXDCTL)&txdctlGran == 0 {
					t.Errorf("TXDCTL %#x lacks bit 22", m.r(regTXDCTL))
				}
			}
			if v := m.r(regTIPG); v != wantTIPG {
				t.Errorf("TIPG %#x, want %#x", v, wantTIPG)
			}
			if v := m.r(regRXCSUM); v != 0 {
				t.Errorf("RXCSUM %#x: offload left on", v)
			}
			if m.r(regRDLEN) != DefaultDescs*16 || m.r(regRDH) != 0 || m.r(regRDT) != DefaultDescs-1 {
				t.Errorf("receive ring: RDLEN %d RDH %d RDT %d", m.r(regRDLEN), m.r(regRDH), m.r(regRDT))
			}
			if m.r(regTDLEN) != DefaultDescs*16 || m.r(regTDH) != 0 || m.r(regTDT) != 0 {
				t.Errorf("transmit ring: TDLEN %d TDH %d TDT %d", m.r(regTDLEN), m.r(regTDH), m.r(regTDT))
			}
			if m.r(regRDBAL)%4096 != 0 || m.r(regTDBAL)%4096 != 0 || m.r(regRDBAL) == m.r(regTDBAL) {
				t.Errorf("ring bases %#x %#x", m.r(regRDBAL), m.r(regTDBAL))
			}
			seen := map[uint64]bool{}
			for i := uint32(0); i < DefaultDescs; i++ {
				desc := d.rx.desc(i)
				a := load64(desc)
				if a == 0 || a%bufSize != 0 || seen[a] || load64(desc[8:]) != 0 {
					t.Fatalf("receive descriptor %d: buffer %#x, write-back %#x", i, a, load64(desc[8:]))
				}
				seen[a] = true
			}
			if !d.LinkUp() || d.Name() != "eth0" || d.MTU() != 1500 || d.Model() != kind {
				t.Errorf("LinkUp %v Name %q MTU %d Model %v", d.LinkUp(), d.Name(), d.MTU(), d.Model())
			}
			want := fmt.Sprintf("%v 52:54:00:12:34:56 (from RAL0), link up, 256 receive and 256 transmit descriptors", kind)
			if s := d.Describe(); s != want {
				t.Errorf("Describe %q, want %q", s, want)
			}
		})
	}
}

// TestPromiscuous checks that the option sets RCTL.UPE and MPE.
func TestPromiscuous(t *testing.T) {
	m, _ := newRig(t, Model82540EM, Options{Promiscuous: true})
	if rctl := m.r(regRCTL); rctl != rctlEN|rctlBAM|rctlSECRC|rctlUPE|rctlMPE {
		t.Errorf("RCTL %#x", rctl)
	}
}

// TestMACFromEEPROM: with receive address 0 empty, or holding a
// multicast address, the MAC comes from EEPROM words 0-2 (each model's
// EERD layout) and is written to receive address 0, marked valid.
func TestMACFromEEPROM(t *testing.T) {
	for _, kind := range models {
		for _, how := range []string{"empty", "multicast"} {
			t.Run(kind.String()+"/"+how, func(t *testing.T) {
				m := newModel(t, kind, testRAM)
				want := m.mac
				if how == "empty" {
					m.ralEmpty = true
				} else {
					m.mac[0] |= 1 // the EEPROM keeps the good address
				}
				d, err := New(m, m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, kind, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if d.MAC() != want || d.macFrom != "EEPROM" {
					t.Errorf("MAC %x from %s, want %x from the EEPROM", d.MAC(), d.macFrom, want)
				}
				if ral, rah := m.r(regRAL0), m.r(regRAH0); ral != 0x12005452 || rah != 0x5634|rahAV {
					t.Errorf("RAL0 %#x RAH0 %#x", ral, rah)
				}
			})
		}
	}
}

// TestNoMAC: no valid address anywhere, or an EEPROM that never answers,
// is an error.
func TestNoMAC(t *testing.T) {
	cases := []struct {
		name  string
		setup func(m *model)
		want  error
	}{
		{"eeprom-dead", func(m *model) { m.eepromDead = true }, ErrEEPROM},
		{"eeprom-zero", func(m *model) { m.eerom[0], m.eerom[1], m.eerom[2] = 0, 0, 0 }, ErrNoMAC},
		{"eeprom-multicast", func(m *model) { m.eerom[0] |= 1 }, ErrNoMAC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, Model82540EM, testRAM)
			m.ralEmpty = true
			c.setup(m)
			_, err := New(m, m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, Model82540EM, Options{EEPROMTimeout: 5 * time.Millisecond})
			if !errors.Is(err, c.want) || !errors.Is(err, ErrNoMAC) {
				t.Errorf("New: %v, want %v", err, c.want)
			}
		})
	}
}

// allOnes is a register block no device answers.
type allOnes struct{}

func (allOnes) Read8(uint32) uint8           { return 0xFF }
func (allOnes) Read16(uint32) uint16         { return 0xFFFF }
func (allOnes) Read32(uint32) uint32         { return pci.Absent }
func (allOnes) Write8(uint32, uint8)         {}
func (allOnes) Write16(uint32, uint16)       {}
func (allOnes) Write32(off uint32, v uint32) {}

// TestBringUpFailures: no device, a reset that never finishes, ring
// registers that do not read back, no DMA memory, DMA memory outside the
// window, bad ring sizes.
func TestBringUpFailures(t *testing.T) {
	dma := func() *bumpDMA { return &bumpDMA{next: 1 << 20, end: testRAM} }
	t.Run("absent", func(t *testing.T) {
		m := newModel(t, Model82540EM, testRAM)
		if _, err := New(allOnes{}, m.mem, dma(), Model82540EM, Options{}); !errors.Is(err, ErrNoDevice) {
			t.Errorf("New: %v", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		m := newModel(t, Model82540EM, testRAM)
		m.stuckReset = true
		start := time.Now()
		_, err := New(m, m.mem, dma(), Model82540EM, Options{ResetTimeout: 20 * time.Millisecond})
		if !errors.Is(err, ErrReset) {
			t.Errorf("New: %v", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("gave up after %v", el)
		}
	})
	for _, reg := range []uint32{regRDBAL, regRDLEN, regRDT, regTDBAL} {
		t.Run(fmt.Sprintf("readback-%#x", reg), func(t *testing.T) {
			m := newModel(t, Model82540EM, testRAM)
			m.dropWrites[reg] = true
			if _, err := New(m, m.mem, dma(), Model82540EM, Options{}); !errors.Is(err, ErrRegisters) {
				t.Errorf("New: %v", err)
			}
			if m.r(regRCTL) != 0 || m.r(regTCTL) != 0 {
				t.Errorf("device left running: RCTL %#x TCTL %#x", m.r(regRCTL), m.r(regTCTL))
			}
		})
	}
	t.Run("no-dma", func(t *testing.T) {
		m := newModel(t, Model82540EM, testRAM)
		if _, err := New(m, m.mem, &bumpDMA{fail: true}, Model82540EM, Options{}); !errors.Is(err, ErrNoMemory) {
			t.Errorf("New: %v", err)
		}
	})
	t.Run("dma-outside", func(t *testing.T) {
		m := newModel(t, Model82540EM, testRAM)
		if _, err := New(m, m.mem, &bumpDMA{next: testRAM - 4096, end: 1 << 40}, Model82540EM, Options{}); !errors.Is(err, ErrNoMemory) {
			t.Errorf("New: %v", err)
		}
	})
	for _, n := range []int{4, 12, 8192} {
		t.Run(fmt.Sprintf("ring-%d", n), func(t *testing.T) {
			m := newModel(t, Model82540EM, testRAM)
			if _, err := New(m, m.mem, dma(), Model82540EM, Options{RxDescs: n}); err == nil {
				t.Errorf("a ring of %d descriptors accepted", n)
			}
		})
	}
}

// TestFramesBothWays sends and receives frames of the smallest, a
// typical and the largest sizes, and one with an 802.1Q tag, on both
// models: the bytes arrive unchanged and are counted.
func TestFramesBothWays(t *testing.T) {
	for _, kind := range models {
		t.Run(kind.String(), func(t *testing.T) {
			m, d := newRig(t, kind, Options{})
			sizes := []int{14, 60, 590, 1514}
			var out, in [][]byte
			for i, n := range sizes {
				f := frame(n, i)
				out = append(out, f)
				if err := d.Send(f); err != nil {
					t.Fatalf("Send %d bytes: %v", n, err)
				}
			}
			sent := m.frames()
			if len(sent) != len(out) {
				t.Fatalf("device sent %d frames, want %d", len(sent), len(out))
			}
			for i := range out {
				if !bytes.Equal(sent[i], out[i]) {
					t.Errorf("frame %d: device sent %d bytes %x..., want %d", i, len(sent[i]), sent[i][:14], len(out[i]))
				}
			}
			for i, n := range append(sizes, maxRxFrame) {
				f := frame(n, 100+i)
				in = append(in, f)
				if !m.deliver(f) {
					t.Fatalf("device could not deliver frame %d", i)
				}
			}
			got := recvAll(t, d)
			if len(got) != len(in) {
				t.Fatalf("received %d frames, want %d", len(got), len(in))
			}
			for i := range in {
				if !bytes.Equal(got[i], in[i]) {
					t.Errorf("frame %d: received %d bytes, want %d", i, len(got[i]), len(in[i]))
				}
			}
			s := d.Stats()
			want := nic.Stats{TxFrames: 4, TxBytes: 14 + 60 + 590 + 1514, RxFrames: 5, RxBytes: 14 + 60 + 590 + 1514 + 1518}
			if s != want {
				t.Errorf("Stats %+v, want %+v", s, want)
			}
			if free := m.freeRx(); free != DefaultDescs-1 {
				t.Errorf("device owns %d receive descriptors after the driver drained the ring, want %d", free, DefaultDescs-1)
			}
		})
	}
}

// TestRingWrap moves many times a ring's worth of frames each way through
// 8-descriptor rings, in bursts that fill the receive ring: order and
// contents survive the wrap, RDT walks the whole ring, and the device
// never gets more than 7 receive descriptors.
func TestRingWrap(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{RxDescs: 8, TxDescs: 8})
	for i := 0; i < 50; i++ {
		if err := d.Send(frame(60+i, i)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	sent := m.frames()
	if len(sent) != 50 {
		t.Fatalf("%d frames sent", len(sent))
	}
	for i, f := range sent {
		if !bytes.Equal(f, frame(60+i, i)) {
			t.Fatalf("frame %d differs", i)
		}
	}
	next := 0
	for burst := 0; burst < 8; burst++ {
		for k := 0; k < 7; k++ {
			if !m.deliver(frame(100+next+k, next+k)) {
				t.Fatalf("burst %d: device out of descriptors after %d frames", burst, k)
			}
		}
		if m.deliver(frame(64, 999)) {
			t.Fatalf("burst %d: the device had an eighth descriptor", burst)
		}
		for _, f := range recvAll(t, d) {
			if !bytes.Equal(f, frame(100+next, next)) {
				t.Fatalf("frame %d differs after wrapping", next)
			}
			next++
		}
	}
	if next != 56 {
		t.Errorf("received %d frames, want 56", next)
	}
	seen := map[uint32]bool{}
	for _, v := range m.rdtLog {
		seen[v] = true
	}
	if len(seen) != 8 {
		t.Errorf("RDT took %d distinct values, want all 8", len(seen))
	}
}

// TestTxFull: with the device not transmitting, the ring takes 7 frames
// (one descriptor stays free) and the 8th gets nic.ErrFull, counted;
// once the device catches up the descriptors are reclaimed and every
// queued frame has gone out in order.
func TestTxFull(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{TxDescs: 8})
	m.setPaused(true)
	for i := 0; i < 7; i++ {
		if err := d.Send(frame(64, i)); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := d.Send(frame(64, 7)); !errors.Is(err, nic.ErrFull) {
		t.Fatalf("Send into a full ring: %v, want nic.ErrFull", err)
	}
	if s := d.Stats(); s.TxFull != 1 || s.TxFrames != 7 {
		t.Errorf("Stats %+v", s)
	}
	if n := len(m.frames()); n != 0 {
		t.Fatalf("paused device sent %d frames", n)
	}
	if n := d.TxFree(); n != 0 {
		t.Errorf("TxFree %d on a full ring", n)
	}
	m.setPaused(false)
	if n := d.TxFree(); n != 7 {
		t.Errorf("TxFree %d once the device caught up, want 7", n)
	}
	for i := 7; i < 20; i++ {
		if err := d.Send(frame(64, i)); err != nil {
			t.Fatalf("Send %d after the device caught up: %v", i, err)
		}
	}
	sent := m.frames()
	if len(sent) != 20 {
		t.Fatalf("%d frames sent, want 20", len(sent))
	}
	for i, f := range sent {
		if !bytes.Equal(f, frame(64, i)) {
			t.Errorf("frame %d out of order", i)
		}
	}
}

// TestTxErrorsCounted: descriptors the device completes with excess
// collisions are reclaimed and counted.
func TestTxErrorsCounted(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{TxDescs: 8})
	m.txStatus = txdStatEC
	for i := 0; i < 4; i++ {
		if err := d.Send(frame(64, i)); err != nil {
			t.Fatal(err)
		}
	}
	if c := d.Counters(); c.TxErrors != 3 || c.TxFrames != 4 {
		t.Errorf("Counters %+v, want 3 errors reclaimed of 4 frames", c)
	}
}

// TestSendFrameSize: frames shorter than a header or longer than
// MTU+14 are refused, nothing queued.
func TestSendFrameSize(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{})
	for _, n := range []int{0, 13, 1515, 4000} {
		if err := d.Send(make([]byte, n)); !errors.Is(err, ErrFrameSize) {
			t.Errorf("Send %d bytes: %v", n, err)
		}
	}
	if len(m.frames()) != 0 || d.Stats() != (nic.Stats{}) || m.r(regTDT) != 0 {
		t.Errorf("refused frames reached the ring: %+v", d.Stats())
	}
}

// TestRxDropped: frames with receive errors, spanning descriptors,
// oversize, runts, lengths beyond the buffer and frames longer than the
// caller's buffer are dropped and counted by reason; the good frames
// between them come through in order, a checksum-error bit alone does
// not drop a frame, and every descriptor goes back to the device.
func TestRxDropped(t *testing.T) {
	m, d := newRig(t, Model82574L, Options{RxDescs: 16})
	good := []int{0, 1, 2, 3}
	steps := []func() bool{
		func() bool { return m.deliver(frame(100, good[0])) },
		func() bool { return m.deliverRaw(frame(100, 50), -1, 0, rxdErrCE) },
		func() bool { return m.deliverRaw(frame(100, 51), -1, 0, rxdErrRXE|rxdErrSE) },
		func() bool { return m.deliverRaw(frame(200, good[1]), -1, 0, rxdErrTCP|rxdErrIPE) },
		func() bool { return m.deliver(frame(1600, 52)) },               // oversize
		func() bool { return m.deliverRaw(frame(100, 53), 4000, 0, 0) }, // length beyond the buffer
		func() bool { return m.deliverRaw(frame(100, 54), 9, 0, 0) },    // runt
		func() bool { return m.deliverRaw(frame(100, 55), 0, 0, 0) },
		func() bool { return m.deliver(frame(3000, 56)) }, // two descriptors
		func() bool { return m.deliver(frame(300, good[2])) },
	}
	for i, s := range steps {
		if !s() {
			t.Fatalf("step %d: device could not deliver", i)
		}
	}
	got := recvAll(t, d)
	// A frame longer than the caller's buffer: dropped, the next returned.
	m.deliver(frame(1000, 57))
	m.deliver(frame(400, good[3]))
	small := make([]byte, 500)
	n, ok, err := d.Recv(small)
	if !ok || err != nil {
		t.Fatalf("Recv after a too-long frame: ok %v err %v", ok, err)
	}
	got = append(got, append([]byte(nil), small[:n]...))
	wantLen := []int{100, 200, 300, 400}
	if len(got) != len(wantLen) {
		t.Fatalf("received %d frames, want %d", len(got), len(wantLen))
	}
	for i := range got {
		if !bytes.Equal(got[i], frame(wantLen[i], good[i])) {
			t.Errorf("frame %d: %d bytes, want the %d-byte good frame", i, len(got[i]), wantLen[i])
		}
	}
	c := d.Counters()
	want := Counters{RxFrames: 4, RxBytes: 1000, RxErrors: 2, RxSpanning: 1, RxOversize: 1, RxRunt: 2, RxBadLen: 1, RxTooBig: 1}
	if c != want {
		t.Errorf("Counters %+v\nwant     %+v", c, want)
	}
	if s := d.Stats(); s.RxDrop != 8 {
		t.Errorf("Stats.RxDrop %d, want 8", s.RxDrop)
	}
	if free := m.freeRx(); free != 15 {
		t.Errorf("device owns %d receive descriptors, want 15", free)
	}
}

// TestRxSpanningAcrossCalls: a frame spanning descriptors whose end the
// device has not written yet when Recv runs is still dropped whole.
func TestRxSpanningAcrossCalls(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{RxDescs: 8})
	m.writeBack(2048, rxdStatDD, 0, 1) // first part, no EOP
	if got := recvAll(t, d); len(got) != 0 {
		t.Fatalf("received %d frames from half a frame", len(got))
	}
	m.writeBack(2048, rxdStatDD, 0, 2)
	m.writeBack(100, rxdStatDD|rxdStatEOP, 0, 3) // its end
	m.deliver(frame(80, 9))
	got := recvAll(t, d)
	if len(got) != 1 || !bytes.Equal(got[0], frame(80, 9)) {
		t.Fatalf("received %d frames, want only the 80-byte one", len(got))
	}
	if c := d.Counters(); c.RxSpanning != 1 || c.RxDrops() != 1 {
		t.Errorf("Counters %+v", c)
	}
}

// TestRecvEmpty: nothing received is ok=false with no error and no
// register write.
func TestRecvEmpty(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{})
	before := len(m.rdtLog)
	if n, ok, err := d.Recv(make([]byte, 2048)); n != 0 || ok || err != nil {
		t.Errorf("Recv on an empty ring: %d %v %v", n, ok, err)
	}
	if len(m.rdtLog) != before {
		t.Errorf("Recv on an empty ring wrote RDT")
	}
}

// TestLinkDown: a device whose link is down still comes up (after the
// link wait); LinkUp reports it, nothing is received, frames queue until
// the ring is full; when the link comes up they go out.
func TestLinkDown(t *testing.T) {
	m := newModel(t, Model82540EM, testRAM)
	m.link = false
	start := time.Now()
	d, err := New(m, m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, Model82540EM, Options{TxDescs: 8, LinkTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with the link down: %v", err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("New waited %v for the link, want the link timeout", el)
	}
	if d.LinkUp() || !strings.Contains(d.Describe(), "link down") {
		t.Errorf("LinkUp %v, Describe %q", d.LinkUp(), d.Describe())
	}
	if m.deliver(frame(64, 1)) {
		t.Errorf("device received with the link down")
	}
	var err2 error
	sent := 0
	for ; sent < 10; sent++ {
		if err2 = d.Send(frame(64, sent)); err2 != nil {
			break
		}
	}
	if sent != 7 || !errors.Is(err2, nic.ErrFull) {
		t.Errorf("%d frames queued with the link down, then %v; want 7 and nic.ErrFull", sent, err2)
	}
	m.setLink(true)
	if !d.LinkUp() {
		t.Errorf("LinkUp false after the link came up")
	}
	if err := d.Send(frame(64, 7)); err != nil {
		t.Errorf("Send after the link came up: %v", err)
	}
	if n := len(m.frames()); n != 8 {
		t.Errorf("%d frames sent once the link came up, want 8", n)
	}
}

// TestNoAllocs: Send and Recv allocate nothing.
func TestNoAllocs(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{})
	m.quiet = true
	out, in, buf := frame(1514, 1), frame(1000, 2), make([]byte, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Send(out); err != nil {
			t.Fatal(err)
		}
		m.deliver(in)
		if _, ok, _ := d.Recv(buf); !ok {
			t.Fatal("no frame")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Send+Recv", allocs)
	}
}

// TestConcurrent runs four senders and a receiver at once (run with
// -race): every frame goes out exactly once and every delivered frame
// comes back in order.
func TestConcurrent(t *testing.T) {
	m, d := newRig(t, Model82540EM, Options{RxDescs: 32, TxDescs: 32})
	const senders, each, inbound = 4, 300, 1000
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for d.Send(frame(64, s*each+i)) != nil {
				}
			}
		}(s)
	}
	recvd := 0
	buf := make([]byte, 2048)
	for next := 0; recvd < inbound; {
		if next < inbound && m.deliver(frame(64+next%100, next)) {
			next++
		}
		if n, ok, err := d.Recv(buf); ok {
			if err != nil || !bytes.Equal(buf[:n], frame(64+recvd%100, recvd)) {
				t.Fatalf("frame %d differs (%v)", recvd, err)
			}
			recvd++
		}
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, f := range m.frames() {
		seen[string(f)] = true
	}
	if len(seen) != senders*each {
		t.Errorf("%d distinct frames sent, want %d", len(seen), senders*each)
	}
}

// fakeCS is a configuration space with one function's command register.
type fakeCS struct{ cmd uint32 }

func (c *fakeCS) Read32(a pci.Addr, off uint16) uint32 {
	if off == pci.RegCommand {
		return c.cmd
	}
	return 0
}

func (c *fakeCS) Write32(a pci.Addr, off uint16, v uint32) {
	if off == pci.RegCommand {
		c.cmd = v & 0xFFFF
	}
}

// TestProbe: Probe takes 8086:100e, 100f and 10d3 with a memory BAR 0,
// enables memory decoding and bus mastering with INTx off, and maps 128
// KiB of BAR 0; it refuses other devices and unusable BARs, and turns bus
// mastering off again when bring-up fails.
func TestProbe(t *testing.T) {
	bar0 := pci.BAR{Kind: pci.BARMem32, Base: 0xFEBC0000, Size: 0x20000}
	fn := func(dev uint16, bar pci.BAR) *pci.Function {
		f := &pci.Function{Addr: pci.Addr{Bus: 0, Dev: 3, Fn: 0}, VendorID: 0x8086, DeviceID: dev}
		f.BARs[0] = bar
		return f
	}
	for _, dev := range []uint16{0x100E, 0x100F, 0x10D3} {
		t.Run(fmt.Sprintf("%04x", dev), func(t *testing.T) {
			kind, _ := Lookup(0x8086, dev)
			m := newModel(t, kind, testRAM)
			cs := &fakeCS{}
			mapper := func(bar uint8, off, n uint32) (pci.Regs, error) {
				if bar != 0 || off != 0 || n != RegsSize {
					t.Errorf("mapped BAR %d %#x+%#x", bar, off, n)
				}
				return m, nil
			}
			d, err := Probe(cs, fn(dev, bar0), mapper, m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, Options{Name: "eth1"})
			if err != nil {
				t.Fatal(err)
			}
			if want := uint32(pci.CmdMemory | pci.CmdBusMaster | pci.CmdINTxDisable); cs.cmd != want {
				t.Errorf("command %#x, want %#x", cs.cmd, want)
			}
			if d.Model() != kind || d.addr != (pci.Addr{Dev: 3}) || d.Name() != "eth1" {
				t.Errorf("model %v addr %v name %q", d.Model(), d.addr, d.Name())
			}
		})
	}
	refuse := []struct {
		name string
		f    *pci.Function
	}{
		{"virtio-net", &pci.Function{VendorID: 0x1AF4, DeviceID: 0x1041}},
		{"82571", fn(0x105E, bar0)},
		{"io-bar", fn(0x100E, pci.BAR{Kind: pci.BARIO, Base: 0xC000, Size: 0x40})},
		{"unassigned", fn(0x100E, pci.BAR{Kind: pci.BARMem32, Size: 0x20000})},
		{"small", fn(0x100E, pci.BAR{Kind: pci.BARMem32, Base: 0xFEBC0000, Size: 0x1000})},
	}
	for _, c := range refuse {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, Model82540EM, testRAM)
			cs := &fakeCS{}
			if _, err := Probe(cs, c.f, func(uint8, uint32, uint32) (pci.Regs, error) { return m, nil },
				m.mem, &bumpDMA{next: 1 << 20, end: testRAM}, Options{}); err == nil {
				t.Error("accepted")
			}
			if cs.cmd != 0 {
				t.Errorf("command register written: %#x", cs.cmd)
			}
		})
	}
	for _, c := range []string{"map-error", "reset"} {
		t.Run(c, func(t *testing.T) {
			m := newModel(t, Model82540EM, testRAM)
			m.stuckReset = true
			cs := &fakeCS{cmd: pci.CmdIO}
			mapper := func(uint8, uint32, uint32) (pci.Regs, error) {
				if c == "map-error" {
					return nil, errors.New("not mapped")
				}
				return m, nil
			}
			_, err := Probe(cs, fn(0x100E, bar0), mapper, m.mem, &bumpDMA{next: 1 << 20, end: testRAM},
				Options{ResetTimeout: 5 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), "e1000 00:03.0 (82540EM)") {
				t.Errorf("Probe: %v", err)
			}
			if cs.cmd&pci.CmdBusMaster != 0 {
				t.Errorf("bus mastering left on after a failed bring-up (command %#x)", cs.cmd)
			}
		})
	}
}

// FuzzRecv lets a device write arbitrary lengths, status and error bits
// into receive descriptors (and scribble over their buffer addresses):
// Recv never panics, never returns more than the caller's buffer or the
// device's buffer, returns only the bytes the device wrote, hands every
// descriptor back through an in-range RDT, and accounts for every
// descriptor consumed.
func FuzzRecv(f *testing.F) {
	f.Add([]byte{100, 0, 3, 0, 0, 8, 3, 0}, uint16(2048))
	f.Add([]byte{0, 8, 1, 0, 200, 0, 3, 0x80, 50, 0, 3, 0}, uint16(64))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, bufLen uint16) {
		m, d := newRig(t, Model82540EM, Options{RxDescs: 8, TxDescs: 8})
		buf := make([]byte, int(bufLen)%4096)
		consumed := 0
		for k := 0; len(data) >= 4; k++ {
			length := uint16(data[0]) | uint16(data[1])<<8
			status, errs := data[2]|rxdStatDD, data[3]
			data = data[4:]
			fill := byte(k)
			if !m.writeBack(length, status, errs, fill) {
				continue
			}
			consumed++
			for polls := 0; ; polls++ {
				if polls > 8 {
					t.Fatalf("Recv returned %d frames after one descriptor was written", polls)
				}
				n, ok, err := d.Recv(buf)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if n > len(buf) || n > maxRxFrame || n < ethHeader {
					t.Fatalf("Recv returned %d bytes into a %d-byte buffer", n, len(buf))
				}
				for _, b := range buf[:n] {
					if b != fill {
						t.Fatalf("Recv returned bytes the device did not write")
					}
				}
			}
		}
		c := d.Counters()
		if c.RxFrames+c.RxDrops() > uint64(consumed) {
			t.Errorf("%d frames and %d drops from %d descriptors", c.RxFrames, c.RxDrops(), consumed)
		}
		if m.freeRx() != 7 {
			// Every descriptor looked at is handed back at once, even
			// inside a frame spanning descriptors.
			t.Errorf("device owns %d descriptors, want 7", m.freeRx())
		}
	})
}
