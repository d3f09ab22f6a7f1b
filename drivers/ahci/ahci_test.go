package ahci

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"juice/drivers/pci"
)

// pattern fills p with bytes derived from seed.
func pattern(p []byte, seed uint32) {
	for i := 0; i < len(p); i += 4 {
		var w [4]byte
		binary.LittleEndian.PutUint32(w[:], seed*2654435761+uint32(i))
		copy(p[i:], w[:])
	}
}

func TestParseIdentify(t *testing.T) {
	b := identifyPage("QEMU HARDDISK", "QM00001", 131072, 512, 0, true, true)
	id, err := ParseIdentify(b[:])
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Model: "QEMU HARDDISK", Serial: "QM00001", Firmware: "1.0", Sectors: 131072,
		LogicalSize: 512, PhysicalSize: 512, WriteCache: true, WriteCacheOn: true, FlushExt: true, Flush: true}
	if id != want {
		t.Errorf("got %+v\nwant %+v", id, want)
	}
	// 4 KiB logical blocks (4Kn), and 512-byte logical in 4 KiB
	// physical (512e).
	b = identifyPage("4KN", "S", 1000, 4096, 0, false, false)
	if id, err := ParseIdentify(b[:]); err != nil || id.LogicalSize != 4096 || id.PhysicalSize != 4096 || id.Sectors != 1000 || id.WriteCache || id.FlushExt || !id.Flush {
		t.Errorf("4Kn: %+v, %v", id, err)
	}
	b = identifyPage("512E", "S", 1000, 512, 3, true, true)
	if id, err := ParseIdentify(b[:]); err != nil || id.LogicalSize != 512 || id.PhysicalSize != 4096 {
		t.Errorf("512e: %+v, %v", id, err)
	}
	// Strings with control bytes and NUL padding.
	b = identifyPage("A\x01B", "\x00\x00", 8, 512, 0, false, false)
	b[511] = 0
	b[510] = 0 // no checksum
	if id, err := ParseIdentify(b[:]); err != nil || id.Model != "A?B" || id.Serial != "" {
		t.Errorf("strings: %+v, %v", id, err)
	}
	bad := func(what, want string, edit func(b []byte)) {
		t.Helper()
		b := identifyPage("M", "S", 1000, 512, 0, true, true)
		edit(b[:])
		if b[510] == 0xA5 {
			var sum byte
			for _, c := range b[:511] {
				sum += c
			}
			b[511] = -sum
		}
		if _, err := ParseIdentify(b[:]); err == nil || !errors.Is(err, ErrIdentify) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", what, err, want)
		}
	}
	bad("ATAPI", "not an ATA device", func(b []byte) { b[1] = 0x85 })
	bad("no DMA", "no DMA", func(b []byte) { b[99] = 0 })
	bad("no LBA48", "no 48-bit addressing", func(b []byte) { b[167] &^= 0x04 })
	bad("word 83 invalid", "no 48-bit addressing", func(b []byte) { b[167] = 0xC4 })
	bad("no capacity", "capacity of 0", func(b []byte) { clear(b[200:208]) })
	bad("odd logical size", "logical block of 300 words", func(b []byte) {
		b[213] |= 0x10
		binary.LittleEndian.PutUint32(b[234:], 300)
	})
	bad("huge logical size", "logical block of 65536 words", func(b []byte) {
		b[213] |= 0x10
		binary.LittleEndian.PutUint32(b[234:], 65536)
	})
	b = identifyPage("M", "S", 1000, 512, 0, true, true)
	b[200] ^= 1
	if _, err := ParseIdentify(b[:]); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("bad checksum: %v", err)
	}
	if _, err := ParseIdentify(make([]byte, 100)); err == nil {
		t.Error("100 bytes accepted")
	}
}

