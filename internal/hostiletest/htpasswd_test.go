//go:build unix

package hostiletest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesHostileHtpasswd starts mirror serve with every htpasswd
// file of testdata/hostile/htpasswd: each must stop it before it listens,
// with the exit status and message of htpasswd/INDEX.tsv.
func TestServeRefusesHostileHtpasswd(t *testing.T) {
	f, err := os.Open(filepath.Join(corpusDir, "htpasswd", "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := t.TempDir()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") || sc.Text() == "" {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 4 {
			t.Fatalf("htpasswd/INDEX.tsv: %q", sc.Text())
		}
		n++
		t.Run(strings.TrimSuffix(c[0], ".htpasswd"), func(t *testing.T) {
			r := runCLI(t, nil, nil, "mirror", "serve", "--export-root", root, "--listen", "127.0.0.1:0",
				"--htpasswd", abs(t, "htpasswd/"+c[0]))
			checkRun(t, "serve", r, atoi(t, c[1]), c[2])
		})
	}
	if n < 10 {
		t.Fatalf("only %d htpasswd cases", n)
	}
}
