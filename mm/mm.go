// Package mm is juice's memory manager: the physical frame allocator
// (Frames), the x86-64 host page-table builder (PageTables) and the address
// space behind the Linux mmap/munmap/madvise/mprotect calls that the Go
// runtime makes (Space).
//
// The kernel owns PML4 slot 0 (the image, identity-mapped) and the upper
// half (where phys reaches RAM). The runtime's mappings live in a separate
// user range, [UserBase, UserTop) (PML4 slots 1..255), and are
// backed lazily: mmap only records a VMA, and a page gets a zeroed frame on
// its first touch (the page-fault handler calls Space.Fault), so the
// runtime's huge PROT_NONE reservations and its 32 MiB RW heap index cost
// no memory until used.
//
// Everything here is kernel-context code: it runs before the Go runtime
// has started and inside the syscall and page-fault handlers. Every
// function is //go:nosplit and allocation-free, never panics on any input
// (failures are small integer Status, Errno and FaultResult values), and
// the state structs hold no Go pointers: Frames is a handle whose mutable
// state lives in the RAM it manages, and PageTables and Space embed copies
// of that handle. Physical memory is reached only through juice/mm/phys.
//
// Nothing here locks: callers serialise access (one CPU, or a kernel lock
// around each call). TLB invalidation is local (INVLPG) only.
package mm

// PageSize is the size of a frame and of a user page.
const PageSize = 4096

const (
	pageMask = PageSize - 1
	// physMask selects the physical-address bits 12..51 of a page-table
	// entry (MAXPHYADDR ≤ 52, Intel SDM Vol. 3A §4.5).
	physMask = 0x000f_ffff_ffff_f000
	// maxPhys is one past the highest physical address an entry can hold.
	maxPhys = 1 << 52
)

// Range is the physical or virtual address range [Base, End).
type Range struct{ Base, End uint64 }

// Status is the result of a Frames or PageTables operation.
type Status uint8

// Status values.
const (
	// OK means success.
	OK Status = iota
	// NoMemory means no free frame (or no room for the allocator's bitmap).
	NoMemory
	// BadAlign means an address or size was not aligned as required.
	BadAlign
	// BadSize means a page size other than 4 KiB, 2 MiB or 1 GiB.
	BadSize
	// NonCanonical means a virtual address outside the canonical halves.
	NonCanonical
	// BadAddress means a physical address beyond 2^52 or outside the
	// physical-memory window, or a range that wraps around.
	BadAddress
	// Exists means something is already mapped there.
	Exists
	// NotMapped means nothing is mapped there.
	NotMapped
	// DoubleFree means the frame being freed is already free.
	DoubleFree
	// NotRAM means the frame is not one the allocator hands out (outside
	// RAM, reserved, frame 0 or the allocator's own bitmap).
	NotRAM
	// Uninitialized means the object was used before a successful Init.
	Uninitialized
)

// String names s. It returns constants only; use it once the runtime runs.
//
//go:nosplit
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case NoMemory:
		return "no memory"
	case BadAlign:
		return "misaligned"
	case BadSize:
		return "bad page size"
	case NonCanonical:
		return "non-canonical address"
	case BadAddress:
		return "bad physical address"
	case Exists:
		return "already mapped"
	case NotMapped:
		return "not mapped"
	case DoubleFree:
		return "double free"
	case NotRAM:
		return "not an allocatable frame"
	case Uninitialized:
		return "not initialised"
	}
	return "unknown status"
}

// Errno is a positive Linux error number; 0 means success. The syscall
// layer returns it to the runtime negated.
type Errno uint64

// Linux error numbers used by Space (asm-generic/errno-base.h).
const (
	EPERM  Errno = 1
	ENOMEM Errno = 12
	EACCES Errno = 13
	EFAULT Errno = 14
	EEXIST Errno = 17
	ENODEV Errno = 19
	EINVAL Errno = 22
)

// String names e. It returns constants only; use it once the runtime runs.
//
//go:nosplit
func (e Errno) String() string {
	switch e {
	case 0:
		return "success"
	case EPERM:
		return "EPERM"
	case ENOMEM:
		return "ENOMEM"
	case EACCES:
		return "EACCES"
	case EFAULT:
		return "EFAULT"
	case EEXIST:
		return "EEXIST"
	case ENODEV:
		return "ENODEV"
	case EINVAL:
		return "EINVAL"
	}
	return "errno?"
}

// alignUp rounds x up to a multiple of PageSize; ok is false on overflow.
//
//go:nosplit
func alignUp(x uint64) (uint64, bool) {
	if x > ^uint64(0)-pageMask {
		return 0, false
	}
	return (x + pageMask) &^ pageMask, true
}
