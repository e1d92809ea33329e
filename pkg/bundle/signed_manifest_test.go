package bundle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// swapFS serves other bytes for mirror.json from its second opening on,
// as a folder whose mirror.json is replaced after verify hashed it.
type swapFS struct {
	FS
	other []byte
	opens int
}

func (s *swapFS) Open(rel string) (io.ReadCloser, error) {
	if rel == ManifestFile {
		if s.opens++; s.opens > 1 {
			return io.NopCloser(bytes.NewReader(s.other)), nil
		}
	}
	return s.FS.Open(rel)
}

// TestVerifySignedManifestReread checks that mirror.json, decoded from the
// file after its signature verified, is refused when it is no longer the
// signed file, although the replacement is well-formed.
func TestVerifySignedManifestReread(t *testing.T) {
	s := testSigner(t, "es256", "")
	dir := exportTo(t, sampleSource(t), s, testCreated, 7)
	orig := readTree(t, dir)[ManifestFile]
	other := bytes.Replace(orig, []byte(`"sequence": 7`), []byte(`"sequence": 8`), 1)
	if bytes.Equal(other, orig) {
		t.Fatalf("no sequence in %s", orig)
	}
	fsys := &swapFS{FS: DirFS(dir), other: other}
	r, err := VerifyFS(context.Background(), fsys, dir, verifyOpts(testRoots(t, "es256"), testNow))
	if !errors.Is(err, failure.ErrVerification) || !hasProblem(r, ManifestFile, ErrMalformed) ||
		!strings.Contains(describeProblems(r), "changed while it was being verified") {
		t.Fatalf("replaced mirror.json: %v%s", err, describeProblems(r))
	}
	if r.Sequence == 8 {
		t.Error("report took the sequence of the replacement")
	}

	// The same folder, unchanged, verifies.
	fsys = &swapFS{FS: DirFS(dir), other: orig}
	if r, err := VerifyFS(context.Background(), fsys, dir, verifyOpts(testRoots(t, "es256"), testNow)); err != nil {
		t.Fatalf("%v%s", err, describeProblems(r))
	}
}

// TestCountPathKeys counts keys split across reads.
func TestCountPathKeys(t *testing.T) {
	data := []byte(strings.Repeat(`{"path":"a","size":1},`, 1000) + `"pat`)
	n, size, err := countPathKeys(iotest.OneByteReader(bytes.NewReader(data)))
	if err != nil || n != 1000 || size != int64(len(data)) {
		t.Fatalf("one byte at a time: %d keys in %d bytes, %v", n, size, err)
	}
	if n, _, _ := countPathKeys(iotest.HalfReader(bytes.NewReader(data))); n != 1000 {
		t.Fatalf("half reads: %d keys", n)
	}
}
