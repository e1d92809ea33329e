package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// The bundles are dated, and imports run at, fixed times: nothing depends
// on today's date.
var (
	created0 = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	importAt = time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)
)

func (c *config) signer() (*sign.Signer, error) {
	return sign.LoadSigner(filepath.Join(c.keys, "es256.pem"), "", "", nil)
}

func (c *config) roots() (*trust.Roots, error) {
	return trust.LoadFile(filepath.Join(c.keys, "es256.pub"))
}

// exportBundle exports src into a new folder with sequence seq.
func (c *config) exportBundle(src string, seq int64, name string) (string, error) {
	s, err := c.signer()
	if err != nil {
		return "", err
	}
	out := filepath.Join(c.tmp, name)
	_, err = bundle.Export(context.Background(), bundle.ExportOptions{
		Source: src, Out: out, Signer: s, Sequence: seq, Created: created0.Add(time.Duration(seq) * time.Minute),
	})
	return out, err
}

// importBundle imports dir into root in-process.
func (c *config) importBundle(dir, root string) error {
	roots, err := c.roots()
	if err != nil {
		return err
	}
	_, err = importer.Import(context.Background(), importer.Options{
		BundlePath: dir, Stage: importer.FolderStager(dir), ExportRoot: root, TrustRoots: roots,
		VerifyChecksums: true, VerifyDSSE: true, Now: importAt, Keep: 2, Rotate: rotation.Apply,
	})
	return err
}

// sampleRoot makes an export root serving the embedded sample feed.
func (c *config) sampleRoot(name string) (string, error) {
	src := filepath.Join(c.tmp, name+"-src")
	if err := samplefeed.WriteTo(src); err != nil {
		return "", err
	}
	b, err := c.exportBundle(src, 1, name+"-bundle")
	if err != nil {
		return "", err
	}
	root := filepath.Join(c.tmp, name+"-root")
	return root, c.importBundle(b, root)
}

// bigSource writes a one-domain feed whose VEX file is about size bytes;
// tag makes the contents of each feed differ.
func bigSource(dir string, size int, tag string) error {
	d := filepath.Join(dir, "primary")
	for _, sub := range []string{"advisories", "vex/openvex"} {
		if err := os.MkdirAll(filepath.Join(d, filepath.FromSlash(sub)), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d, "advisories", "A-1.json"), []byte(`{"id": "A-1", "tag": "`+tag+`"}`+"\n"), 0o644); err != nil {
		return err
	}
	head := `{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "2026-03-01T00:00:00Z", "statements": [], "tag": "` + tag + `", "padding": "`
	body := head + strings.Repeat(fmt.Sprintf("%-16s", tag), max(1, (size-len(head))/16)) + "\"}\n"
	return os.WriteFile(filepath.Join(d, "vex", "openvex", "big.json"), []byte(body), 0o644)
}
