package uart

import (
	"bytes"
	"testing"

	"juice/drivers/portio"
)

// fake16550 models the registers of one 16550A that the driver touches.
type fake16550 struct {
	base     uint16
	absent   bool // nothing decodes the ports: reads float to 0xFF
	noSCR    bool // an 8250 without a scratch register
	dll      uint8
	dlm      uint8
	ier      uint8
	lcr      uint8
	fcr      uint8
	mcr      uint8
	scr      uint8
	tx       []byte
	rx       []byte
	theNever bool // THRE never sets
	thrBusy  int  // LSR reads before THRE sets after each transmit
	busyLeft int
	lsrReads int
	log      []string // register writes, in order
}

func (f *fake16550) ports() *portio.Ports {
	return &portio.Ports{In8: f.in8, Out8: f.out8}
}

func (f *fake16550) in8(port uint16) uint8 {
	if f.absent || port < f.base || port > f.base+7 {
		return 0xFF
	}
	switch port - f.base {
	case regData:
		if f.lcr&lcrDLAB != 0 {
			return f.dll
		}
		if len(f.rx) == 0 {
			return 0
		}
		b := f.rx[0]
		f.rx = f.rx[1:]
		return b
	case regIER:
		if f.lcr&lcrDLAB != 0 {
			return f.dlm
		}
		return f.ier
	case regLCR:
		return f.lcr
	case regMCR:
		return f.mcr
	case regLSR:
		f.lsrReads++
		var v uint8
		if len(f.rx) > 0 {
			v |= lsrDR
		}
		if !f.theNever {
			if f.busyLeft > 0 {
				f.busyLeft--
			} else {
				v |= lsrTHRE
			}
		}
		return v
	case regSCR:
		if f.noSCR {
			return 0xFF
		}
		return f.scr
	}
	return 0
}

func (f *fake16550) out8(port uint16, v uint8) {
	if f.absent || port < f.base || port > f.base+7 {
		return
	}
	names := [8]string{"data", "ier", "fcr", "lcr", "mcr", "lsr", "msr", "scr"}
	name := names[port-f.base]
	switch port - f.base {
	case regData:
		if f.lcr&lcrDLAB != 0 {
			f.dll = v
			name = "dll"
		} else {
			f.tx = append(f.tx, v)
			f.busyLeft = f.thrBusy
		}
	case regIER:
		if f.lcr&lcrDLAB != 0 {
			f.dlm = v
			name = "dlm"
		} else {
			f.ier = v
		}
	case regFCR:
		f.fcr = v
	case regLCR:
		f.lcr = v
	case regMCR:
		f.mcr = v
	case regSCR:
		f.scr = v
	}
	if name != "data" {
		f.log = append(f.log, name)
	}
}

func TestInitProgramsRegisters(t *testing.T) {
	for _, tc := range []struct {
		baud     uint32
		dll, dlm uint8
	}{
		{115200, 1, 0},
		{38400, 3, 0},
		{9600, 12, 0},
		{300, 0x80, 0x01}, // divisor 384
		{2, 0x00, 0xE1},   // divisor 57600 = 0xE100
	} {
		f := &fake16550{base: COM1, ier: 0x0F, lcr: 0x1B}
		var u UART
		if st := u.Init(f.ports(), COM1, tc.baud); st != StatusOK {
			t.Fatalf("baud %d: Init = %v", tc.baud, st)
		}
		if f.dll != tc.dll || f.dlm != tc.dlm {
			t.Errorf("baud %d: DLL/DLM = %#x/%#x, want %#x/%#x", tc.baud, f.dll, f.dlm, tc.dll, tc.dlm)
		}
		if f.lcr != 0x03 {
			t.Errorf("baud %d: LCR = %#x, want 0x03 (8N1, DLAB clear)", tc.baud, f.lcr)
		}
		if f.ier != 0 {
			t.Errorf("baud %d: IER = %#x, want 0 (interrupts off)", tc.baud, f.ier)
		}
		if f.fcr&0x01 == 0 || f.fcr&0x06 != 0x06 {
			t.Errorf("baud %d: FCR = %#x, want FIFO enabled and both FIFOs cleared", tc.baud, f.fcr)
		}
		if f.mcr&0x03 != 0x03 || f.mcr&0x10 != 0 {
			t.Errorf("baud %d: MCR = %#x, want DTR|RTS without loopback", tc.baud, f.mcr)
		}
		if u.Port() != COM1 || !u.Ready() {
			t.Errorf("baud %d: Port/Ready = %#x/%v", tc.baud, u.Port(), u.Ready())
		}
		// IER must be cleared before DLAB is set (so the write does not hit
		// DLM), and the divisor must be written while DLAB is set.
		want := []string{"scr", "scr", "ier", "lcr", "dll", "dlm", "lcr", "fcr", "mcr"}
		if len(f.log) != len(want) {
			t.Fatalf("baud %d: register writes %v, want %v", tc.baud, f.log, want)
		}
		for i := range want {
			if f.log[i] != want[i] {
				t.Fatalf("baud %d: register writes %v, want %v", tc.baud, f.log, want)
			}
		}
	}
}

