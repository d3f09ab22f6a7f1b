package virtio

import (
	"encoding/binary"
	"errors"
	"testing"

	"juice/mm/phys"
)

// handDevice plays the device side of a queue by hand: it reads chains
// from the available ring and writes used elements, straight into the
// shared memory.
type handDevice struct {
	t         *testing.T
	mem       []byte
	q         *Queue
	lastAvail uint16
	usedIdx   uint16
}

type chainDesc struct {
	addr  uint64
	ln    uint32
	flags uint16
}

// pop takes the next available chain and returns its head and buffers.
func (d *handDevice) pop() (uint16, []chainDesc, bool) {
	le := binary.LittleEndian
	_, availPA, _ := d.q.Addrs()
	idx := le.Uint16(d.mem[availPA+2:])
	if idx == d.lastAvail {
		return 0, nil, false
	}
	size := uint64(d.q.Size())
	head := le.Uint16(d.mem[availPA+4+2*(uint64(d.lastAvail)%size):])
	d.lastAvail++
	descPA, _, _ := d.q.Addrs()
	var out []chainDesc
	for i, n := head, 0; ; n++ {
		if n > int(size) {
			d.t.Fatal("descriptor chain loops")
		}
		e := d.mem[descPA+16*uint64(i):]
		c := chainDesc{le.Uint64(e), le.Uint32(e[8:]), le.Uint16(e[12:])}
		out = append(out, c)
		if c.flags&descFNext == 0 {
			break
		}
		i = le.Uint16(e[14:])
		if uint64(i) >= size {
			d.t.Fatalf("next %d out of range", i)
		}
	}
	return head, out, true
}

// push writes a used element and publishes it.
func (d *handDevice) push(id, ln uint32) {
	le := binary.LittleEndian
	_, _, usedPA := d.q.Addrs()
	e := usedPA + 4 + 8*(uint64(d.usedIdx)%uint64(d.q.Size()))
	le.PutUint32(d.mem[e:], id)
	le.PutUint32(d.mem[e+4:], ln)
	d.usedIdx++
	le.PutUint16(d.mem[usedPA+2:], d.usedIdx)
}

func newHandQueue(t *testing.T, size uint16) (*Queue, *handDevice) {
	t.Helper()
	ram := make([]byte, 1<<20)
	for i := range ram {
		ram[i] = 0xA5 // DMA memory is not zeroed: NewQueue clears what it uses
	}
	mem := phys.FromSlice(ram)
	q, err := NewQueue(&mem, &bump{next: 0x1000, end: 1 << 20}, size)
	if err != nil {
		t.Fatal(err)
	}
	return q, &handDevice{t: t, mem: ram, q: q}
}

// TestQueueLayout checks the areas' placement and alignment (virtio 1.2
// section 2.7: descriptor table 16-byte, available ring 2-byte, used
// ring 4-byte aligned) and that the available ring asks for no
// interrupts.
func TestQueueLayout(t *testing.T) {
	q, d := newHandQueue(t, 256)
	desc, avail, used := q.Addrs()
	if desc != 0x1000 || avail != desc+16*256 || used%usedAlign != 0 || used < avail+4+2*256+2 {
		t.Fatalf("layout desc %#x avail %#x used %#x", desc, avail, used)
	}
	if used+4+8*256+2 > desc+QueueBytes(256) {
		t.Fatal("used ring past QueueBytes")
	}
	if f := binary.LittleEndian.Uint16(d.mem[avail:]); f != availNoIntr {
		t.Fatalf("avail flags %#x", f)
	}
	q.SetInterrupts(true)
	if f := binary.LittleEndian.Uint16(d.mem[avail:]); f != 0 {
		t.Fatalf("avail flags %#x after SetInterrupts(true)", f)
	}
	if _, err := NewQueue(nil, nil, 3); err == nil {
		t.Error("queue size 3 accepted")
	}
	ram := make([]byte, 64<<10)
	mem := phys.FromSlice(ram)
	if _, err := NewQueue(&mem, &bump{next: 0, end: 4096}, 1024); err != ErrNoMemory {
		t.Errorf("queue larger than the DMA pool: %v", err)
	}
}

