package virtio

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"juice/vmm"
	vt "juice/vmm/virtio/virtiotest"
)

const (
	testRAM   = 1 << 20
	ringBase  = 0x10000
	bufBase   = 0x40000
	tableBase = 0x80000
)

// newTestQueue returns RAM, a driver ring of size entries at ringBase and
// a device Queue configured over it.
func newTestQueue(t testing.TB, size uint16, eventIdx bool) (*vmm.GuestMemory, *vt.Ring, *Queue) {
	t.Helper()
	mem := vmm.NewGuestMemory(make([]byte, testRAM), 0)
	r := vt.NewRing(mem, size, ringBase)
	q := &Queue{index: 3}
	if err := q.Configure(mem, size, r.Desc, r.Avail, r.Used, eventIdx); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return mem, r, q
}

func fill(mem *vmm.GuestMemory, gpa uint64, b []byte) {
	s, ok := mem.Slice(gpa, uint64(len(b)))
	if !ok {
		panic("fill outside RAM")
	}
	copy(s, b)
}

func ram(mem *vmm.GuestMemory, gpa, n uint64) []byte {
	s, ok := mem.Slice(gpa, n)
	if !ok {
		panic("ram outside RAM")
	}
	return s
}

func TestQueueChainReadWriteDone(t *testing.T) {
	mem, r, q := newTestQueue(t, 8, false)
	fill(mem, bufBase, []byte("hello "))
	fill(mem, bufBase+0x100, []byte("world"))
	head := r.Add(
		vt.Buf{Addr: bufBase, Len: 6},
		vt.Buf{Addr: bufBase + 0x100, Len: 5},
		vt.Buf{Addr: bufBase + 0x200, Len: 4, Write: true},
		vt.Buf{Addr: bufBase + 0x300, Len: 20, Write: true},
	)
	c, ok, err := q.Next()
	if err != nil || !ok {
		t.Fatalf("Next: ok=%v err=%v", ok, err)
	}
	if c.Head != head || c.ReadLen() != 11 || c.WriteLen() != 24 {
		t.Fatalf("chain head %d rlen %d wlen %d", c.Head, c.ReadLen(), c.WriteLen())
	}
	if len(c.Readable()) != 2 || len(c.Writable()) != 2 {
		t.Fatalf("segments %d/%d", len(c.Readable()), len(c.Writable()))
	}
	var in [32]byte
	n := c.Read(in[:])
	if string(in[:n]) != "hello world" || c.Consumed() != 11 {
		t.Fatalf("Read got %q", in[:n])
	}
	if w := c.Write([]byte("0123456789")); w != 10 || c.Written() != 10 {
		t.Fatalf("Write %d", w)
	}
	if got := string(ram(mem, bufBase+0x200, 4)) + string(ram(mem, bufBase+0x300, 6)); got != "0123456789" {
		t.Fatalf("written across segments: %q", got)
	}
	// WriteAt: the last writable byte, without moving the cursor.
	if c.WriteAt([]byte{0xEE}, c.WriteLen()-1) != 1 || ram(mem, bufBase+0x300+19, 1)[0] != 0xEE {
		t.Fatal("WriteAt last byte")
	}
	if c.WriteAt([]byte{1, 2}, c.WriteLen()-1) != 1 {
		t.Fatal("WriteAt must stop at the end")
	}
	q.Done(c, 10)
	id, ln, ok := r.PopUsed()
	if !ok || id != uint32(head) || ln != 10 {
		t.Fatalf("used %d %d %v", id, ln, ok)
	}
	if !q.NeedInterrupt() {
		t.Fatal("want interrupt without NO_INTERRUPT")
	}
	if q.NeedInterrupt() {
		t.Fatal("no new used entries: no interrupt")
	}
	if _, ok, _ := q.Next(); ok {
		t.Fatal("queue should be empty")
	}
}

