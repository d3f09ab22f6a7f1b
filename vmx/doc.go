// The rest of package vmx is juice's Intel VT-x backend in the making
// (the vmm.Backend itself is not written yet). All but instr.go runs on a
// host under plain `go test`:
//
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
