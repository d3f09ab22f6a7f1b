// The rest of package svm is juice's AMD-V backend (svm.Backend and
// svm.VCPU implement vmm.Backend and vmm.VCPUBackend):
//
//   - vmcb.go: the VMCB as a 4 KiB page with typed accessors at the
//     offsets of APM Vol. 2 Appendix B, intercept bits, EVENTINJ encoding;
//   - exit.go: TranslateExit, the pure map from EXITCODE/EXITINFO to
//     vmm.Exit (instruction lengths work without NRIP save, as on QEMU TCG);
//   - permmap.go: the I/O and MSR permission maps (default: intercept all);
//   - npt.go: nested page tables over guest RAM (mm.PageTables plus U/S on
//     every level, which AMD's nested walks require);
//   - asid.go: the ASID allocator and TLB flush control;
//   - state.go: CheckState, VMRUN's guest-state consistency checks;
//   - backend.go: New, Enable (per CPU), NewVCPU and the vCPU's exit path
//     (Run, which allocates nothing), around vmrun (vmrun_amd64.s).
//
// Everything but vmrun and the MSR writes in Enable runs on a host under
// plain `go test`: hardware access goes through the enterGuest variable
// and the Backend's RDMSR/WRMSR fields.
package svm
