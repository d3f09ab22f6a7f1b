package vmm

// VM is one virtual machine. (The core's dispatch, buses and policies are
// added around it; backends only need Name, Mem and Host.)
type VM struct {
	Name string
	Mem  *GuestMemory
	Host *Host
}
