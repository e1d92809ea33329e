package exportroot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Results of an import attempt, as recorded in LogEntry.Result.
const (
	ResultImported      = "imported"
	ResultAlreadyActive = "already-active"
	ResultRefused       = "refused"
	ResultFailed        = "failed"
)

// Commands recorded in LogEntry.Command.
const (
	CommandImport = "import"
	CommandSync   = "sync"
)

// ZeroSHA256 is the PrevSHA256 of the first line of the import log.
var ZeroSHA256 = strings.Repeat("0", 64)

// LogEntry is one line of ROOT/.stellaops/import.log: one import or sync
// attempt. PrevSHA256 chains each line to the one before it (hex SHA-256 of
// the previous line's bytes, without its newline), so that edited, deleted
// or reordered lines are detected by VerifyLog.
type LogEntry struct {
	Time               time.Time `json:"time"`
	ExportID           string    `json:"exportId"`
	Sequence           int64     `json:"sequence"`
	ManifestSHA256     string    `json:"manifestSha256"`
	SignerKeyIDs       []string  `json:"signerKeyIds"`
	User               string    `json:"user"`
	Host               string    `json:"host"`
	Command            string    `json:"command"`
	Result             string    `json:"result"`
	Reason             string    `json:"reason"`
	AllowDowngrade     bool      `json:"allowDowngrade"`
	ReplacedTrustRoots bool      `json:"replacedTrustRoots"`
	PrevSHA256         string    `json:"prevSha256"`
}

// AppendLog appends e as one JSON line to ROOT/.stellaops/import.log and
// fsyncs it. It sets e.PrevSHA256 from the log's current last line (64
// zeros for the first). The caller supplies e.Time. A last line left
// incomplete by a crash is completed when it holds a whole entry and
// dropped otherwise. Call it while holding the lock.
func (r *Root) AppendLog(e LogEntry) error {
	p := r.statePath(LogFile)
	_, statErr := os.Lstat(p)
	created := errors.Is(statErr, fs.ErrNotExist)

	f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append to import log %s: %w", p, err)
	}
	defer f.Close()

	prev, err := repairTail(f)
	if err != nil {
		return fmt.Errorf("append to import log %s: %w", p, err)
	}
	e.PrevSHA256 = prev
	if e.SignerKeyIDs == nil {
		e.SignerKeyIDs = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("append to import log %s: %w", p, err)
	}
	if _, err := faultfs.WrapWriter(f).Write(buf.Bytes()); err != nil {
		return fmt.Errorf("append to import log %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("append to import log %s: sync: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("append to import log %s: %w", p, err)
	}
	if created {
		return atomicfile.SyncDir(r.state)
	}
	return nil
}

// repairTail returns the hash that the next line must carry, completing or
// dropping a last line that has no newline.
func repairTail(f *os.File) (string, error) {
	for {
		fi, err := f.Stat()
		if err != nil {
			return "", err
		}
		size := fi.Size()
		if size == 0 {
			return ZeroSHA256, nil
		}
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			return "", err
		}
		if last[0] == '\n' {
			start, err := lastNewline(f, size-1)
			if err != nil {
				return "", err
			}
			line := make([]byte, size-1-(start+1))
			if _, err := f.ReadAt(line, start+1); err != nil {
				return "", err
			}
			return lineHash(line), nil
		}
		start, err := lastNewline(f, size)
		if err != nil {
			return "", err
		}
		torn := make([]byte, size-(start+1))
		if _, err := f.ReadAt(torn, start+1); err != nil {
			return "", err
		}
		var e LogEntry
		if json.Unmarshal(torn, &e) == nil {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return "", err
			}
			return lineHash(torn), nil
		}
		if err := f.Truncate(start + 1); err != nil {
			return "", err
		}
	}
}

// lastNewline returns the offset of the last '\n' in f before end, or -1.
func lastNewline(f *os.File, end int64) (int64, error) {
	const chunk = 4096
	buf := make([]byte, chunk)
	for end > 0 {
		n := int64(chunk)
		if end < n {
			n = end
		}
		off := end - n
		if _, err := f.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i), nil
		}
		end = off
	}
	return -1, nil
}

func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// readLogLines returns the lines of the import log without their newlines;
// nil when there is no log.
func (r *Root) readLogLines() ([][]byte, error) {
	p := r.statePath(LogFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read import log %s: %w", p, err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	data = bytes.TrimSuffix(data, []byte{'\n'})
	return bytes.Split(data, []byte{'\n'}), nil
}

// ReadLog returns the entries of ROOT/.stellaops/import.log, oldest first;
// none when there is no log. It does not check the chain (see VerifyLog).
func (r *Root) ReadLog() ([]LogEntry, error) {
	lines, err := r.readLogLines()
	if err != nil {
		return nil, err
	}
	entries := make([]LogEntry, 0, len(lines))
	for i, line := range lines {
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("read import log %s: line %d: %w", r.statePath(LogFile), i+1, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// VerifyLog checks the hash chain of ROOT/.stellaops/import.log. It
// returns an error wrapping failure.ErrVerification that names the first
// line (1-based) that does not parse or whose prevSha256 does not match
// the line before it, which is where an edited, deleted or reordered line
// shows. A missing log verifies. The chain cannot show an edit of the last
// line or the removal of trailing lines.
func (r *Root) VerifyLog() error {
	p := r.statePath(LogFile)
	lines, err := r.readLogLines()
	if err != nil {
		return err
	}
	want := ZeroSHA256
	for i, line := range lines {
		var e LogEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return failure.Verificationf("import log %s: line %d: not a log entry: %v", p, i+1, err)
		}
		if e.PrevSHA256 != want {
			if i == 0 {
				return failure.Verificationf("import log %s: line 1: prevSha256 is %q, want 64 zeros for the first line (a line was deleted or reordered)", p, e.PrevSHA256)
			}
			return failure.Verificationf("import log %s: line %d: prevSha256 is %q, but the SHA-256 of line %d is %s (a line was edited, deleted or reordered)", p, i+1, e.PrevSHA256, i, want)
		}
		want = lineHash(line)
	}
	return nil
}