// TestOpenPorts: Open resets the HBA, lists every implemented port, and
// brings up the ATA disks (512-byte and 4 KiB logical blocks); an
// ATAPI device and an empty port are listed, not driven.
func TestOpenPorts(t *testing.T) {
	r := newRig(t,
		diskSpec{port: 0, size: 8 << 20, serial: "juice-data"},
		diskSpec{port: 2, atapi: true, size: 1 << 20},
		diskSpec{port: 4, size: 4 << 20, bs: 4096, serial: "four-k"})
	r.with(func(m *hbaModel) { m.pi = 0x1D; m.ports[1].impl = false }) // port 1 not implemented
	h := r.open(t, Options{})
	if got := h.Describe(); got != "AHCI 1.0, 6 ports (implemented 0x1d), 32 command slots, 64-bit DMA, NCQ" {
		t.Errorf("Describe: %q", got)
	}
	var got []string
	for i := range h.Ports {
		got = append(got, h.Ports[i].Describe())
	}
	want := []string{"port 0: ATA disk", "port 2: ATAPI device (not driven)", "port 3: empty", "port 4: ATA disk"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("ports:\n got %q\nwant %q", got, want)
	}
	ds := h.Disks()
	if len(ds) != 2 {
		t.Fatalf("%d disks", len(ds))
	}
	d0, d4 := ds[0], ds[1]
	if d0.Size() != 8<<20 || d0.BlockSize() != 512 || d0.Identity().Serial != "juice-data" || d0.Identity().Model != "JUICE MODEL DISK" ||
		!d0.CanFlush() || d0.ReadOnly() || d0.MaxTransfer() != DefaultMaxTransfer || d0.String() != "ahci test port 0" {
		t.Errorf("port 0: %v %+v", d0, d0.Identity())
	}
	if d4.Size() != 4<<20 || d4.BlockSize() != 4096 || d4.Port() != 4 {
		t.Errorf("port 4: size %d, block %d", d4.Size(), d4.BlockSize())
	}
	r.with(func(m *hbaModel) {
		if m.hbaResets != 1 || m.ghc&ghcAE == 0 || m.ghc&ghcIE != 0 {
			t.Errorf("HBA resets %d, GHC %#x", m.hbaResets, m.ghc)
		}
		if p := &m.ports[0]; p.clb < dmaFrom || p.cmd&(cmdST|cmdFRE) != cmdST|cmdFRE || p.dev.identifies != 1 {
			t.Errorf("port 0: CLB %#x, PxCMD %#x, %d IDENTIFYs", p.clb, p.cmd, p.dev.identifies)
		}
		if p := &m.ports[2]; p.cmd&(cmdST|cmdFRE) != 0 {
			t.Errorf("ATAPI port left running: PxCMD %#x", p.cmd)
		}
	})
}

// TestBIOSHandoff: with CAP2.BOH the driver takes ownership before the
// reset, waiting while the BIOS says it is busy.
func TestBIOSHandoff(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	r.with(func(m *hbaModel) { m.cap2, m.bohc, m.biosBusy = cap2BOH, bohcBOS, 100*time.Millisecond })
	h := r.open(t, Options{})
	if h.Handoff != "taken from the BIOS (handoff, after the BIOS finished)" || !strings.Contains(h.Describe(), h.Handoff) {
		t.Errorf("handoff %q", h.Handoff)
	}
	r.with(func(m *hbaModel) {
		if m.bohc&(bohcOOS|bohcBOS) != bohcOOS || !m.handoffBeforeReset {
			t.Errorf("BOHC %#x, handoff before the reset %v", m.bohc, m.handoffBeforeReset)
		}
	})

	r = newRig(t, diskSpec{port: 0, size: 1 << 20})
	r.with(func(m *hbaModel) { m.cap2, m.bohc, m.biosNeverLets = cap2BOH, bohcBOS, true })
	if h := r.open(t, Options{ResetTimeout: 30 * time.Millisecond}); !strings.Contains(h.Handoff, "did not let go; overridden") || len(h.Disks()) != 1 {
		t.Errorf("BIOS that never lets go: %q, %d disks", h.Handoff, len(h.Disks()))
	}
}

