// guest.h: constants and macros shared by juice's test guests (32-bit
// x86, Go assembler syntax). See doc.go for the conventions.

// COM1 is the 16550's data port; juice's console shows each line the
// guest writes there, prefixed with "[vmname] ".
#define COM1 0x3f8
// COM1_LSR is the 16550's line status register.
#define COM1_LSR 0x3fd
// EXIT_PORT is the isa-debug-exit port: a 32-bit write stops the VM with
// the written status.
#define EXIT_PORT 0xf4

// MB_MAGIC is the value a multiboot v1 loader leaves in EAX.
#define MB_MAGIC 0x2BADB002

// Selectors of lib's GDT (see ·loadgdt).
#define SEL_CODE32 0x08
#define SEL_DATA32 0x10
#define SEL_CODE16 0x18
#define SEL_DATA16 0x20
#define SEL_CODE64 0x28

// STACK_SIZE is the size of lib's boot stack ·stack.
#define STACK_SIZE 8192

// SETUP is the first thing every guest does: interrupts off, ESP at the
// top of the boot stack (multiboot leaves ESP undefined).
#define SETUP CLI; MOVL $·stack+STACK_SIZE(SB), SP

// PRINT(s) writes the Go string variable s to COM1. It clobbers SI and
// CX (the arguments of ·write); every other register is kept.
#define PRINT(s) MOVL s+0(SB), SI; MOVL s+4(SB), CX; CALL ·write(SB)

// EXIT(n) stops the VM with status n (never returns).
#define EXIT(n) MOVL $n, AX; JMP ·exit(SB)

// VMMCALL is AMD-V's hypercall instruction (the Go assembler has no
// mnemonic for it): RAX is the function, RBX, RCX, RDX, RSI the arguments.
#define VMMCALL BYTE $0x0F; BYTE $0x01; BYTE $0xD9

// Segment register loads the Go assembler does not spell for 386.
#define MOV_AX_DS BYTE $0x8E; BYTE $0xD8
#define MOV_AX_ES BYTE $0x8E; BYTE $0xC0
#define MOV_AX_SS BYTE $0x8E; BYTE $0xD0
#define MOV_AX_FS BYTE $0x8E; BYTE $0xE0
#define MOV_AX_GS BYTE $0x8E; BYTE $0xE8

// SCRATCH_BASE is the guest-physical address of juice's scratch MMIO test
// device (vmm/devices.Scratch): 4 KiB of registers. SCRATCH_* are its
// register offsets and the value of its ID register ("juic").
#define SCRATCH_BASE 0xd0000000
#define SCRATCH_SIZE 0x1000
#define SCRATCH_ID 0x6a756963
#define SCRATCH_ADD 0x08
#define SCRATCH_DATA 0x10
#define SCRATCH_SUM 0x50
#define SCRATCH_COUNT 0x58
