// Package bundle reads, writes and verifies StellaOps mirror bundles: the
// signed manifest (mirror.json), its DSSE envelope, the per-domain bundle
// documents with their detached JWS and cosign signatures, and SHA256SUMS.
package bundle

import (
	"encoding/json"
	"time"
)

// File names and constants of the bundle layout (CONTRACT.md §1.2).
const (
	SchemaVersion = 1

	ManifestFile  = "mirror.json"
	EnvelopeFile  = "mirror.dsse.json"
	ChecksumsFile = "SHA256SUMS"
	MirrorDir     = "mirror"
	IndexPath     = "mirror/index.json"
	KeysDir       = "keys"

	DomainManifestName = "manifest.json"
	DomainBundleName   = "bundle.json"
	DomainJWSName      = "bundle.json.jws"
	DomainSigName      = "bundle.json.sig"

	// PayloadType is the DSSE payloadType of mirror.json envelopes.
	PayloadType = "application/vnd.stellaops.mirror+json;version=1"

	// ExportIDLayout is the time layout of export ids (UTC).
	ExportIDLayout = "20060102T150405Z"
)

// FileEntry lists one file of a bundle in mirror.json.
type FileEntry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is mirror.json, the signed root document of a bundle.
type Manifest struct {
	SchemaVersion int         `json:"schemaVersion"`
	ExportID      string      `json:"exportId"`
	Sequence      int64       `json:"sequence"`
	GeneratedAt   time.Time   `json:"generatedAt"`
	ExpiresAt     time.Time   `json:"expiresAt"`
	Producer      string      `json:"producer"`
	Domains       []string    `json:"domains"`
	Rotations     []string    `json:"rotations,omitempty"`
	Files         []FileEntry `json:"files"`
}

// File returns the entry for path, if listed.
func (m *Manifest) File(path string) (FileEntry, bool) {
	for _, f := range m.Files {
		if f.Path == path {
			return f, true
		}
	}
	return FileEntry{}, false
}

// SignatureInfo names the JWS algorithm and key id of a domain bundle.
type SignatureInfo struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// VexExport describes one Excititor export file of a domain. The JWS over
// bundle.json covers these digests, so it vouches for every VEX file.
type VexExport struct {
	Key               string    `json:"key"`
	Format            string    `json:"format"`
	CreatedAt         time.Time `json:"createdAt"`
	ArtifactDigest    string    `json:"artifactDigest"`
	ArtifactSizeBytes int64     `json:"artifactSizeBytes"`
	Path              string    `json:"path"`
}

// DomainBundle is mirror/<domain>/bundle.json.
type DomainBundle struct {
	SchemaVersion int               `json:"schemaVersion"`
	DomainID      string            `json:"domainId"`
	DisplayName   string            `json:"displayName"`
	GeneratedAt   time.Time         `json:"generatedAt"`
	AdvisoryCount int               `json:"advisoryCount"`
	Exports       []VexExport       `json:"exports"`
	Advisories    []json.RawMessage `json:"advisories"`
}

// DomainManifest is mirror/<domain>/manifest.json.
type DomainManifest struct {
	SchemaVersion int           `json:"schemaVersion"`
	DomainID      string        `json:"domainId"`
	DisplayName   string        `json:"displayName"`
	ExportID      string        `json:"exportId"`
	GeneratedAt   time.Time     `json:"generatedAt"`
	AdvisoryCount int           `json:"advisoryCount"`
	Bundle        FileEntry     `json:"bundle"`
	Signature     SignatureInfo `json:"signature"`
	JWSPath       string        `json:"jwsPath"`
	SigPath       string        `json:"sigPath"`
	Exports       []VexExport   `json:"exports"`
}

// Index is mirror/index.json, served as /concelier/exports/index.json.
type Index struct {
	SchemaVersion int           `json:"schemaVersion"`
	ExportID      string        `json:"exportId"`
	GeneratedAt   time.Time     `json:"generatedAt"`
	Domains       []IndexDomain `json:"domains"`
}

// IndexDomain is one domain's entry in index.json. Paths are relative to
// the folder index.json is served from (/concelier/exports/).
type IndexDomain struct {
	ID            string         `json:"id"`
	DisplayName   string         `json:"displayName"`
	AdvisoryCount int            `json:"advisoryCount"`
	ExportCount   int            `json:"exportCount"`
	BundleSize    int64          `json:"bundleSize"`
	BundleSha256  string         `json:"bundleSha256"`
	ExportFormats []string       `json:"exportFormats"`
	Signed        bool           `json:"signed"`
	Signature     *SignatureInfo `json:"signature,omitempty"`
	LastGenerated time.Time      `json:"lastGenerated"`
	ManifestPath  string         `json:"manifestPath"`
	BundlePath    string         `json:"bundlePath"`
	JWSPath       string         `json:"jwsPath"`
	SigPath       string         `json:"sigPath"`
}

// ExcititorIndex is the document served at /excititor/mirror/{domain}/index:
// a domain's VEX exports with their digests and download routes.
type ExcititorIndex struct {
	DomainID    string                `json:"domainId"`
	ExportID    string                `json:"exportId"`
	GeneratedAt time.Time             `json:"generatedAt"`
	Exports     []ExcititorIndexEntry `json:"exports"`
}

// ExcititorIndexEntry is one VEX export in an ExcititorIndex.
type ExcititorIndexEntry struct {
	ExportKey string    `json:"exportKey"`
	Format    string    `json:"format"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"createdAt"`
	Href      string    `json:"href"`
}
