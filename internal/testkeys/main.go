// Command testkeys writes testdata/keys/cosign.key and cosign.pub: a TEST-ONLY
// P-256 key in cosign's encrypted format (password "test-password"), made the
// way "cosign generate-key-pair" makes it.
package main

import (
	"crypto/elliptic"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func main() {
	dir := filepath.Join("testdata", "keys")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("test-password")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testkeys:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.key"), priv, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "testkeys:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), pub, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "testkeys:", err)
		os.Exit(1)
	}
}
