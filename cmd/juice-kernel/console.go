package main

import (
	"fmt"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"juice/kernel"
	"juice/vmm"
	"juice/vmm/devices"
	"juice/vmm/platform"
)

// console is juice's terminal: juice's log and every VM's console stream
// share it (devices.Console keeps their lines apart).
var console = devices.NewConsole(os.Stdout)

// idleFlush is how long a guest's partial output line (a shell prompt,
// typed characters being echoed) waits for more before it is shown
// unterminated.
const idleFlush = 30 * time.Millisecond

// Console input. What the user types on juice's console goes to one
// guest console at a time, the input focus: at start the bundle's first
// VM's COM1 (its ttyS0). Every VM's output, COM1 and hvc0 alike, is shown
// on juice's console in the VM's own stream ("[name] ..."). juice's
// escape is Ctrl-\ (0x1c) followed by
//
//	:       juice's command line (juice> list, stop, start, restart,
//	        dump, focus, help; Enter runs it, Ctrl-C or Esc leaves)
//	n       move the input focus to the next guest console: each VM's
//	        COM1, then its virtio console (hvc0) if it has one, in bundle
//	        order, wrapping around
//	d       dump every running VM's state (vCPUs, interrupt controllers,
//	        COM1) on juice's console
//	?       list these keys
//	Ctrl-\  send one Ctrl-\ to the guest
//
// Any other byte after Ctrl-\ goes to the guest with the Ctrl-\ before
// it.
const (
	escapeKey = 0x1c
	dumpKey   = 'd'
	nextKey   = 'n'
	helpKey   = '?'
	cmdKey    = ':'
)

// Guest console ports a focus can name.
const (
	portCOM1 = iota
	portHVC
)

// consoleInput feeds console input to the focused guest console and
// knows which VMs run, for the escape keys.
type consoleInput struct {
	mu    sync.Mutex
	order []string // the bundle's VMs, in order
	vms   map[string]liveVM
	info  map[string]*vmInfo
	focus focus
	esc   bool // the last byte was the escape key
	dumps int  // dumps requested so far

	// The command line (Ctrl-\ :): cmd holds the line typed so far while
	// inCmd.
	inCmd bool
	cmd   []byte
	// start runs a stopped VM again (set by runBundle; nil in tests).
	start func(name string) error
}

// vmInfo is what the command line reports about one VM of the bundle.
type vmInfo struct {
	memMiB uint64
	vcpus  int
	boots  int    // boots so far
	state  string // "running", or how it last ended
	active bool   // a goroutine runs it (booting, running or rebooting)
}

// focus names a guest console: a VM and one of its ports.
type focus struct {
	vm   int // index in order
	port int
}

// liveVM is a running VM and its platform.
type liveVM struct {
	vm *vmm.VM
	pc *platform.PC
}

// newConsoleInput returns the input for a bundle whose VMs are names, in
// order; the focus is the first VM's COM1.
func newConsoleInput(names []string) *consoleInput {
	c := &consoleInput{order: names, vms: map[string]liveVM{}, info: map[string]*vmInfo{}}
	for _, n := range names {
		c.info[n] = &vmInfo{state: "not started"}
	}
	return c
}

// describe records a VM's size for the command line's list.
func (c *consoleInput) describe(name string, memBytes uint64, vcpus int) {
	c.mu.Lock()
	if in := c.info[name]; in != nil {
		in.memMiB, in.vcpus = memBytes>>20, vcpus
	}
	c.mu.Unlock()
}

// ended records how VM name's run ended (its state in the list); it is
// no longer active.
func (c *consoleInput) ended(name, how string) {
	c.mu.Lock()
	if in := c.info[name]; in != nil {
		in.state, in.active = how, false
	}
	c.mu.Unlock()
}

// active marks VM name active (a goroutine runs it) or not; marking it
// active reports false if it already was.
func (c *consoleInput) active(name string, on bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.info[name]
	if in == nil || (on && in.active) {
		return false
	}
	in.active = on
	return true
}

// setStart sets how `start NAME` runs a stopped VM.
func (c *consoleInput) setStart(f func(name string) error) {
	c.mu.Lock()
	c.start = f
	c.mu.Unlock()
}

// live records that VM name now runs as vm on pc (nil: it stopped).
func (c *consoleInput) live(name string, vm *vmm.VM, pc *platform.PC) {
	c.mu.Lock()
	if vm == nil {
		delete(c.vms, name)
	} else {
		c.vms[name] = liveVM{vm, pc}
		if in := c.info[name]; in != nil {
			in.boots++
			in.state = "running"
		}
	}
	c.mu.Unlock()
}

