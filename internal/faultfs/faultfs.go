// Package faultfs injects write failures for tests. It is driven by the
// environment variable STELLAOPS_FAULT, read once when the package is
// initialised; when the variable is unset every check is a single atomic
// load.
//
// The variable holds comma-separated rules:
//
//	enospc-after=N   writes fail with syscall.ENOSPC once N bytes in total were written
//	eio-after=N      writes fail with syscall.EIO once N bytes in total were written
//
// Bytes are counted across the whole process, by every writer returned by
// WrapWriter and every CheckWrite call. When several rules are given, the
// lowest limit applies first. An unparsable value makes every write fail,
// so that a mistyped rule cannot go unnoticed.
package faultfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar is the environment variable holding the fault rules.
const EnvVar = "STELLAOPS_FAULT"

// ErrInvalidSpec reports an unparsable STELLAOPS_FAULT value.
var ErrInvalidSpec = errors.New("invalid " + EnvVar + " value")

type rule struct {
	limit int64
	errno syscall.Errno
}

type config struct {
	spec  string
	rules []rule // sorted by limit, lowest first
	bad   error  // set when spec could not be parsed

	mu      sync.Mutex
	written int64
}

var active atomic.Pointer[config]

func init() {
	if spec, ok := os.LookupEnv(EnvVar); ok && spec != "" {
		c, err := parse(spec)
		if err != nil {
			c = &config{spec: spec, bad: err}
		}
		active.Store(c)
	}
}

// Set replaces the fault rules of this process with spec (same syntax as
// STELLAOPS_FAULT) and resets the byte counter. An empty spec turns fault
// injection off. It is meant for tests that run in-process.
func Set(spec string) error {
	if spec == "" {
		active.Store(nil)
		return nil
	}
	c, err := parse(spec)
	if err != nil {
		return err
	}
	active.Store(c)
	return nil
}

// Enabled reports whether any fault rule is in effect.
func Enabled() bool { return active.Load() != nil }

func parse(spec string) (*config, error) {
	c := &config{spec: spec}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w %q: rule %q has no '='", ErrInvalidSpec, spec, part)
		}
		var errno syscall.Errno
		switch key {
		case "enospc-after":
			errno = syscall.ENOSPC
		case "eio-after":
			errno = syscall.EIO
		default:
			return nil, fmt.Errorf("%w %q: unknown rule %q (want enospc-after or eio-after)", ErrInvalidSpec, spec, key)
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w %q: %s needs a byte count >= 0, got %q", ErrInvalidSpec, spec, key, val)
		}
		c.rules = append(c.rules, rule{limit: n, errno: errno})
	}
	if len(c.rules) == 0 {
		return nil, fmt.Errorf("%w %q: no rules", ErrInvalidSpec, spec)
	}
	sort.SliceStable(c.rules, func(i, j int) bool { return c.rules[i].limit < c.rules[j].limit })
	return c, nil
}

// reserve accounts for a write of n bytes and returns how many of them may
// be written, with the injected error for the rest.
func (c *config) reserve(n int) (int, error) {
	if c.bad != nil {
		return 0, c.bad
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rules[0]
	room := r.limit - c.written
	if room < 0 {
		room = 0
	}
	if int64(n) <= room {
		c.written += int64(n)
		return n, nil
	}
	c.written += room
	return int(room), &os.SyscallError{
		Syscall: fmt.Sprintf("write (%s=%s)", EnvVar, c.spec),
		Err:     r.errno,
	}
}

// CheckWrite accounts for a write of n bytes about to happen and returns
// the injected error when the write would cross a limit. Copy loops call it
// before each write; it returns nil when no rule is set.
func CheckWrite(n int) error {
	c := active.Load()
	if c == nil {
		return nil
	}
	_, err := c.reserve(n)
	return err
}

// Active reports whether a rule is set: writes that bypass WrapWriter (a
// copy inside the kernel) must then not be used.
func Active() bool { return active.Load() != nil }

// WrapWriter returns w itself when no rule is set, else a writer that
// passes writes through to w until a limit is reached, then writes the
// part that fits and returns the injected error (a short write, as a full
// disk gives).
func WrapWriter(w io.Writer) io.Writer {
	if active.Load() == nil {
		return w
	}
	return &writer{w: w}
}

type writer struct{ w io.Writer }

func (fw *writer) Write(p []byte) (int, error) {
	c := active.Load()
	if c == nil {
		return fw.w.Write(p)
	}
	allowed, ferr := c.reserve(len(p))
	n, err := fw.w.Write(p[:allowed])
	if err != nil {
		return n, err
	}
	return n, ferr
}
