//go:build !linux

package importer

import (
	"context"
	"os"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// kernelCopyMin: copyKernel is Linux only.
const kernelCopyMin = 1 << 62

func copyKernel(context.Context, *os.File, *os.File, []byte, func(int64)) (bundle.Digest, error) {
	panic("copyKernel: not on this system")
}
