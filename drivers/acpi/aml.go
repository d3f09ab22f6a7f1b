package acpi

// AML encodings used by the \_S5_ search (ACPI 6.5 §20.2).
const (
	amlZeroOp      = 0x00
	amlOneOp       = 0x01
	amlNameOp      = 0x08
	amlBytePrefix  = 0x0A
	amlWordPrefix  = 0x0B
	amlDWordPrefix = 0x0C
	amlQWordPrefix = 0x0E
	amlPackageOp   = 0x12
	amlOnesOp      = 0xFF
	amlRootChar    = '\\'
	amlParentChar  = '^'
)

// FindS5 searches AML (a DSDT or SSDT body, after the 36-byte header) for
// a named object \_S5_ defined as a package and returns its first two
// elements, SLP_TYPa and SLP_TYPb. It recognises
//
//	NameOp ['\' | '^'...] "_S5_" PackageOp PkgLength NumElements elem elem ...
//
// where each element is ZeroOp, OneOp, OnesOp, BytePrefix/WordPrefix/
// DWordPrefix/QWordPrefix and its value, or (as some firmware emits) a
// bare byte 0x02–0x07. A one-element package holds both values in one
// integer (SLP_TYPa in bits 7:0, SLP_TYPb in bits 15:8), as ACPICA reads
// it. Values are truncated to 8 bits; PowerOff uses their low 3 bits.
// Every read is checked against the package's PkgLength and the slice, so
// any input is safe. \_S5_ defined by a method is not supported (ok is
// false).
//
//go:nosplit
func FindS5(aml []byte) (slpTypA, slpTypB uint8, ok bool) {
	for i := 1; i < len(aml); i++ {
		pre, s := aml[:i], aml[i:]
		if len(s) < 4 {
			break
		}
		if s[0] != '_' || s[1] != 'S' || s[2] != '5' || s[3] != '_' {
			continue
		}
		if !nameOpBefore(pre) {
			continue
		}
		if a, b, ok := s5Package(s[4:]); ok {
			return a, b, true
		}
	}
	return 0, 0, false
}

// nameOpBefore reports whether pre, the bytes before a NameSeg, ends with
// NameOp, allowing a root prefix or parent prefixes in between.
//
//go:nosplit
func nameOpBefore(pre []byte) bool {
	j := len(pre) - 1
	if j >= 0 && pre[j] == amlRootChar {
		j--
	} else {
		for j >= 0 && pre[j] == amlParentChar {
			j--
		}
	}
	return j >= 0 && j < len(pre) && pre[j] == amlNameOp
}

// s5Package decodes the package that must start aml.
//
//go:nosplit
func s5Package(aml []byte) (a, b uint8, ok bool) {
	if len(aml) < 1 || aml[0] != amlPackageOp {
		return 0, 0, false
	}
	aml = aml[1:]
	plen, n, ok := pkgLength(aml)
	if !ok || plen <= n || plen > uint(len(aml)) {
		return 0, 0, false
	}
	pkg := aml[n:plen] // NumElements and the elements; nothing may lie beyond
	if len(pkg) < 1 {
		return 0, 0, false
	}
	num := pkg[0]
	if num == 0 {
		return 0, 0, false
	}
	v1, rest, ok := element(pkg[1:])
	if !ok {
		return 0, 0, false
	}
	if num == 1 {
		return uint8(v1), uint8(v1 >> 8), true
	}
	v2, _, ok := element(rest)
	if !ok {
		return 0, 0, false
	}
	return uint8(v1), uint8(v2), true
}

// pkgLength decodes the PkgLength that starts aml: its value (which counts
// its own bytes) and its encoded size (1–4 bytes).
//
//go:nosplit
func pkgLength(aml []byte) (length, size uint, ok bool) {
	if len(aml) < 1 {
		return 0, 0, false
	}
	lead := aml[0]
	follow := uint(lead >> 6)
	if follow == 0 {
		return uint(lead & 0x3F), 1, true
	}
	rest := aml[1:]
	if follow > uint(len(rest)) {
		return 0, 0, false
	}
	length = uint(lead & 0x0F)
	for k, c := range rest[:follow] {
		length |= uint(c) << (4 + 8*uint(k))
	}
	return length, follow + 1, true
}

// element decodes one integer package element at the start of pkg,
// returning its value and the bytes after it.
//
//go:nosplit
func element(pkg []byte) (v uint64, rest []byte, ok bool) {
	if len(pkg) < 1 {
		return 0, nil, false
	}
	op := pkg[0]
	rest = pkg[1:]
	var size uint
	switch op {
	case amlZeroOp:
		return 0, rest, true
	case amlOneOp:
		return 1, rest, true
	case amlOnesOp:
		return ^uint64(0), rest, true
	case amlBytePrefix:
		size = 1
	case amlWordPrefix:
		size = 2
	case amlDWordPrefix:
		size = 4
	case amlQWordPrefix:
		size = 8
	default:
		if op >= 0x02 && op <= 0x07 {
			return uint64(op), rest, true // bare byte value
		}
		return 0, nil, false
	}
	if size > uint(len(rest)) {
		return 0, nil, false
	}
	for k, c := range rest[:size] {
		v |= uint64(c) << (8 * uint(k))
	}
	return v, rest[size:], true
}
