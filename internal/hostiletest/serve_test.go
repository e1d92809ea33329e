//go:build unix

package hostiletest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// bigExportRoot exports a domain whose VEX file is size bytes and imports
// it into a new export root; it returns the root, the export id and the
// VEX file's path below the export.
func bigExportRoot(t *testing.T, size int) (root, exportID, rel string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "primary")
	if err := os.MkdirAll(filepath.Join(src, "vex", "openvex"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "advisories"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "advisories", "A-1.json"), []byte(`{"id": "A-1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	head := `{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "2026-03-01T00:00:00Z", "statements": [], "padding": "`
	body := head + strings.Repeat("0123456789abcdef", (size-len(head)-3)/16) + "\"}\n"
	if err := os.WriteFile(filepath.Join(src, "vex", "openvex", "big.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := sign.LoadSigner(abs(t, "../keys/es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	out := filepath.Join(dir, "bundle")
	res, err := bundle.Export(context.Background(), bundle.ExportOptions{Source: filepath.Join(dir, "src"), Out: out, Signer: signer, Sequence: 1, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	roots, err := trust.LoadFile(abs(t, "roots/es256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(dir, "root")
	if _, err := importer.Import(context.Background(), importer.Options{
		BundlePath: out, Stage: importer.FolderStager(out), ExportRoot: root, TrustRoots: roots,
		VerifyChecksums: true, VerifyDSSE: true, Now: created.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	return root, res.ExportID, "mirror/primary/vex/openvex/big.json"
}

// serveProcess is mirror serve running as a child process.
type serveProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	// done is closed when the process has exited, with its error in err.
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs mirror serve on a free loopback port and waits for the
// line it prints once it listens.
func startServe(t *testing.T, root string, extra ...string) *serveProcess {
	t.Helper()
	args := append([]string{"mirror", "serve", "-o", "json", "--export-root", root, "--listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(cmdTimeout):
		}
	})
	var l struct {
		Address string `json:"address"`
	}
	err = json.NewDecoder(stdout).Decode(&l)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err != nil || l.Address == "" {
		t.Fatalf("serve did not say where it listens: %v\n%s", err, p.stderr.String())
	}
	p.addr = l.Address
	return p
}

// download is one response read over a raw connection.
type download struct {
	status        int
	contentLength int64
	etag          string
	received      int64
	sum           string
	err           error
}

// TestServeSIGTERMDrainsDownloads starts downloads of a large file, stops
// reading them part way, sends SIGTERM, waits until serve no longer
// accepts connections, then reads on: every download must complete with
// exactly Content-Length bytes whose SHA-256 is the ETag, and serve must
// exit 0 once they are done.
func TestServeSIGTERMDrainsDownloads(t *testing.T) {
	const size = 48 << 20
	root, exportID, rel := bigExportRoot(t, size)
	fi, err := os.Stat(filepath.Join(root, exportID, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	want := fi.Size()
	p := startServe(t, root)
	path := "/concelier/exports/" + exportID + "/" + rel
	const clients = 6
	started := make(chan struct{}, clients)
	resume := make(chan struct{})
	results := make(chan download, clients)
	for range clients {
		go func() {
			results <- fetchPaused(p.addr, path, started, resume)
		}()
	}
	for range clients {
		<-started
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown closes the listener first: once a dial is refused, serve
	// is draining.
	for {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatalf("serve exited (%v) with %d downloads in flight\n%s", p.err, clients, p.stderr.String())
	default:
	}
	close(resume)
	for range clients {
		d := <-results
		if d.err != nil || d.status != http.StatusOK || d.received != d.contentLength || d.contentLength != want || `"`+d.sum+`"` != d.etag {
			t.Errorf("download: status %d, %d of %d bytes, sha256 %s, etag %s, err %v", d.status, d.received, d.contentLength, d.sum, d.etag, d.err)
		}
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("serve: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(cmdTimeout):
		t.Fatalf("serve did not exit after its downloads finished\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "stopped serving") {
		t.Errorf("serve did not say it stopped:\n%s", p.stderr.String())
	}
}

// fetchPaused requests path, reads 1 MiB of the body, reports on started,
// waits for resume and reads the rest. Bytes are counted on the raw
// connection, so a response cut short is seen as such whatever the
// transfer encoding.
func fetchPaused(addr, path string, started chan<- struct{}, resume <-chan struct{}) download {
	var d download
	signalled := false
	defer func() {
		if !signalled {
			started <- struct{}{}
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		d.err = err
		return d
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: mirror\r\nConnection: close\r\n\r\n", path); err != nil {
		d.err = err
		return d
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		d.err = err
		return d
	}
	d.status = resp.StatusCode
	d.etag = resp.Header.Get("ETag")
	if d.contentLength, err = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err != nil {
		d.err = fmt.Errorf("Content-Length %q", resp.Header.Get("Content-Length"))
		return d
	}
	if len(resp.TransferEncoding) > 0 {
		d.err = fmt.Errorf("transfer encoding %v", resp.TransferEncoding)
		return d
	}
	h := sha256.New()
	// Read past the response parser: br holds what it buffered.
	n, err := io.CopyN(h, br, 1<<20)
	d.received += n
	started <- struct{}{}
	signalled = true
	if err != nil {
		d.err = err
		return d
	}
	<-resume
	n, err = io.Copy(h, br)
	d.received += n
	if err != nil && !errors.Is(err, io.EOF) {
		d.err = err
	}
	d.sum = hex.EncodeToString(h.Sum(nil))
	return d
}