// poll moves console input to the focused guest console every few
// milliseconds (juice's console UART raises no interrupt).
func (c *consoleInput) poll() {
	var buf, out [512]byte
	for {
		n := kernel.ConsoleRead(buf[:256])
		if n == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.mu.Lock()
		m, act := c.filter(buf[:n], out[:0])
		if len(m) > 0 {
			c.feed(m)
		}
		c.mu.Unlock()
		if len(act.echo) > 0 {
			console.Raw().Write(act.echo)
		}
		switch {
		case act.dump:
			c.dump()
		case act.help:
			log.Printf("juice: console keys: Ctrl-\\ : command line, Ctrl-\\ n next guest console, Ctrl-\\ d dump VM state, Ctrl-\\ Ctrl-\\ a literal Ctrl-\\")
		}
		if act.moved {
			log.Printf("juice: console input goes to %s", c.focusName())
		}
		if act.run {
			for _, l := range c.command(act.line, serialConsole) {
				log.Printf("juice: %s", l)
			}
		}
	}
}

// actions are what the escape keys in one read asked for.
type actions struct {
	dump, help, moved bool
	echo              []byte // the command line's echo, for the terminal
	run               bool   // a command line was entered: line
	line              string
}

// filter copies in to out, acting on juice's escape keys (moving the
// focus at once, so that the bytes after Ctrl-\ n in the same read go to
// the new console; that is why filter feeds as it goes). Lock held. out
// has room for 2*len(in) bytes.
func (c *consoleInput) filter(in, out []byte) ([]byte, actions) {
	var a actions
	for _, b := range in {
		if c.inCmd {
			c.cmdByte(b, &a)
			continue
		}
		switch {
		case c.esc && b == cmdKey:
			c.inCmd, c.cmd = true, c.cmd[:0]
			a.echo = append(a.echo, "juice> "...)
		case c.esc && b == dumpKey:
			a.dump = true
		case c.esc && b == helpKey:
			a.help = true
		case c.esc && b == nextKey:
			if len(out) > 0 {
				c.feed(out)
				out = out[:0]
			}
			c.next()
			a.moved = true
		case c.esc && b == escapeKey:
			out = append(out, escapeKey)
		case c.esc:
			out = append(out, escapeKey, b)
		case b == escapeKey:
			c.esc = true
			continue
		default:
			out = append(out, b)
		}
		c.esc = false
	}
	return out, a
}

// next moves the focus to the next guest console (lock held): COM1 then
// hvc0 of each VM; a VM not running now offers COM1 only.
func (c *consoleInput) next() {
	if len(c.order) == 0 {
		return
	}
	f := c.focus
	if f.port == portCOM1 && c.hasHVC(f.vm) {
		f.port = portHVC
	} else {
		f = focus{vm: (f.vm + 1) % len(c.order), port: portCOM1}
	}
	c.focus = f
}

// hasHVC reports whether VM i runs with a virtio console (lock held).
func (c *consoleInput) hasHVC(i int) bool {
	l, ok := c.vms[c.order[i]]
	return ok && l.pc != nil && l.pc.Console() != nil
}

// feed gives m to the focused console (lock held); input for a VM that
// is not running (between boots, stopped) is dropped.
func (c *consoleInput) feed(m []byte) {
	if len(c.order) == 0 {
		return
	}
	l, ok := c.vms[c.order[c.focus.vm]]
	if !ok || l.pc == nil {
		return
	}
	if c.focus.port == portHVC {
		if con := l.pc.Console(); con != nil {
			con.Feed(m)
			return
		}
	}
	l.pc.UART().Feed(m)
}

// focusName describes the focus, e.g. "vm web COM1 (ttyS0)".
func (c *consoleInput) focusName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) == 0 {
		return "nowhere (no VM)"
	}
	name := c.order[c.focus.vm]
	if c.focus.port == portHVC {
		return "vm " + name + " virtio console (hvc0)"
	}
	return "vm " + name + " COM1 (ttyS0)"
}

// dump prints every running VM's platform state and asks its vCPUs for
// theirs (they print it from their own goroutines as they answer).
func (c *consoleInput) dump() {
	c.mu.Lock()
	c.dumps++
	seq := c.dumps
	var names []string
	var vms []liveVM
	for _, name := range c.order {
		if l, ok := c.vms[name]; ok {
			names = append(names, name)
			vms = append(vms, l)
		}
	}
	c.mu.Unlock()
	log.Printf("juice: dump %d: %d VM(s) running", seq, len(vms))
	for i, l := range vms {
		name := names[i]
		for _, s := range l.pc.DebugState() {
			log.Printf("juice: dump %d: vm %s: %s", seq, name, s)
		}
		l.vm.RequestDump(func(v *vmm.VCPU, d vmm.VCPUDump) {
			log.Printf("juice: dump %d: vm %s: vcpu %d halted=%v rip=%#x rsp=%#x rflags=%#x cr0=%#x cr3=%#x cr4=%#x efer=%#x exits=%d last=%v pending=%v/%+v core-irr=%x window=%v timer=%v/%dns plat-timer=%v/%dns halt-polls=%d halt-sleep=%dns %dns ago goroutines=%d",
				seq, name, v.ID, d.Halted, d.RIP, d.RSP, d.RFLAGS, d.CR0, d.CR3, d.CR4, d.EFER, d.Exits, d.LastExit,
				d.HasPending, d.Pending, d.CoreIRR, d.WindowOn, d.TimerArmed, d.TimerIn, d.PlatArmed, d.PlatIn, d.HaltPolls, d.HaltSleep, d.HaltAgo, runtime.NumGoroutine())
		})
	}
}

