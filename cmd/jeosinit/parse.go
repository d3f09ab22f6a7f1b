package main

import (
	"errors"
	"strconv"
	"strings"
)

// options are jeosinit's settings from the kernel command line.
type options struct {
	poweroff bool // jeos.poweroff: power off right after the marker
	verbose  bool // jeos.verbose: log each module
}

// parseOptions reads jeosinit's options from a kernel command line. A
// bare "jeos.poweroff" or one with a true value (1, y, yes, true, on)
// turns it on; a later setting wins.
func parseOptions(cmdline string) options {
	var o options
	for _, p := range parseCmdline(cmdline) {
		switch p.key {
		case "jeos.poweroff":
			o.poweroff = truth(p)
		case "jeos.verbose":
			o.verbose = truth(p)
		}
	}
	return o
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
