// Package samplefeed embeds a small synthetic source tree (OSV-shaped
// advisories and OpenVEX, CycloneDX and CSAF VEX documents written for this
// project; none describes a real vulnerability) for the self-contained smoke
// test and for examples.
package samplefeed

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed feed
var feed embed.FS

// FS returns the sample source tree (domains at its root).
func FS() fs.FS {
	sub, err := fs.Sub(feed, "feed")
	if err != nil {
		panic(err)
	}
	return sub
}

// WriteTo writes the sample source tree into dir.
func WriteTo(dir string) error {
	return os.CopyFS(dir, FS())
}

// Path joins dir with a domain's folder, for callers that lay out the feed.
func Path(dir, domain string) string { return filepath.Join(dir, domain) }