func TestQueueDoneClampsAndNoInterruptFlag(t *testing.T) {
	_, r, q := newTestQueue(t, 4, false)
	r.SetAvailFlags(vt.AvailNoInterrupt)
	r.Add(vt.Buf{Addr: bufBase, Len: 8, Write: true})
	c, _, _ := q.Next()
	q.Done(c, 1000)
	if _, ln, _ := r.PopUsed(); ln != 8 {
		t.Fatalf("used len %d, want clamp to 8", ln)
	}
	if q.NeedInterrupt() {
		t.Fatal("NO_INTERRUPT set: no interrupt wanted")
	}
}

func TestQueueZeroLengthBuffersSkipped(t *testing.T) {
	_, r, q := newTestQueue(t, 4, false)
	r.Add(vt.Buf{Addr: 0xffff_ffff_ffff_0000, Len: 0}, vt.Buf{Addr: bufBase, Len: 4}, vt.Buf{Addr: 7, Len: 0, Write: true})
	c, ok, err := q.Next()
	if err != nil || !ok || len(c.Readable()) != 1 || len(c.Writable()) != 0 || c.ReadLen() != 4 {
		t.Fatalf("ok=%v err=%v segs %d/%d", ok, err, len(c.Readable()), len(c.Writable()))
	}
}

func TestQueueIndirect(t *testing.T) {
	mem, r, q := newTestQueue(t, 4, false)
	fill(mem, bufBase, []byte("abcd"))
	head := r.AddIndirect(tableBase,
		vt.Buf{Addr: bufBase, Len: 4},
		vt.Buf{Addr: bufBase + 0x100, Len: 2, Write: true},
		vt.Buf{Addr: bufBase + 0x200, Len: 2, Write: true},
	)
	c, ok, err := q.Next()
	if err != nil || !ok || c.Head != head || c.ReadLen() != 4 || c.WriteLen() != 4 {
		t.Fatalf("ok=%v err=%v rlen %d wlen %d", ok, err, c.ReadLen(), c.WriteLen())
	}
	// Direct descriptors followed by one indirect one (virtio 1.2
	// §2.7.5.3.2 says the device must accept this), with WRITE set on the
	// indirect descriptor itself, which the device must ignore.
	vt.PutDescAt(mem, tableBase+0x100, bufBase+0x300, 8, vt.FWrite, 0)
	r.PutDesc(1, bufBase, 4, vt.FNext, 2)
	r.PutDesc(2, tableBase+0x100, 16, vt.FIndirect|vt.FWrite, 0)
	r.PushAvail(1)
	c, ok, err = q.Next()
	if err != nil || !ok || c.ReadLen() != 4 || c.WriteLen() != 8 {
		t.Fatalf("mixed chain: ok=%v err=%v rlen %d wlen %d", ok, err, c.ReadLen(), c.WriteLen())
	}
}

func TestNeedEvent(t *testing.T) {
	for _, tc := range []struct {
		ev, cur, old uint16
		want         bool
	}{
		{0, 1, 0, true},
		{0, 2, 1, false},
		{1, 2, 0, true},
		{5, 5, 4, false},
		{4, 5, 4, true},
		{0xffff, 0, 0xffff, true},   // wraps
		{0xffff, 1, 0xfffe, true},   // range [0xfffe, 1) contains 0xffff
		{3, 1, 0xfffe, false},       // range [0xfffe, 1) does not contain 3
		{0x8000, 0x10, 0x10, false}, // no progress
	} {
		if got := needEvent(tc.ev, tc.cur, tc.old); got != tc.want {
			t.Errorf("needEvent(%#x, %#x, %#x) = %v, want %v", tc.ev, tc.cur, tc.old, got, tc.want)
		}
	}
}