func TestOpenFailures(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	r.with(func(m *hbaModel) { m.absent = true })
	if _, err := Open(r.m, r.m.size, &r.mem, r.dma, Options{}); !errors.Is(err, ErrNoHBA) {
		t.Errorf("absent HBA: %v", err)
	}
	if _, err := Open(r.m, 0x80, &r.mem, r.dma, Options{}); !errors.Is(err, ErrNoHBA) {
		t.Errorf("128-byte ABAR: %v", err)
	}
	r = newRig(t, diskSpec{port: 0, size: 1 << 20})
	r.with(func(m *hbaModel) { m.hrStuck = true })
	if _, err := Open(r.m, r.m.size, &r.mem, r.dma, Options{Name: "x", ResetTimeout: 20 * time.Millisecond}); !errors.Is(err, ErrReset) ||
		!strings.Contains(err.Error(), "ahci x: GHC.HR still set after 20ms") {
		t.Errorf("stuck reset: %v", err)
	}
	// A device that aborts IDENTIFY, one without 48-bit addressing, and
	// a port whose registers lie past the mapped ABAR: each port fails
	// alone.
	r = newRig(t, diskSpec{port: 0, size: 1 << 20}, diskSpec{port: 1, size: 1 << 20}, diskSpec{port: 2, size: 1 << 20}, diskSpec{port: 5, size: 1 << 20})
	r.with(func(m *hbaModel) {
		m.ports[0].fault = fault{kind: faultDevErr, cmd: ataIdentify}
		m.ports[1].dev.identify[167] &^= 0x04
		m.ports[1].dev.identify[510] = 0
	})
	h, err := Open(r.m, portBase+portStride*5, &r.mem, r.dma, Options{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		port int
		want string
	}{
		{0, "ahci x port 0: IDENTIFY DEVICE: device reported an error: status 0x51, error 0x04"},
		{1, "ahci x port 1: ahci: unusable IDENTIFY DEVICE data: no 48-bit addressing"},
		{5, "ahci x port 5: its registers lie beyond the 896-byte ABAR"},
	} {
		var p *Port
		for i := range h.Ports {
			if h.Ports[i].Num == c.port {
				p = &h.Ports[i]
			}
		}
		if p == nil || p.Disk != nil || p.Err == nil || !strings.HasPrefix(p.Err.Error(), c.want) {
			t.Errorf("port %d: %+v, want error %q", c.port, p, c.want)
		} else if d, want := p.Describe(), fmt.Sprintf("port %d: %s", c.port, strings.TrimPrefix(c.want, fmt.Sprintf("ahci x port %d: ", c.port))); !strings.HasPrefix(d, want) {
			t.Errorf("port %d: Describe %q, want %q", c.port, d, want)
		}
	}
	if len(h.Disks()) != 1 || h.Disks()[0].Port() != 2 {
		t.Errorf("disks %v", h.Disks())
	}
}

func TestReadWrite(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 2 << 20})
	// 8 KiB per PRD: a full command has 8 PRD entries.
	d := r.open(t, Options{PRDBytes: 8 << 10}).Disks()[0]
	w := make([]byte, 300<<10)
	pattern(w, 1)
	if n, err := d.WriteAt(w, 4096); n != len(w) || err != nil {
		t.Fatalf("WriteAt: %d, %v", n, err)
	}
	dm := r.disk(0)
	if !bytes.Equal(dm.data[4096:4096+len(w)], w) {
		t.Fatal("the disk holds other data")
	}
	if dm.writes != 5 || dm.maxPRDs != 8 {
		t.Errorf("%d WRITE DMA EXT, at most %d PRDs; want 5 commands (64 KiB each) of up to 8 PRDs", dm.writes, dm.maxPRDs)
	}
	got := make([]byte, len(w)+512)
	if n, err := d.ReadAt(got, 3584); n != len(got) || err != nil {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(got[512:], w) || !bytes.Equal(got[:512], make([]byte, 512)) {
		t.Error("read back other data")
	}
	// The last sector, and the errors for requests outside the disk.
	if _, err := d.ReadAt(got[:512], 2<<20-512); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		off  int64
		n    int
		want error
	}{{-512, 512, ErrAlign}, {100, 512, ErrAlign}, {0, 100, ErrAlign}, {2 << 20, 512, ErrRange}, {2<<20 - 512, 1024, ErrRange}} {
		if _, err := d.ReadAt(make([]byte, c.n), c.off); err != c.want {
			t.Errorf("ReadAt(%d bytes at %d): %v, want %v", c.n, c.off, err, c.want)
		}
		if _, err := d.WriteAt(make([]byte, c.n), c.off); err != c.want {
			t.Errorf("WriteAt(%d bytes at %d): %v, want %v", c.n, c.off, err, c.want)
		}
	}
	req, by, fl, errs, resets := d.Stats()
	if req != 1+5+5+1 || by != uint64(2*len(w)+512+512) || fl != 0 || errs != 0 || resets != 0 {
		t.Errorf("stats: %d requests, %d bytes, %d flushes, %d errors, %d resets", req, by, fl, errs, resets)
	}
}

