package mirror

import (
	"context"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/importer"
)

// stagerFor returns how to copy the bundle at path into a staging folder.
func stagerFor(ctx context.Context, io *iostreams.IO, path string) (importer.Stager, func(), error) {
	return importer.FolderStager(path), func() {}, nil
}

func humanBytes(n int64) string { return bundle.HumanBytes(n) }
