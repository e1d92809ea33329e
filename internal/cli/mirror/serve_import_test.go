package mirror

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// The import API runs the same import as the CLI: it activates a good bundle
// and refuses stdin and a bundle its trust roots do not vouch for.
func TestServeImporter(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join("..", "..", "..", "testdata", "keys")
	signer, err := sign.LoadSigner(filepath.Join(keys, "es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "bundle")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{Source: src, Out: b, Signer: signer, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	imp := serveImporter(iostreams.Test(nil, &bytes.Buffer{}, &stderr))
	root := filepath.Join(dir, "root")
	ctx := context.Background()

	err = imp(ctx, serve.ImportRequest{BundlePath: b, TrustRootsPath: filepath.Join(keys, "other-es256.pub"), VerifyChecksums: true, VerifyDsse: true, ExportRoot: root})
	if !errors.Is(err, failure.ErrVerification) {
		t.Fatalf("untrusted key: %v", err)
	}
	if err := imp(ctx, serve.ImportRequest{BundlePath: "-", ExportRoot: root}); !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("stdin: %v", err)
	}
	if err := imp(ctx, serve.ImportRequest{BundlePath: b, TrustRootsPath: filepath.Join(keys, "es256.pub"), VerifyChecksums: true, VerifyDsse: true, ExportRoot: root}); err != nil {
		t.Fatal(err)
	}
	latest, err := exportroot.ResolveActive(root, "")
	if err != nil || latest == "" {
		t.Fatalf("active export after the API import: %q, %v", latest, err)
	}
}