func TestFlush(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20}, diskSpec{port: 1, size: 1 << 20, noFlush: true})
	ds := r.open(t, Options{}).Disks()
	if err := ds[0].Flush(); err != nil {
		t.Fatal(err)
	}
	if r.disk(0).flushes != 1 {
		t.Errorf("%d flushes reached the disk", r.disk(0).flushes)
	}
	// Without FLUSH CACHE EXT the driver falls back to FLUSH CACHE.
	if !ds[1].CanFlush() {
		t.Fatal("port 1 offers FLUSH CACHE")
	}
	r.disk(1).identify[167] &^= 1 << 4 // and now without either
	r.disk(1).identify[510] = 0
	ds = r.open(t, Options{}).Disks()
	if ds[1].CanFlush() {
		t.Fatal("port 1 has no flush command")
	}
	if err := ds[1].Flush(); err != nil || r.disk(1).flushes != 0 {
		t.Errorf("flush without a flush command: %v, %d sent", err, r.disk(1).flushes)
	}
	if _, _, fl, _, _ := ds[0].Stats(); fl != 0 {
		t.Errorf("fresh disk counts %d flushes", fl)
	}
}

// TestFourKReadModifyWrite: on a disk with 4 KiB logical blocks, 512-byte
// requests work: a partial block is read, patched and written back.
func TestFourKReadModifyWrite(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20, bs: 4096})
	d := r.open(t, Options{}).Disks()[0]
	dm := r.disk(0)
	pattern(dm.data, 7)
	orig := append([]byte(nil), dm.data...)
	w := make([]byte, 512)
	pattern(w, 9)
	if _, err := d.WriteAt(w, 4096+512); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), orig...)
	copy(want[4096+512:], w)
	if !bytes.Equal(dm.data, want) {
		t.Error("a 512-byte write changed other bytes")
	}
	if dm.reads != 1 || dm.writes != 1 {
		t.Errorf("%d reads, %d writes for a 512-byte write", dm.reads, dm.writes)
	}
	// Across a block boundary, and a long unaligned write spanning
	// several commands.
	got := make([]byte, 1536)
	if _, err := d.ReadAt(got, 3584); err != nil || !bytes.Equal(got, want[3584:3584+1536]) {
		t.Errorf("read across blocks: %v", err)
	}
	long := make([]byte, 200<<10+1024)
	pattern(long, 11)
	if _, err := d.WriteAt(long, 8192+1536); err != nil {
		t.Fatal(err)
	}
	copy(want[8192+1536:], long)
	if !bytes.Equal(dm.data, want) {
		t.Error("a long unaligned write left other data")
	}
	got = make([]byte, len(long))
	if _, err := d.ReadAt(got, 8192+1536); err != nil || !bytes.Equal(got, long) {
		t.Errorf("read back: %v", err)
	}
}

// TestDeviceError: a command the device fails is reported naming the
// HBA, port, command and registers; the port is recovered without a
// COMRESET (the device is not busy) and the next command works. The
// specification's HBA leaves PxCI set after a task-file error, QEMU's
// clears it; both are handled.
func TestDeviceError(t *testing.T) {
	for _, kind := range []faultKind{faultDevErr, faultDevErrCI} {
		r := newRig(t, diskSpec{port: 0, size: 1 << 20})
		d := r.open(t, Options{}).Disks()[0]
		r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: kind, cmd: ataWriteDMAExt} })
		_, err := d.WriteAt(make([]byte, 1024), 8192)
		want := "ahci test port 0: WRITE DMA EXT of blocks 16-17: device reported an error: status 0x51, error 0x04 (PxIS 0x40000001, PxTFD 0x451); port recovered"
		if err == nil || err.Error() != want || !errors.Is(err, ErrDevice) {
			t.Errorf("fault %d: %v\nwant %s", kind, err, want)
		}
		w := make([]byte, 1024)
		pattern(w, 3)
		if _, err := d.WriteAt(w, 8192); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if !bytes.Equal(r.disk(0).data[8192:9216], w) {
			t.Error("after recovery the write did not land")
		}
		r.with(func(m *hbaModel) {
			if p := &m.ports[0]; p.comresets != 0 || p.stStarts != 2 {
				t.Errorf("fault %d: %d COMRESETs, %d starts; want 0 and 2", kind, p.comresets, p.stStarts)
			}
		})
		if _, _, _, errs, resets := d.Stats(); errs != 1 || resets != 1 {
			t.Errorf("stats: %d errors, %d recoveries", errs, resets)
		}
	}
}

