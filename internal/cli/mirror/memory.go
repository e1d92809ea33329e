package mirror

import (
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for the commands
// that read whole bundles (verify, import, sync) when GOMEMLIMIT is unset.
// They stream every file, so what they keep is bounded; the limit makes the
// garbage collector return what they no longer keep before the heap doubles,
// which holds a bundle of any size near 64 MiB resident. When a bundle needs
// more (the signed file list of hundreds of thousands of files), the runtime
// goes past it rather than fail.
const defaultMemoryLimit = 48 << 20

// boundMemory applies defaultMemoryLimit unless the operator set GOMEMLIMIT.
func boundMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