func TestInitRejects(t *testing.T) {
	for _, baud := range []uint32{0, 1, 7, 115201, 1 << 31, 100000} {
		f := &fake16550{base: COM1}
		var u UART
		if st := u.Init(f.ports(), COM1, baud); st != StatusBadBaud {
			t.Errorf("baud %d: Init = %v, want %v", baud, st, StatusBadBaud)
		}
		if len(f.log) != 0 {
			t.Errorf("baud %d: registers written despite bad baud: %v", baud, f.log)
		}
		u.WriteString("x")
		if len(f.tx) != 0 {
			t.Errorf("baud %d: rejected UART transmitted", baud)
		}
	}
	var u UART
	if st := u.Init(nil, COM1, 115200); st != StatusNoPorts {
		t.Errorf("nil ports: %v", st)
	}
	if st := u.Init(&portio.Ports{}, COM1, 115200); st != StatusNoPorts {
		t.Errorf("empty ports: %v", st)
	}
}

func TestAbsent(t *testing.T) {
	for name, f := range map[string]*fake16550{
		"floating bus": {base: COM1, absent: true},
		"no scratch":   {base: COM1, noSCR: true},
		"other port":   {base: COM2},
	} {
		var u UART
		if st := u.Init(f.ports(), COM1, 115200); st != StatusAbsent {
			t.Errorf("%s: Init = %v, want %v", name, st, StatusAbsent)
		}
		if u.Ready() {
			t.Errorf("%s: absent UART reports ready", name)
		}
		u.WriteString("hello\n")
		if _, ok := u.TryReadByte(); ok {
			t.Errorf("%s: absent UART returned data", name)
		}
		if len(f.tx) != 0 || f.lsrReads != 0 {
			t.Errorf("%s: absent UART was driven (tx %q, %d LSR reads)", name, f.tx, f.lsrReads)
		}
	}
}

func TestZeroValue(t *testing.T) {
	var u UART
	u.WriteString("no panic\n")
	u.Write([]byte("x"))
	if _, ok := u.TryReadByte(); ok {
		t.Fatal("zero UART returned data")
	}
}

func TestCRLF(t *testing.T) {
	f := &fake16550{base: COM2, thrBusy: 3}
	var u UART
	if st := u.Init(f.ports(), COM2, 115200); st != StatusOK {
		t.Fatal(st)
	}
	u.WriteString("a\nb\n")
	u.Write([]byte("\nc"))
	if err := u.WriteByte('\n'); err != nil {
		t.Fatal(err)
	}
	want := "a\r\nb\r\n\r\nc\n"
	if string(f.tx) != want {
		t.Fatalf("transmitted %q, want %q", f.tx, want)
	}
	if u.Dropped() != 0 {
		t.Fatalf("dropped %d bytes from a working UART", u.Dropped())
	}
}

func TestBoundedWait(t *testing.T) {
	f := &fake16550{base: COM1}
	var u UART
	if st := u.Init(f.ports(), COM1, 115200); st != StatusOK {
		t.Fatal(st)
	}
	f.theNever = true
	u.WriteByte('x')
	if f.lsrReads != MaxPolls {
		t.Fatalf("first byte to a dead UART polled LSR %d times, want %d", f.lsrReads, MaxPolls)
	}
	if len(f.tx) != 0 || u.Dropped() != 1 {
		t.Fatalf("tx %q dropped %d; want nothing sent, 1 dropped", f.tx, u.Dropped())
	}
	// Once stuck, each byte costs one poll.
	f.lsrReads = 0
	u.WriteString("abc\n")
	if f.lsrReads != 5 || u.Dropped() != 6 {
		t.Fatalf("stuck UART: %d LSR reads, %d dropped; want 5 and 6", f.lsrReads, u.Dropped())
	}
	// It recovers as soon as THRE is seen again.
	f.theNever = false
	f.thrBusy = 10
	u.WriteString("ok")
	if !bytes.Equal(f.tx, []byte("ok")) {
		t.Fatalf("recovered UART sent %q, want \"ok\"", f.tx)
	}
}

func TestTryReadByte(t *testing.T) {
	f := &fake16550{base: COM1}
	var u UART
	u.Init(f.ports(), COM1, 9600)
	if _, ok := u.TryReadByte(); ok {
		t.Fatal("data reported with empty RX")
	}
	f.rx = []byte("hi")
	b1, ok1 := u.TryReadByte()
	b2, ok2 := u.TryReadByte()
	_, ok3 := u.TryReadByte()
	if !ok1 || !ok2 || ok3 || b1 != 'h' || b2 != 'i' {
		t.Fatalf("reads = %q,%v %q,%v _,%v", b1, ok1, b2, ok2, ok3)
	}
	// A UART that vanished after Init (LSR floats to 0xFF) has no data.
	f.absent = true
	if _, ok := u.TryReadByte(); ok {
		t.Fatal("floating LSR taken as data ready")
	}
}

func TestNoAllocs(t *testing.T) {
	f := &fake16550{base: COM1}
	var u UART
	u.Init(f.ports(), COM1, 115200)
	f.tx = make([]byte, 0, 1<<20)
	f.log = make([]string, 0, 64)
	if n := testing.AllocsPerRun(1000, func() {
		u.WriteByte('x')
		u.WriteString("a\n")
		u.TryReadByte()
	}); n != 0 {
		t.Fatalf("hot path allocates %v times", n)
	}
}

func TestStatusString(t *testing.T) {
	seen := map[string]bool{}
	for s := StatusOK; s <= StatusNoPorts; s++ {
		str := s.String()
		if str == "" || seen[str] || str == Status(200).String() {
			t.Errorf("status %d has a bad or duplicate name %q", s, str)
		}
		seen[str] = true
	}
}