// TestBusyAfterError: a device that stays busy after its error gets a
// COMRESET.
func TestBusyAfterError(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	d := r.open(t, Options{}).Disks()[0]
	r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: faultDevErrBusy} })
	_, err := d.ReadAt(make([]byte, 512), 0)
	if !errors.Is(err, ErrDevice) || !strings.HasSuffix(err.Error(), "port reset (COMRESET) and recovered") {
		t.Errorf("%v", err)
	}
	if _, err := d.ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("after the COMRESET: %v", err)
	}
	r.with(func(m *hbaModel) {
		if m.ports[0].comresets != 1 {
			t.Errorf("%d COMRESETs", m.ports[0].comresets)
		}
	})
}

// TestTimeout: a command that never completes times out; the port is
// reset and the disk works again, with the data the hung command would
// have moved never written.
func TestTimeout(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	d := r.open(t, Options{Timeout: 50 * time.Millisecond}).Disks()[0]
	r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: faultHang, cmd: ataWriteDMAExt} })
	w := make([]byte, 4096)
	pattern(w, 5)
	start := time.Now()
	_, err := d.WriteAt(w, 0)
	if took := time.Since(start); took < 50*time.Millisecond || took > 5*time.Second {
		t.Errorf("timed out after %v", took)
	}
	want := "ahci test port 0: WRITE DMA EXT of blocks 0-7: command did not complete in time after 50ms (PxCI 0x1, PxIS 0x0, PxTFD 0xd0); port reset (COMRESET) and recovered"
	if err == nil || err.Error() != want || !errors.Is(err, ErrTimeout) {
		t.Errorf("%v\nwant %s", err, want)
	}
	if !bytes.Equal(r.disk(0).data[:4096], make([]byte, 4096)) {
		t.Error("the hung write reached the disk")
	}
	if _, err := d.WriteAt(w, 0); err != nil {
		t.Fatalf("after the reset: %v", err)
	}
	got := make([]byte, 4096)
	if _, err := d.ReadAt(got, 0); err != nil || !bytes.Equal(got, w) {
		t.Errorf("read back after the reset: %v", err)
	}
	r.with(func(m *hbaModel) {
		if m.ports[0].comresets != 1 {
			t.Errorf("%d COMRESETs", m.ports[0].comresets)
		}
	})
}

// TestPortFails: a hung command on a port whose command list never stops
// fails the disk for good; later requests fail at once without touching
// the HBA.
func TestPortFails(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20}, diskSpec{port: 1, size: 1 << 20})
	ds := r.open(t, Options{Timeout: 20 * time.Millisecond, ResetTimeout: 20 * time.Millisecond}).Disks()
	r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: faultHang}; m.ports[0].crStuck = true })
	_, err := ds[0].ReadAt(make([]byte, 512), 0)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "ahci test port 0: READ DMA EXT of blocks 0-0: command did not complete in time") ||
		!strings.Contains(err.Error(), "recovery failed: the command list did not stop") {
		t.Errorf("%v", err)
	}
	var cmds int
	r.with(func(m *hbaModel) { cmds = m.ports[0].commands })
	if _, err2 := ds[0].WriteAt(make([]byte, 512), 0); err2 != err {
		t.Errorf("later request: %v", err2)
	}
	if err2 := ds[0].Flush(); err2 != err {
		t.Errorf("later flush: %v", err2)
	}
	r.with(func(m *hbaModel) {
		if m.ports[0].commands != cmds {
			t.Error("a failed port was given more commands")
		}
	})
	// The other port is unaffected.
	if _, err := ds[1].ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("port 1: %v", err)
	}
	r.with(func(m *hbaModel) { m.ports[0].crStuck = false; m.ports[0].cmd &^= cmdCR })
}

