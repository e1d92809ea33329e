// Command hostilegen writes testdata/hostile: hostile mirror bundles,
// archives and trust-roots files, each with the exit status and message
// that mirror verify and mirror import must give, listed in
// testdata/hostile/INDEX.tsv.
//
// Every bundle is signed with the TEST-ONLY keys of testdata/keys, so the
// corpus is byte-identical from one run to the next:
//
//	go run ./internal/hostilegen
//
// rewrites testdata/hostile from scratch (run it from the module root);
// go test ./internal/hostilegen fails when the committed corpus differs.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "testdata/hostile", "folder to write the corpus to (replaced)")
	keys := flag.String("keys", "testdata/keys", "folder of the TEST-ONLY keys")
	flag.Parse()
	files, err := Generate(*keys)
	if err == nil {
		err = files.WriteTo(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostilegen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hostilegen: wrote %d files to %s\n", len(files), *out)
}