func TestQueueEventIdx(t *testing.T) {
	_, r, q := newTestQueue(t, 8, true)
	// The driver wants an interrupt once used idx passes 2 (i.e. when
	// the entry with index 2 is written).
	r.SetUsedEvent(2)
	r.SetAvailFlags(vt.AvailNoInterrupt) // must be ignored with EVENT_IDX
	for i := 0; i < 4; i++ {
		r.Add(vt.Buf{Addr: bufBase + uint64(i)*0x100, Len: 16, Write: true})
	}
	var got []bool
	for i := 0; i < 4; i++ {
		c, ok, err := q.Next()
		if !ok || err != nil {
			t.Fatalf("Next %d: %v %v", i, ok, err)
		}
		q.Done(c, 1)
		got = append(got, q.NeedInterrupt())
	}
	if want := []bool{false, false, true, false}; !equalBools(got, want) {
		t.Fatalf("interrupts %v, want %v", got, want)
	}
	// Batch: two completions with used_event inside the batch.
	r.SetUsedEvent(4)
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	for i := 0; i < 2; i++ {
		c, _, _ := q.Next()
		q.Done(c, 1)
	}
	if !q.NeedInterrupt() {
		t.Fatal("batch crossing used_event must interrupt")
	}
	// Empty queue: the device publishes avail_event = its next entry.
	if _, ok, _ := q.Next(); ok {
		t.Fatal("expected empty")
	}
	if ev := r.AvailEvent(); ev != 6 {
		t.Fatalf("avail_event %d, want 6", ev)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQueueBudget(t *testing.T) {
	_, r, q := newTestQueue(t, 8, false)
	for i := 0; i < 4; i++ {
		r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	}
	q.setBudget(2)
	n := 0
	for {
		c, ok, err := q.Next()
		if err != nil || !ok {
			break
		}
		q.Done(c, 0)
		n++
	}
	if n != 2 || !q.takeDeferred() {
		t.Fatalf("got %d chains, deferred must be set", n)
	}
	q.setBudget(0)
	for {
		c, ok, _ := q.Next()
		if !ok {
			break
		}
		q.Done(c, 0)
		n++
	}
	if n != 4 || q.takeDeferred() {
		t.Fatalf("got %d chains in all", n)
	}
}

func TestQueueStaleDoneIgnored(t *testing.T) {
	mem, r, q := newTestQueue(t, 4, false)
	r.Add(vt.Buf{Addr: bufBase, Len: 1, Write: true})
	c, _, _ := q.Next()
	r2 := vt.NewRing(mem, 4, ringBase)
	if err := q.Configure(mem, 4, r2.Desc, r2.Avail, r2.Used, false); err != nil {
		t.Fatal(err)
	}
	q.Done(c, 1)
	if r2.UsedIdx() != 0 {
		t.Fatal("a chain from before reconfiguration must not be returned")
	}
}

func TestQueueConfigureValidation(t *testing.T) {
	mem := vmm.NewGuestMemory(make([]byte, testRAM), 0)
	for _, tc := range []struct {
		name              string
		size              uint16
		desc, avail, used uint64
		want              string
	}{
		{"size 0", 0, 0x1000, 0x2000, 0x3000, "power of two"},
		{"size 3", 3, 0x1000, 0x2000, 0x3000, "power of two"},
		{"size 65535", 65535, 0x1000, 0x2000, 0x3000, "power of two"},
		{"size 2^16/2+1", 32769, 0x1000, 0x2000, 0x3000, "power of two"},
		{"desc misaligned", 4, 0x1008, 0x2000, 0x3000, "misaligned"},
		{"avail misaligned", 4, 0x1000, 0x2001, 0x3000, "misaligned"},
		{"used misaligned", 4, 0x1000, 0x2000, 0x3002, "misaligned"},
		{"desc past end", 16, testRAM - 0x80, 0x2000, 0x3000, "descriptor table"},
		{"avail overflow", 4, 0x1000, 0xffff_ffff_ffff_fffe, 0x3000, "available ring"},
		{"used past end", 4, 0x1000, 0x2000, testRAM, "used ring"},
		{"overlap", 4, 0x1000, 0x1030, 0x3000, "overlap"},
		{"used over avail", 4, 0x1000, 0x2000, 0x2008, "overlap"},
	} {
		q := &Queue{index: 1}
		err := q.Configure(mem, tc.size, tc.desc, tc.avail, tc.used, true)
		var ce *ChainError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "queue 1") {
			t.Errorf("%s: err %v, want *ChainError containing %q", tc.name, err, tc.want)
		}
		if q.Ready() {
			t.Errorf("%s: queue ready after failed Configure", tc.name)
		}
	}
	q := &Queue{}
	if err := q.Configure(mem, MaxQueueSize, 0, 16*MaxQueueSize, 0x90008, true); err != nil {
		t.Fatalf("max size: %v", err)
	}
}

// malformed sets up one broken ring state; the queue size is 4.
type malformed struct {
	name  string
	setup func(mem *vmm.GuestMemory, r *vt.Ring)
	want  string
}

var malformedCases = []malformed{
	{"self loop", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, bufBase, 4, vt.FNext, 0)
		r.PushAvail(0)
	}, "loop"},
	{"two-descriptor loop", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, bufBase, 4, vt.FNext, 1)
		r.PutDesc(1, bufBase, 4, vt.FNext, 0)
		r.PushAvail(0)
	}, "loop"},
	{"loop in indirect table", func(m *vmm.GuestMemory, r *vt.Ring) {
		vt.PutDescAt(m, tableBase, bufBase, 4, vt.FNext, 1)
		vt.PutDescAt(m, tableBase+16, bufBase, 4, vt.FNext, 0)
		r.PutDesc(0, tableBase, 32, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "loop"},
	{"chain longer than queue size", func(m *vmm.GuestMemory, r *vt.Ring) {
		for i := uint64(0); i < 8; i++ {
			vt.PutDescAt(m, tableBase+16*i, bufBase, 4, vt.FNext, uint16(i+1))
		}
		r.PutDesc(0, tableBase, 16*8, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "more than 4 buffers"},
	{"buffer past RAM end", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, testRAM-4, 8, 0, 0)
		r.PushAvail(0)
	}, "outside guest RAM"},
	{"buffer address+len overflows", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, 0xffff_ffff_ffff_fff0, 0x100, vt.FWrite, 0)
		r.PushAvail(0)
	}, "outside guest RAM"},
	{"buffer len 4 GiB-1 at 0", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, 0, 0xffff_ffff, 0, 0)
		r.PushAvail(0)
	}, "outside guest RAM"},
	{"indirect in indirect", func(m *vmm.GuestMemory, r *vt.Ring) {
		vt.PutDescAt(m, tableBase, tableBase+0x100, 16, vt.FIndirect, 0)
		vt.PutDescAt(m, tableBase+0x100, bufBase, 4, 0, 0)
		r.PutDesc(0, tableBase, 16, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "indirect descriptor inside an indirect table"},
	{"zero-length indirect table", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, tableBase, 0, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "empty"},
	{"indirect length not multiple of 16", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, tableBase, 24, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "multiple of 16"},
	{"indirect with NEXT", func(m *vmm.GuestMemory, r *vt.Ring) {
		vt.PutDescAt(m, tableBase, bufBase, 4, 0, 0)
		r.PutDesc(0, tableBase, 16, vt.FIndirect|vt.FNext, 1)
		r.PutDesc(1, bufBase, 4, 0, 0)
		r.PushAvail(0)
	}, "NEXT"},
	{"indirect table outside RAM", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, testRAM-16, 32, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "indirect table"},
	{"head out of range", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PushAvail(4)
	}, "head index 4"},
	{"next out of range", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, bufBase, 4, vt.FNext, 9)
		r.PushAvail(0)
	}, "next index 9"},
	{"next out of range in indirect", func(m *vmm.GuestMemory, r *vt.Ring) {
		vt.PutDescAt(m, tableBase, bufBase, 4, vt.FNext, 2)
		r.PutDesc(0, tableBase, 32, vt.FIndirect, 0)
		r.PushAvail(0)
	}, "next index 2"},
	{"readable after writable", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, bufBase, 4, vt.FWrite|vt.FNext, 1)
		r.PutDesc(1, bufBase, 4, 0, 0)
		r.PushAvail(0)
	}, "readable buffer after a device-writable"},
	{"avail idx jumps past queue size", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.PutDesc(0, bufBase, 4, 0, 0)
		r.SetAvailIdx(5)
	}, "5 entries ahead"},
	{"avail idx goes backwards", func(m *vmm.GuestMemory, r *vt.Ring) {
		r.SetAvailIdx(0xffff)
	}, "65535 entries ahead"},
}

func TestQueueMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			mem, r, q := newTestQueue(t, 4, false)
			tc.setup(mem, r)
			_, ok, err := q.Next()
			var ce *ChainError
			if ok || !errors.As(err, &ce) {
				t.Fatalf("ok=%v err=%v, want *ChainError", ok, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "queue 3") {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
			// Sticky: the queue stays broken.
			if _, ok, err2 := q.Next(); ok || err2 != err {
				t.Fatalf("second Next: ok=%v err=%v", ok, err2)
			}
			if q.Err() == nil {
				t.Fatal("Err() nil")
			}
		})
	}
}

// TestQueueNoDoubleFetch changes a descriptor after Next: the chain the
// device got must not change.
func TestQueueNoDoubleFetch(t *testing.T) {
	mem, r, q := newTestQueue(t, 4, false)
	r.Add(vt.Buf{Addr: bufBase, Len: 4, Write: true})
	c, _, _ := q.Next()
	r.PutDesc(0, testRAM-1, 0xffff, vt.FWrite, 0) // driver rewrites it
	if c.WriteLen() != 4 || &c.Writable()[0][0] != &ram(mem, bufBase, 1)[0] {
		t.Fatal("chain changed after the driver rewrote its descriptor")
	}
	if c.Write(bytes.Repeat([]byte{1}, 100)) != 4 {
		t.Fatal("write must stay within the validated buffer")
	}
}

