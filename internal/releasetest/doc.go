// Package releasetest checks what a release ships besides the binary: the
// shell completion scripts, the deployment examples under deploy/ and the
// commands the docs show, the JSON Schemas of docs/schemas against a real
// export, the goreleaser configuration and the version output. It has
// tests only.
package releasetest