// TestShortTransfer: an HBA that reports moving fewer bytes than asked
// fails the request; the disk goes on.
func TestShortTransfer(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	d := r.open(t, Options{}).Disks()[0]
	r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: faultShort, cmd: ataReadDMAExt} })
	n, err := d.ReadAt(make([]byte, 128<<10), 0)
	if n != 0 || !errors.Is(err, ErrTransfer) || err.Error() != "ahci test port 0: READ DMA EXT of blocks 0-127: the HBA moved 65024 bytes of 65536: wrong transfer length" {
		t.Errorf("%d, %v", n, err)
	}
	if _, err := d.ReadAt(make([]byte, 512), 0); err != nil {
		t.Errorf("after: %v", err)
	}
}

// TestHostBusError: PxIS.HBFS fails the command and resets the port.
func TestHostBusError(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	d := r.open(t, Options{}).Disks()[0]
	r.with(func(m *hbaModel) { m.ports[0].fault = fault{kind: faultHostBus, cmd: ataFlushExt} })
	err := d.Flush()
	if !errors.Is(err, ErrHost) || !strings.HasPrefix(err.Error(), "ahci test port 0: FLUSH CACHE EXT: HBA reported an error: PxIS 0x20000000") ||
		!strings.HasSuffix(err.Error(), "COMRESET) and recovered") {
		t.Errorf("%v", err)
	}
	if err := d.Flush(); err != nil {
		t.Errorf("after: %v", err)
	}
}

// TestSlowCompletion: commands completing after many polls.
func TestSlowCompletion(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 1 << 20})
	d := r.open(t, Options{}).Disks()[0]
	r.with(func(m *hbaModel) { m.ports[0].delay = 50 })
	w := make([]byte, 8192)
	pattern(w, 2)
	if _, err := d.WriteAt(w, 512); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if _, err := d.ReadAt(got, 512); err != nil || !bytes.Equal(got, w) {
		t.Errorf("%v", err)
	}
}

func TestRegion(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 4 << 20})
	d := r.open(t, Options{}).Disks()[0]
	if _, err := d.Region(100, 512, false); !errors.Is(err, ErrAlign) {
		t.Errorf("unaligned region: %v", err)
	}
	if _, err := d.Region(0, 0, false); !errors.Is(err, ErrAlign) {
		t.Errorf("empty region: %v", err)
	}
	if _, err := d.Region(3<<20, 2<<20, false); !errors.Is(err, ErrRange) || !strings.Contains(err.Error(), "ahci test port 0: region") {
		t.Errorf("region past the end: %v", err)
	}
	g, err := d.Region(1<<20, 2<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	if g.Size() != 2<<20 || g.Offset() != 1<<20 || g.ReadOnly() {
		t.Errorf("region %d at %d ro %v", g.Size(), g.Offset(), g.ReadOnly())
	}
	w := make([]byte, 8192)
	pattern(w, 4)
	if _, err := g.WriteAt(w, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.disk(0).data[1<<20+4096:][:8192], w) {
		t.Error("the region's write is not at its offset")
	}
	got := make([]byte, 8192)
	if _, err := g.ReadAt(got, 4096); err != nil || !bytes.Equal(got, w) {
		t.Errorf("read: %v", err)
	}
	if _, err := g.WriteAt(w, 2<<20-4096); err != ErrRange {
		t.Errorf("write past the region: %v", err)
	}
	if _, err := g.ReadAt(w, -512); err != ErrRange {
		t.Errorf("read before the region: %v", err)
	}
	if err := g.Flush(); err != nil || r.disk(0).flushes != 1 {
		t.Errorf("flush: %v, %d", err, r.disk(0).flushes)
	}
	if err := g.Discard(0, 4096); err != nil {
		t.Error(err)
	}
	if err := g.Discard(0, 3<<20); err != ErrRange {
		t.Errorf("discard past the region: %v", err)
	}
	ro, _ := d.Region(0, 1<<20, true)
	if _, err := ro.WriteAt(w, 0); err != ErrReadOnly || ro.Discard(0, 512) != ErrReadOnly || !ro.ReadOnly() {
		t.Errorf("read-only region: %v", err)
	}
}

