package exportroot

import (
	"fmt"
	"os"
	"strings"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
)

// reservedState lists the state folder entries that ReadState and
// WriteState refuse: they have their own accessors.
var reservedState = map[string]bool{
	LockFile:     true,
	SequenceFile: true,
	StatusFile:   true,
	LogFile:      true,
	StagingDir:   true,
	TrashDir:     true,
}

func (r *Root) stateName(op, name string) (string, error) {
	switch {
	case name == "" || name == "." || name == "..":
		return "", fmt.Errorf("%s state file %q in %s: invalid name", op, name, r.state)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0):
		return "", fmt.Errorf("%s state file %q in %s: name must not contain a path separator", op, name, r.state)
	case strings.HasPrefix(name, "."):
		return "", fmt.Errorf("%s state file %q in %s: name must not start with a dot", op, name, r.state)
	case reservedState[name]:
		return "", fmt.Errorf("%s state file %q in %s: name is reserved", op, name, r.state)
	}
	return r.statePath(name), nil
}

// ReadState returns the content of the state file ROOT/.stellaops/name
// (trust store, sync fingerprints...). name must be a plain file name. A
// missing file gives an error wrapping fs.ErrNotExist.
func (r *Root) ReadState(name string) ([]byte, error) {
	p, err := r.stateName("read", name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", p, err)
	}
	return data, nil
}

// WriteState atomically replaces the state file ROOT/.stellaops/name with
// data (mode 0644). name must be a plain file name, not one of the files
// the Root manages itself. Call it while holding the lock.
func (r *Root) WriteState(name string, data []byte) error {
	p, err := r.stateName("write", name)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}
