// The rest of package vmx is juice's Intel VT-x backend (vmx.Backend and
// vmx.VCPU implement vmm.Backend and vmm.VCPUBackend). All but the
// assembly runs on a host under plain `go test`, with the VMX instructions
// behind the hw variable (a fake CPU in the tests) and the MSR, CR and
// descriptor-table accesses behind the Backend's hook fields:
//
//   - backend.go: New/NewWithMSRs, Enable (IA32_FEATURE_CONTROL, CR0/CR4
//     fixed bits, VMXON; once per CPU), NewVCPU (VMCS, EPT, VPID, bitmaps,
//     MSR lists, host and guest state, written on the building CPU and
//     VMCLEARed there), bind (a vCPU's VMCS tied to the CPU of its first
//     Run: that CPU's host state, EPT and VPID flushes there) and Close
//     (VMCLEAR on the VMCS's CPU, through Backend.OnCPU);
//   - run.go: the exit path (Run, which allocates nothing): the VMCS
//     current on each CPU, switched between vCPUs with interrupts off,
//     entries refused off the vCPU's CPU, event injection and requeueing,
//     CR0/CR4 write emulation, readable entry failures, the interrupt
//     window;
//   - host.go, host_amd64.s: the host-state area (SGDT, SIDT, the TSS
//     descriptor's base);
//   - instr.go, instr_amd64.s: the VMX instructions as BYTE sequences and
//     the VMLAUNCH/VMRESUME guest entry;
//   - vmcs.go: VMCS field encodings (SDM Vol. 3D Appendix B) and their
//     decoder (Encoding.Width, Type, Index, HighAccess, Name);
//   - controls.go: ChooseControls, the pin-based, processor-based, VM-exit
//     and VM-entry controls juice programs, adjusted to the capability
//     MSRs (TRUE_* when IA32_VMX_BASIC bit 55 says so), with errors that
//     name the missing control; the CR0/CR4 fixed bits, guest/host masks
//     and EntryFor;
//   - ept.go: extended page tables over guest RAM and the EPTP;
//   - exit.go: TranslateExit, the pure map from exit reason and
//     qualification to vmm.Exit; VM-instruction error numbers; event
//     (interruption-information) encoding and decoding; CR-access
//     qualifications;
//   - state.go: CheckGuestState, the VM-entry guest-state checks that
//     name the wrong field;
//   - guest.go: vmm.SRegs to and from the guest-state area through a
//     Fields (VMREAD/VMWRITE) seam;
//   - bitmaps.go: the I/O bitmaps and the MSR bitmaps (default: intercept
//     everything);
//   - segment.go: vmm.Segment.Attr (AMD layout) to and from VMX access
//     rights.
package vmx
