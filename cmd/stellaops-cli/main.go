// Command stellaops-cli exports, verifies, imports and serves signed
// advisory and VEX mirror bundles for air-gapped networks.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/stellaops/stellaops-cli/internal/cli"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Main(ctx, iostreams.System(), os.Args[1:])
}
