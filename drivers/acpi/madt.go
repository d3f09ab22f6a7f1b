package acpi

// MADT interrupt controller structure types (ACPI 6.5 §5.2.12).
const (
	madtLAPIC         = 0
	madtIOAPIC        = 1
	madtOverride      = 2
	madtLAPICNMI      = 4
	madtLAPICOverride = 5
	madtX2APIC        = 9

	madtEnabled = 1 << 0 // processor flags: usable now
	// Processor flags bit 1, Online Capable, marks a processor that is
	// disabled now but may be brought online later; such processors are
	// not listed in CPUAPICID.
)

// parseMADT fills the MADT fields of t from the valid table m.
//
//go:nosplit
func (t *Tables) parseMADT(m []byte) {
	t.LAPICAddr = uint64(u32(m, 36))
	t.PCATCompat = u32(m, 40)&1 != 0
	if len(m) < 44 {
		return
	}
	rest := m[44:]
	for len(rest) >= 2 {
		typ, n := rest[0], uint(rest[1])
		if n < 2 || n > uint(len(rest)) {
			return // malformed: the rest cannot be walked
		}
		e := rest[:n]
		rest = rest[n:]
		switch typ {
		case madtLAPIC:
			if id := u8(e, 3); n >= 8 && u32(e, 4)&madtEnabled != 0 && id != 0xFF {
				t.addCPU(uint32(id))
			}
		case madtX2APIC:
			if n >= 16 && u32(e, 8)&madtEnabled != 0 && u32(e, 4) != 0xFFFFFFFF {
				t.addCPU(u32(e, 4))
			}
		case madtIOAPIC:
			if n < 12 {
				continue
			}
			if t.NIOAPIC >= MaxIOAPICs || t.NIOAPIC < 0 {
				t.MADTDropped++
				continue
			}
			t.IOAPIC[t.NIOAPIC] = IOAPIC{ID: u8(e, 2), Addr: u32(e, 4), GSIBase: u32(e, 8)}
			t.NIOAPIC++
		case madtOverride:
			if n < 10 {
				continue
			}
			if t.NOverride >= MaxOverrides || t.NOverride < 0 {
				t.MADTDropped++
				continue
			}
			t.Overrides[t.NOverride] = Override{Bus: u8(e, 2), Source: u8(e, 3), GSI: u32(e, 4), Flags: u16(e, 8)}
			t.NOverride++
		case madtLAPICNMI:
			if n >= 6 && u8(e, 5) == 1 {
				t.LINT1NMI = true
			}
		case madtLAPICOverride:
			if n >= 12 {
				if a := u64(e, 4); a != 0 {
					t.LAPICAddr = a
				}
			}
		}
	}
}

// addCPU records an enabled processor's APIC ID once.
//
//go:nosplit
func (t *Tables) addCPU(id uint32) {
	n := t.NCPU
	if n < 0 || n > MaxCPUs {
		return
	}
	for i := 0; i < n; i++ {
		if t.CPUAPICID[i] == id {
			return
		}
	}
	if n == MaxCPUs {
		t.MADTDropped++
		return
	}
	t.CPUAPICID[n] = id
	t.NCPU = n + 1
}