// flushIdle shows the VMs' quiet partial lines every idleFlush: COM1's
// line buffer is passed on, then the console shows what has been quiet.
func (c *consoleInput) flushIdle() {
	var pcs []*platform.PC
	for {
		time.Sleep(idleFlush)
		pcs = pcs[:0]
		c.mu.Lock()
		for _, l := range c.vms {
			pcs = append(pcs, l.pc)
		}
		c.mu.Unlock()
		for _, pc := range pcs {
			pc.UART().FlushPartial()
		}
		console.FlushIdle(idleFlush)
	}
}

// cmdByte takes one byte typed on the command line (lock held): Enter
// runs the line, backspace erases, Ctrl-C or Esc abandons it, printable
// bytes are added (at most 200) and echoed.
func (c *consoleInput) cmdByte(b byte, a *actions) {
	switch {
	case b == '\r' || b == '\n':
		a.echo = append(a.echo, '\n')
		a.run, a.line = true, string(c.cmd)
		c.inCmd = false
	case b == 0x7f || b == 0x08:
		if len(c.cmd) > 0 {
			c.cmd = c.cmd[:len(c.cmd)-1]
			a.echo = append(a.echo, "\b \b"...)
		}
	case b == 0x03 || b == 0x1b:
		a.echo = append(a.echo, " (cancelled)\n"...)
		c.inCmd = false
	case b >= 0x20 && b < 0x7f && len(c.cmd) < 200:
		c.cmd = append(c.cmd, b)
		a.echo = append(a.echo, b)
	}
}

// serialConsole is the via of commands typed on juice's serial console.
const serialConsole = "juice's console"

// command runs one command line, from juice's serial console or the
// network console (netconsole.go), and returns the lines to print. via
// says where it came from, for the messages of the VMs it stops
// ("stopped from " + via); it names juice's console in both cases.
func (c *consoleInput) command(line, via string) []string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	arg := func() (string, bool) {
		if len(f) < 2 {
			return "", false
		}
		c.mu.Lock()
		_, ok := c.info[f[1]]
		c.mu.Unlock()
		return f[1], ok
	}
	switch f[0] {
	case "help", "?":
		return []string{
			"commands: list; stop NAME; start NAME; restart NAME; dump; focus NAME [com1|hvc]; help",
		}
	case "list", "ls":
		return c.list()
	case "dump":
		c.dump()
		if via != serialConsole {
			return []string{"dump: printed on juice's serial console"}
		}
		return nil
	case "stop", "restart":
		name, ok := arg()
		if !ok {
			return []string{fmt.Sprintf("%s: no VM %q (list shows them)", f[0], name)}
		}
		c.mu.Lock()
		l, running := c.vms[name]
		c.mu.Unlock()
		if !running {
			return []string{fmt.Sprintf("%s: vm %s is not running", f[0], name)}
		}
		if f[0] == "stop" {
			l.vm.Stop(vmm.Killed, -1, "stopped from "+via)
			return []string{"vm " + name + ": stopping"}
		}
		l.vm.Stop(vmm.Reset, -1, "restarted from "+via)
		return []string{"vm " + name + ": restarting"}
	case "start":
		name, ok := arg()
		if !ok {
			return []string{fmt.Sprintf("start: no VM %q (list shows them)", name)}
		}
		c.mu.Lock()
		running := c.info[name].active
		start := c.start
		c.mu.Unlock()
		if running {
			return []string{"start: vm " + name + " is running"}
		}
		if start == nil {
			return []string{"start: not possible here"}
		}
		if err := start(name); err != nil {
			return []string{"start: " + err.Error()}
		}
		return []string{"vm " + name + ": starting"}
	case "focus":
		name, ok := arg()
		if !ok {
			return []string{fmt.Sprintf("focus: no VM %q (list shows them)", name)}
		}
		port := portCOM1
		if len(f) > 2 && f[2] == "hvc" {
			port = portHVC
		} else if len(f) > 2 && f[2] != "com1" {
			return []string{"focus: port " + f[2] + " is not com1 or hvc"}
		}
		c.mu.Lock()
		for i, n := range c.order {
			if n == name {
				c.focus = focus{vm: i, port: port}
			}
		}
		c.mu.Unlock()
		return []string{"console input goes to " + c.focusName()}
	}
	return []string{fmt.Sprintf("unknown command %q (help lists them)", f[0])}
}

// list describes every VM of the bundle: state, size, boots and exits.
func (c *consoleInput) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{fmt.Sprintf("%-16s %-28s %8s %5s %5s %12s", "VM", "STATE", "MEMORY", "VCPUS", "BOOTS", "EXITS")}
	for _, name := range c.order {
		in := c.info[name]
		exits := "-"
		if l, ok := c.vms[name]; ok {
			exits = strconv.FormatUint(l.vm.ExitCount(), 10)
		}
		state := in.state
		if len(state) > 28 {
			state = state[:25] + "..."
		}
		out = append(out, fmt.Sprintf("%-16s %-28s %5d MiB %5d %5d %12s", name, state, in.memMiB, in.vcpus, in.boots, exits))
	}
	return out
}