func TestQueueAllocs(t *testing.T) {
	mem, r, q := newTestQueue(t, 16, true)
	fill(mem, bufBase, []byte("0123456789abcdef"))
	var tmp [16]byte
	allocs := testing.AllocsPerRun(200, func() {
		r.Add(vt.Buf{Addr: bufBase, Len: 16}, vt.Buf{Addr: bufBase + 0x100, Len: 16, Write: true})
		r.AddIndirect(tableBase, vt.Buf{Addr: bufBase, Len: 8}, vt.Buf{Addr: bufBase + 0x200, Len: 8, Write: true})
		for {
			c, ok, err := q.Next()
			if err != nil {
				panic(err)
			}
			if !ok {
				break
			}
			n := c.Read(tmp[:])
			c.Write(tmp[:n])
			q.Done(c, c.Written())
		}
		q.NeedInterrupt()
		for {
			if _, _, ok := r.PopUsed(); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request batch, want 0", allocs)
	}
}

// TestQueueDescriptorBudget: queue-size chains of queue-size descriptors
// each are cut off after MaxNotifyDescriptors reads, not 2^20.
func TestQueueDescriptorBudget(t *testing.T) {
	const size = 1024
	mem := vmm.NewGuestMemory(make([]byte, 4<<20), 0)
	r := vt.NewRing(mem, size, 0x100000)
	for i := uint16(0); i < size; i++ {
		r.PutDesc(i, bufBase, 1, vt.FNext, i+1)
	}
	r.PutDesc(size-1, bufBase, 1, 0, 0)
	for i := 0; i < size; i++ {
		r.PushAvail(0) // every entry is the same 1024-descriptor chain
	}
	q := &Queue{}
	if err := q.Configure(mem, size, r.Desc, r.Avail, r.Used, false); err != nil {
		t.Fatal(err)
	}
	q.setBudget(size)
	n := 0
	for {
		c, ok, err := q.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if c.ReadLen() != size {
			t.Fatalf("chain length %d", c.ReadLen())
		}
		q.Done(c, 0)
		n++
	}
	if n != MaxNotifyDescriptors/size || !q.takeDeferred() {
		t.Fatalf("%d chains before deferring, want %d", n, MaxNotifyDescriptors/size)
	}
}