// TestNoAllocs: requests allocate nothing (they run on a VM's exit
// path).
func TestNoAllocs(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 4 << 20})
	d := r.open(t, Options{}).Disks()[0]
	g, _ := d.Region(1<<20, 1<<20, false)
	buf := make([]byte, 128<<10)
	for name, f := range map[string]func(){
		"ReadAt":        func() { d.ReadAt(buf, 4096) },
		"WriteAt":       func() { d.WriteAt(buf, 4096) },
		"Flush":         func() { d.Flush() },
		"Region.ReadAt": func() { g.ReadAt(buf[:4096], 512) },
	} {
		if a := testing.AllocsPerRun(20, f); a != 0 {
			t.Errorf("%s: %v allocations per call", name, a)
		}
	}
}

// TestConcurrent: goroutines on two ports at once, several on each.
func TestConcurrent(t *testing.T) {
	r := newRig(t, diskSpec{port: 0, size: 2 << 20}, diskSpec{port: 3, size: 2 << 20})
	ds := r.open(t, Options{}).Disks()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := ds[i%2]
			off := int64(i/2) * (256 << 10)
			w := make([]byte, 96<<10)
			got := make([]byte, len(w))
			for k := 0; k < 10; k++ {
				pattern(w, uint32(i*100+k))
				if _, err := d.WriteAt(w, off); err != nil {
					t.Error(err)
					return
				}
				if _, err := d.ReadAt(got, off); err != nil || !bytes.Equal(got, w) {
					t.Errorf("goroutine %d: read back other data (%v)", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// cfgSpace is a configuration space of one function: dwords by offset.
type cfgSpace map[uint16]uint32

func (c cfgSpace) Read32(a pci.Addr, off uint16) uint32 { return c[off&^3] }
func (c cfgSpace) Write32(a pci.Addr, off uint16, v uint32) {
	c[off&^3] = v
}

func TestAttach(t *testing.T) {
	r := newRig(t, diskSpec{port: 1, size: 1 << 20, serial: "s"})
	f := pci.Function{Addr: pci.Addr{Dev: 0x1F, Fn: 2}, Class: ClassAHCI, VendorID: 0x8086, DeviceID: 0x2922}
	f.BARs[4] = pci.BAR{Kind: pci.BARIO, Base: 0xC040, Size: 32}
	f.BARs[5] = pci.BAR{Kind: pci.BARMem32, Base: 0xFEA1_0000, Size: 0x1000}
	cs := cfgSpace{}
	var mapped [3]uint64
	m := func(bar uint8, off, n uint32) (pci.Regs, error) {
		mapped = [3]uint64{uint64(bar), uint64(off), uint64(n)}
		return r.m, nil
	}
	h, err := Attach(cs, &f, m, &r.mem, r.dma, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mapped != [3]uint64{5, 0, 0x1000} {
		t.Errorf("mapped BAR %d +%#x, %#x bytes", mapped[0], mapped[1], mapped[2])
	}
	if cmd := cs[pci.RegCommand]; cmd != pci.CmdMemory|pci.CmdBusMaster|pci.CmdINTxDisable {
		t.Errorf("PCI command %#x", cmd)
	}
	if len(h.Disks()) != 1 || h.Disks()[0].String() != "ahci 00:1f.2 port 1" {
		t.Errorf("disks %v", h.Disks())
	}
	bad := func(what, want string, edit func(f *pci.Function)) {
		t.Helper()
		g := f
		edit(&g)
		if _, err := Attach(cs, &g, m, &r.mem, r.dma, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", what, err, want)
		}
	}
	bad("IDE class", "class 0x010185: ahci: not an AHCI host bus adapter", func(f *pci.Function) { f.Class = 0x010185 })
	bad("I/O BAR 5", "BAR 5 is not a memory BAR", func(f *pci.Function) { f.BARs[5] = f.BARs[4] })
	bad("unassigned BAR 5", "BAR 5 is not assigned", func(f *pci.Function) { f.BARs[5].Base = 0 })
	bad("small BAR 5", "BAR 5 is 128 bytes", func(f *pci.Function) { f.BARs[5].Size = 128 })
}
