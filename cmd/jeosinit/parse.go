package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// options are jeosinit's settings from the kernel command line.
type options struct {
	poweroff bool   // jeos.poweroff: power off right after the marker (and jeos.exec)
	verbose  bool   // jeos.verbose: log each module
	ip       string // jeos.ip=ADDR/PREFIX: eth0's address; "" leaves the network alone
	exec     string // jeos.exec=COMMAND: a shell command run after the marker; "" runs none

	hvcConsole bool // console=hvc0 (with or without options): hvc0 is a kernel console
}

// parseOptions reads jeosinit's options from a kernel command line. A
// bare "jeos.poweroff" or one with a true value (1, y, yes, true, on)
// turns it on; jeos.ip and jeos.exec take the (possibly quoted) value as
// it is, a bare one meaning none; a later setting wins. Any console=hvc0
// sets hvcConsole.
func parseOptions(cmdline string) options {
	var o options
	for _, p := range parseCmdline(cmdline) {
		switch p.key {
		case "jeos.poweroff":
			o.poweroff = truth(p)
		case "jeos.verbose":
			o.verbose = truth(p)
		case "jeos.ip":
			o.ip = p.value
		case "jeos.exec":
			o.exec = p.value
		case "console":
			name, _, _ := strings.Cut(p.value, ",")
			o.hvcConsole = o.hvcConsole || name == hvcName
		}
	}
	return o
}

// parseAddr checks a jeos.ip value: an IPv4 or IPv6 address with a
// prefix length ("10.0.2.1/24"), host bits kept; it returns it in
// canonical form, ready for `ip addr add`.
func parseAddr(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("jeos.ip=%q: want ADDR/PREFIX: %w", s, err)
	}
	if p.Addr().Zone() != "" {
		return "", fmt.Errorf("jeos.ip=%q: a zone is not allowed", s)
	}
	return p.String(), nil
}

// param is one kernel command-line parameter.
type param struct {
	key, value string
	hasValue   bool
}

// truth is the boolean a parameter sets: bare means true.
func truth(p param) bool {
	if !p.hasValue {
		return true
	}
	switch strings.ToLower(p.value) {
	case "1", "y", "yes", "true", "on":
		return true
	}
	return false
}

// parseCmdline splits a kernel command line the way the kernel does:
// parameters are separated by white space, double quotes group (and are
// removed), and the first '=' outside quotes separates key from value.
// Everything after a bare "--" is for init and is left out.
func parseCmdline(s string) []param {
	var out []param
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return out
		}
		var b strings.Builder
		quoted := false
		eq := -1
		for ; i < len(s) && (quoted || !isSpace(s[i])); i++ {
			c := s[i]
			switch {
			case c == '"':
				quoted = !quoted
			case c == '=' && !quoted && eq < 0:
				eq = b.Len()
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
		word := b.String()
		if word == "--" && eq < 0 {
			return out
		}
		if eq < 0 {
			if word != "" { // a lone `""`
				out = append(out, param{key: word})
			}
		} else {
			out = append(out, param{key: word[:eq], value: word[eq+1:], hasValue: true})
		}
	}
}

// isSpace reports whether c separates command-line parameters.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// parseOrder returns the module file names listed in an order file: one a
// line; blank lines and lines starting with '#' are skipped, surrounding
// white space is trimmed.
func parseOrder(s string) []string {
	var mods []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mods = append(mods, line)
	}
	return mods
}

// parseUptime returns the first field of /proc/uptime (seconds since boot,
// e.g. "1.52"), checked to be a non-negative number.
func parseUptime(s string) (string, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return "", errors.New("empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 || v != v {
		return "", errors.New("not a number of seconds: " + strconv.Quote(f[0]))
	}
	return f[0], nil
}
