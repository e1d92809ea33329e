package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// ImportRequest is the body of POST /api/v1/mirror/import, plus the export
// root the server serves.
type ImportRequest struct {
	BundlePath      string `json:"bundlePath"`
	VerifyChecksums bool   `json:"verifyChecksums"`
	VerifyDsse      bool   `json:"verifyDsse"`
	TrustRootsPath  string `json:"trustRootsPath"`
	// ExportRoot is the server's export root; the request cannot set it.
	ExportRoot string `json:"-"`
}

// ImportFunc runs one import, the same as "mirror import" does, and keeps
// ROOT/.stellaops/import-status.json up to date. It should stop early and
// leave nothing half-done when ctx is cancelled.
type ImportFunc func(ctx context.Context, req ImportRequest) error

// importRunner allows one import at a time.
type importRunner struct {
	run  ImportFunc
	root string

	mu      sync.Mutex
	running bool
	last    exportroot.Status
	done    chan struct{}
	cancel  context.CancelFunc
}

// importBody is the wire form of the request: verify flags default to true.
type importBody struct {
	BundlePath      string `json:"bundlePath"`
	VerifyChecksums *bool  `json:"verifyChecksums"`
	VerifyDsse      *bool  `json:"verifyDsse"`
	TrustRootsPath  string `json:"trustRootsPath"`
}

func (h *Handler) serveImport(w http.ResponseWriter, r *http.Request) {
	var body importBody
	dec := json.NewDecoder(io.LimitReader(r.Body, maxImportBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "request body: want {bundlePath, verifyChecksums, verifyDsse, trustRootsPath}: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: one JSON object expected")
		return
	}
	if msg := checkLocalPath("bundlePath", body.BundlePath, true); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := checkLocalPath("trustRootsPath", body.TrustRootsPath, false); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	req := ImportRequest{
		BundlePath: body.BundlePath, TrustRootsPath: body.TrustRootsPath,
		VerifyChecksums: body.VerifyChecksums == nil || *body.VerifyChecksums,
		VerifyDsse:      body.VerifyDsse == nil || *body.VerifyDsse,
		ExportRoot:      h.cfg.Mirror.ExportRoot,
	}
	ir := h.importer
	if ir.run == nil {
		writeError(w, http.StatusNotImplemented, "the import API is enabled but this server has no importer wired in")
		return
	}
	ir.mu.Lock()
	if ir.running {
		ir.mu.Unlock()
		writeError(w, http.StatusConflict, "an import is already running")
		return
	}
	started := h.now().UTC()
	ctx, cancel := context.WithCancel(context.Background())
	ir.running, ir.cancel, ir.done = true, cancel, make(chan struct{})
	ir.last = exportroot.Status{State: exportroot.StateRunning, StartedAt: &started, Errors: []string{}, Warnings: []string{}}
	done := ir.done
	ir.mu.Unlock()
	if !req.VerifyChecksums {
		h.logf("import of %s requested with verifyChecksums=false", req.BundlePath)
	}
	if !req.VerifyDsse {
		h.logf("import of %s requested with verifyDsse=false", req.BundlePath)
	}
	go func() {
		defer close(done)
		defer cancel()
		err := ir.run(ctx, req)
		finished := h.now().UTC()
		ir.mu.Lock()
		ir.running = false
		ir.last.FinishedAt = &finished
		if err != nil {
			ir.last.State = exportroot.StateFailed
			ir.last.Errors = []string{err.Error()}
			h.logf("import of %s failed: %v", req.BundlePath, err)
		} else {
			ir.last.State = exportroot.StateSucceeded
			h.logf("import of %s finished", req.BundlePath)
		}
		ir.mu.Unlock()
		h.exports.invalidate()
	}()
	w.Header().Set("Location", "/api/v1/mirror/import/status")
	writeJSON(w, http.StatusAccepted, exportroot.Status{State: exportroot.StateRunning, StartedAt: &started, Errors: []string{}, Warnings: []string{}})
}

// checkLocalPath accepts absolute paths on the server only.
func checkLocalPath(field, p string, required bool) string {
	switch {
	case p == "":
		if required {
			return field + " is required"
		}
		return ""
	case strings.Contains(p, "://"):
		return field + " must be a path on the server, not a URL"
	case !filepath.IsAbs(p):
		return field + " must be an absolute path on the server"
	case strings.ContainsRune(p, 0):
		return field + " contains a NUL byte"
	}
	return ""
}

func (h *Handler) serveImportStatus(w http.ResponseWriter, r *http.Request) {
	ir := h.importer
	ir.mu.Lock()
	running, last := ir.running, ir.last
	ir.mu.Unlock()
	p := filepath.Join(ir.root, exportroot.StateDirName, exportroot.StatusFile)
	raw, err := readStatusFile(p)
	if err == nil {
		var probe struct {
			State string `json:"state"`
		}
		if json.Unmarshal(raw, &probe) == nil && (!running || probe.State == exportroot.StateRunning) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", CacheNoStore)
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = w.Write(raw)
			}
			return
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		h.logf("read %s: %v", p, err)
	}
	if last.State == "" {
		last = exportroot.Status{State: exportroot.StateIdle, Errors: []string{}, Warnings: []string{}}
	}
	writeJSON(w, http.StatusOK, last)
}

func readStatusFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStatusBytes || !json.Valid(b) {
		return nil, errors.New("status file is too large or not JSON")
	}
	b = bytes.TrimSpace(b)
	return append(b, '\n'), nil
}

// wait blocks until a running import finishes or ctx is done; then it
// cancels the import and waits for it to return.
func (ir *importRunner) wait(ctx context.Context) {
	ir.mu.Lock()
	done, cancel := ir.done, ir.cancel
	running := ir.running
	ir.mu.Unlock()
	if !running || done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
		cancel()
		<-done
	}
}
