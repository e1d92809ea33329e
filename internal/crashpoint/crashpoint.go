// Package crashpoint lets tests kill the process at named steps of a
// multi-step operation, to check that the on-disk state survives a kill -9
// at each of them.
//
// Packages register their points once at init time:
//
//	var cpBeforeRename = crashpoint.Register("activate-before-rename")
//
// and call Hit at that step. When the environment variable
// STELLAOPS_CRASHPOINT equals the point's name, Hit sends SIGKILL to its own
// process. Tests re-execute their binary with the variable set and iterate
// over Names to cover every point.
package crashpoint

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
)

// EnvVar is the environment variable naming the point at which to crash.
const EnvVar = "STELLAOPS_CRASHPOINT"

var (
	mu       sync.Mutex
	registry = map[string]struct{}{}

	target = sync.OnceValue(func() string { return os.Getenv(EnvVar) })
)

// Register adds name to the registry and returns it. It panics when name is
// empty or already registered, so that two steps never share a name.
func Register(name string) string {
	if name == "" {
		panic("crashpoint: empty name")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("crashpoint: %q registered twice", name))
	}
	registry[name] = struct{}{}
	return name
}

// Names returns the registered point names, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Registered reports whether name has been registered.
func Registered(name string) bool {
	mu.Lock()
	defer mu.Unlock()
	_, ok := registry[name]
	return ok
}

// Hit kills the process with SIGKILL when STELLAOPS_CRASHPOINT equals name.
// The variable is read once, on the first call. Nothing is flushed or
// cleaned up: the effect is that of kill -9 at this step.
func Hit(name string) {
	if pauseTarget != "" && pauseTarget == name {
		pause(name)
		return
	}
	t := target()
	if t == "" || t != name {
		return
	}
	// Process.Kill is SIGKILL on Unix and TerminateProcess on Windows:
	// nothing is flushed or cleaned up.
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	// The kill cannot be caught; wait for it to be delivered.
	select {}
}

// PauseEnvVar names a point at which Hit stops and waits for SIGINT or
// SIGTERM instead of killing the process, so tests can interrupt a run at
// an exact step without timing guesses. It prints "paused at NAME" on
// stderr when it stops.
const PauseEnvVar = "STELLAOPS_PAUSEPOINT"

var pauseTarget = os.Getenv(PauseEnvVar)

// HitContext is Hit for steps that run under a context: at a pause point it
// waits until ctx is done (SIGINT and SIGTERM cancel the command's context),
// so the step after it sees the cancellation. It pauses once per process.
func HitContext(ctx context.Context, name string) {
	if pauseTarget != "" && pauseTarget == name {
		pauseOnce.Do(func() {
			fmt.Fprintf(os.Stderr, "stellaops-cli: paused at %s\n", name)
			<-ctx.Done()
		})
		return
	}
	Hit(name)
}

var pauseOnce sync.Once

func pause(name string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(c)
	fmt.Fprintf(os.Stderr, "stellaops-cli: paused at %s\n", name)
	<-c
}
