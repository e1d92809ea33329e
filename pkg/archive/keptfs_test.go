package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// keepDoc writes data into a new kept document in chunks, as the pipeline
// does, and keeps it under name.
func keepDoc(k *keptFS, name string, data []byte) {
	d := k.newDoc(int64(len(data)))
	for off := 0; off < len(data); off += chunkSize {
		d.Write(data[off:min(off+chunkSize, len(data))])
	}
	d.keep(name)
	k.digests.Add(name, int64(len(data)), new([32]byte))
}

// TestKeptFS checks that kept documents read back whole, large ones
// compressed, and that a compressed one seeks back to its start and tells
// its size.
func TestKeptFS(t *testing.T) {
	k, err := newKeptFS()
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	rng := rand.New(rand.NewPCG(7, 8))
	noise := make([]byte, 3*chunkSize+1000)
	for i := range noise {
		noise[i] = byte(rng.IntN(256))
	}
	docs := map[string][]byte{
		"mirror.json":       bytes.Repeat([]byte(`{"path":"mirror/vex/x.json","sha256":"00"},`), 4000),
		"SHA256SUMS":        noise,
		"mirror/index.json": []byte("{}\n"),
		"keys/empty.json":   {},
	}
	for name, data := range docs {
		keepDoc(k, name, data)
	}
	k.digests.Add("mirror/vex/a.json", 10, new([32]byte))
	if len(k.packed) != 2 || len(k.packed["mirror.json"].zst) >= len(docs["mirror.json"])/4 {
		t.Fatalf("packed %d documents", len(k.packed))
	}
	for name, want := range docs {
		f, err := k.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, err := io.ReadAll(f)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: read %d bytes of %d, %v", name, len(got), len(want), err)
			}
			if _, err := f.(io.Seeker).Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
		}
		if st, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
			if info, err := st.Stat(); err != nil || info.Size() != int64(len(want)) {
				t.Fatalf("%s: stat %v, %v", name, info, err)
			}
		} else if _, packed := k.packed[name]; packed {
			t.Fatalf("%s: no Stat", name)
		}
		f.Close()
	}
	f, _ := k.Open("mirror.json")
	if _, err := f.(io.Seeker).Seek(10, io.SeekStart); err == nil {
		t.Error("seek to 10 accepted")
	}
	f.Close()
	if _, err := k.Open("mirror/vex/a.json"); err == nil {
		t.Fatal("opened a file whose bytes were not kept")
	}
	if _, err := k.Open("absent"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent: %v", err)
	}
	sizes, _, err := k.Files()
	if err != nil || len(sizes) != 5 || sizes["mirror.json"] != int64(len(docs["mirror.json"])) {
		t.Fatalf("files %v, %v", sizes, err)
	}

	// A forgotten document is still listed, but its bytes are gone.
	for _, name := range []string{"mirror.json", "mirror/index.json"} {
		k.Forget(name)
		if _, err := k.Open(name); err == nil || errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s forgotten: open gave %v", name, err)
		}
	}
	if _, packed := k.packed["mirror.json"]; packed {
		t.Error("forgotten document still packed")
	}
	if sizes, _, _ := k.Files(); len(sizes) != 5 {
		t.Fatalf("files after forgetting %v", sizes)
	}
}