// TestQueueChains posts chains until the queue is full, completes them out
// of order, and checks that descriptors are reused and every chain reads
// back as written.
func TestQueueChains(t *testing.T) {
	q, d := newHandQueue(t, 8)
	bufs := []Buf{{PA: 0x10000, Len: 16}, {PA: 0x20000, Len: 4096, Write: true}, {PA: 0x30000, Len: 1, Write: true}}
	h1, err := q.Add(bufs)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := q.Add(bufs[:2])
	if err != nil {
		t.Fatal(err)
	}
	if q.Free() != 3 || q.InFlight() != 2 {
		t.Fatalf("free %d in flight %d", q.Free(), q.InFlight())
	}
	if _, err := q.Add(bufs[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Add(bufs); err != ErrQueueFull {
		t.Fatalf("4 descriptors from a queue with 2 free: %v", err)
	}
	got := map[uint16][]chainDesc{}
	for {
		h, c, ok := d.pop()
		if !ok {
			break
		}
		got[h] = c
	}
	if len(got) != 3 {
		t.Fatalf("device saw %d chains", len(got))
	}
	c := got[h1]
	if len(c) != 3 || c[0] != (chainDesc{0x10000, 16, descFNext}) || c[1] != (chainDesc{0x20000, 4096, descFNext | descFWrite}) || c[2] != (chainDesc{0x30000, 1, descFWrite}) {
		t.Fatalf("chain %d read back as %+v", h1, c)
	}
	// Complete the second chain first.
	d.push(uint32(h2), 100)
	d.push(uint32(h1), 4097)
	if h, n, ok, err := q.Used(); !ok || err != nil || h != h2 || n != 100 {
		t.Fatalf("Used = %d %d %v %v", h, n, ok, err)
	}
	if h, n, ok, err := q.Used(); !ok || err != nil || h != h1 || n != 4097 {
		t.Fatalf("Used = %d %d %v %v", h, n, ok, err)
	}
	if _, _, ok, _ := q.Used(); ok {
		t.Fatal("a third used element out of nowhere")
	}
	if q.Free() != 7 || q.InFlight() != 1 {
		t.Fatalf("free %d in flight %d after completions", q.Free(), q.InFlight())
	}
	// Cycle many chains through so that indexes wrap and every
	// descriptor is reused.
	for i := 0; i < 70000; i++ {
		n := 1 + i%7
		h, err := q.Add(make([]Buf, n))
		if err != nil {
			t.Fatalf("round %d: %v (free %d)", i, err, q.Free())
		}
		hh, c, ok := d.pop()
		if !ok || hh != h || len(c) != n {
			t.Fatalf("round %d: device saw head %d len %d, want %d len %d", i, hh, len(c), h, n)
		}
		d.push(uint32(h), 0)
		if u, _, ok, err := q.Used(); !ok || err != nil || u != h {
			t.Fatalf("round %d: used %d %v %v", i, u, ok, err)
		}
	}
	if q.Free() != 7 {
		t.Fatalf("descriptors leaked: %d free", q.Free())
	}
	if n := testing.AllocsPerRun(100, func() {
		h, _ := q.Add(bufs)
		d.lastAvail++
		d.push(uint32(h), 0)
		q.Used()
	}); n != 0 {
		t.Fatalf("Add+Used allocate: %v", n)
	}
}

// TestQueueHostileDevice checks that used elements naming no chain in
// flight, or a used index running ahead, break the queue instead of
// corrupting it.
func TestQueueHostileDevice(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(d *handDevice, head uint16)
	}{
		{"id out of range", func(d *handDevice, head uint16) { d.push(100, 0) }},
		{"id not a head", func(d *handDevice, head uint16) { d.push(uint32(head)+1, 0) }},
		{"index runs ahead", func(d *handDevice, head uint16) { d.push(uint32(head), 0); d.push(uint32(head), 0) }},
		{"id of a returned chain", func(d *handDevice, head uint16) { d.usedIdx = 0; d.push(uint32(head), 0) }},
	} {
		q, d := newHandQueue(t, 8)
		head, _ := q.Add([]Buf{{PA: 1, Len: 1}, {PA: 2, Len: 2}})
		if c.name == "id of a returned chain" {
			d.push(uint32(head), 0)
			if _, _, ok, err := q.Used(); !ok || err != nil {
				t.Fatal(err)
			}
			q.Add([]Buf{{PA: 1, Len: 1}}) // reuses descriptor 0 as its head
			// The device completes descriptor 1, which belonged to the
			// returned chain and heads nothing in flight.
			d.usedIdx = 1
			le := binary.LittleEndian
			_, _, usedPA := q.Addrs()
			le.PutUint32(d.mem[usedPA+4+8:], uint32(head)+1)
			le.PutUint16(d.mem[usedPA+2:], 2)
		} else {
			c.do(d, head)
		}
		_, _, ok, err := q.Used()
		if ok || !errors.Is(err, ErrDevice) {
			t.Errorf("%s: Used = %v, %v; want ErrDevice", c.name, ok, err)
		}
		if _, err := q.Add([]Buf{{PA: 1, Len: 1}}); !errors.Is(err, ErrDevice) {
			t.Errorf("%s: Add after the device broke: %v", c.name, err)
		}
	}
}
