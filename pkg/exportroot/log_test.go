package exportroot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func testEntry(i int) LogEntry {
	results := []string{ResultImported, ResultAlreadyActive, ResultRefused, ResultFailed}
	return LogEntry{
		Time:           time.Date(2025, 1, 1, i, 0, 0, 0, time.UTC),
		ExportID:       fmt.Sprintf("202501%02dT000000Z", i+1),
		Sequence:       int64(i + 1),
		ManifestSHA256: strings.Repeat(fmt.Sprintf("%x", i%16), 64),
		SignerKeyIDs:   []string{"key-" + fmt.Sprint(i)},
		User:           "operator",
		Host:           "gw1",
		Command:        CommandImport,
		Result:         results[i%len(results)],
		Reason:         fmt.Sprintf("attempt <%d> & more", i),
		AllowDowngrade: i == 2,
		PrevSHA256:     "caller value is replaced",
	}
}

// writeLog appends n test entries to r's log.
func writeLog(t *testing.T, r *Root, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := r.AppendLog(testEntry(i)); err != nil {
			t.Fatalf("AppendLog %d: %v", i, err)
		}
	}
}

func logLines(t *testing.T, r *Root) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.StateDir(), LogFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'})
}

func writeLines(t *testing.T, r *Root, lines [][]byte) {
	t.Helper()
	data := append(bytes.Join(lines, []byte{'\n'}), '\n')
	if err := os.WriteFile(filepath.Join(r.StateDir(), LogFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAndReadLog(t *testing.T) {
	r := openRoot(t)
	if entries, err := r.ReadLog(); err != nil || len(entries) != 0 {
		t.Fatalf("ReadLog without a log = %v, %v", entries, err)
	}
	if err := r.VerifyLog(); err != nil {
		t.Fatalf("VerifyLog without a log = %v", err)
	}
	writeLog(t, r, 4)

	entries, err := r.ReadLog()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("ReadLog returned %d entries", len(entries))
	}
	lines := logLines(t, r)
	for i, e := range entries {
		want := testEntry(i)
		if i == 0 {
			want.PrevSHA256 = ZeroSHA256
		} else {
			sum := sha256.Sum256(lines[i-1])
			want.PrevSHA256 = hex.EncodeToString(sum[:])
		}
		if fmt.Sprint(e) != fmt.Sprint(want) || !e.Time.Equal(want.Time) {
			t.Errorf("entry %d = %+v\nwant %+v", i, e, want)
		}
	}
	if !bytes.Contains(lines[0], []byte(`"reason":"attempt <0> & more"`)) {
		t.Errorf("line 1 escapes HTML characters: %s", lines[0])
	}
	for _, key := range []string{"time", "exportId", "sequence", "manifestSha256", "signerKeyIds", "user", "host",
		"command", "result", "reason", "allowDowngrade", "replacedTrustRoots", "prevSha256"} {
		if !bytes.Contains(lines[0], []byte(`"`+key+`":`)) {
			t.Errorf("line 1 lacks %q: %s", key, lines[0])
		}
	}
	if err := r.VerifyLog(); err != nil {
		t.Errorf("VerifyLog: %v", err)
	}
}

func TestAppendLogNilSignersIsArray(t *testing.T) {
	r := openRoot(t)
	if err := r.AppendLog(LogEntry{Result: ResultFailed, Command: CommandSync}); err != nil {
		t.Fatal(err)
	}
	if line := logLines(t, r)[0]; !bytes.Contains(line, []byte(`"signerKeyIds":[]`)) {
		t.Errorf("line = %s, want signerKeyIds as []", line)
	}
}

func TestVerifyLogDetectsTampering(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		wantLine int
	}{
		{"edited line", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(`"result":"already-active"`), []byte(`"result":"imported"`), 1)
			return l
		}, 3},
		{"edited first line", func(l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte(`"user":"operator"`), []byte(`"user":"mallory"`), 1)
			return l
		}, 2},
		{"deleted middle line", func(l [][]byte) [][]byte {
			return append(l[:2:2], l[3:]...)
		}, 3},
		{"deleted first line", func(l [][]byte) [][]byte { return l[1:] }, 1},
		{"reordered lines", func(l [][]byte) [][]byte {
			l[2], l[3] = l[3], l[2]
			return l
		}, 3},
		{"inserted line", func(l [][]byte) [][]byte {
			extra := []byte(`{"result":"imported","prevSha256":"` + ZeroSHA256 + `"}`)
			return append(l[:2:2], append([][]byte{extra}, l[2:]...)...)
		}, 3},
		{"garbage line", func(l [][]byte) [][]byte {
			l[3] = []byte("not json")
			return l
		}, 4},
		{"edited prevSha256", func(l [][]byte) [][]byte {
			l[4] = bytes.Replace(l[4], []byte(`"prevSha256":"`), []byte(`"prevSha256":"0`), 1)
			return l
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			writeLog(t, r, 5)
			writeLines(t, r, tt.tamper(logLines(t, r)))
			err := r.VerifyLog()
			if err == nil {
				t.Fatal("VerifyLog accepted a tampered log")
			}
			if !errors.Is(err, failure.ErrVerification) || failure.Code(err) != failure.ExitVerification {
				t.Errorf("err = %v, want failure.ErrVerification", err)
			}
			want := fmt.Sprintf("line %d:", tt.wantLine)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to name %q", err, want)
			}
			if !strings.Contains(err.Error(), filepath.Join(r.StateDir(), LogFile)) {
				t.Errorf("err = %v, want it to name the log file", err)
			}
		})
	}
}

// TestAppendLogAfterTornWrite checks that an append after a crash in the
// middle of a previous append keeps the chain valid.
func TestAppendLogAfterTornWrite(t *testing.T) {
	tests := []struct {
		name        string
		tear        func(t *testing.T, p string)
		wantEntries int
	}{
		{"partial line dropped", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(`{"time":"2025-01-0`); err != nil {
				t.Fatal(err)
			}
		}, 4},
		{"complete line without newline kept", func(t *testing.T, p string) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, bytes.TrimSuffix(data, []byte{'\n'}), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			writeLog(t, r, 3)
			tt.tear(t, filepath.Join(r.StateDir(), LogFile))
			if err := r.AppendLog(testEntry(3)); err != nil {
				t.Fatal(err)
			}
			if err := r.VerifyLog(); err != nil {
				t.Errorf("VerifyLog after repair: %v", err)
			}
			entries, err := r.ReadLog()
			if err != nil || len(entries) != tt.wantEntries {
				t.Errorf("ReadLog = %d entries, %v; want %d", len(entries), err, tt.wantEntries)
			}
		})
	}
}

func TestAppendLogLongLines(t *testing.T) {
	r := openRoot(t)
	for i := 0; i < 3; i++ {
		e := testEntry(i)
		e.Reason = strings.Repeat("x", 10000+i)
		if err := r.AppendLog(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.VerifyLog(); err != nil {
		t.Errorf("VerifyLog: %v", err)
	}
}

func TestReadLogNamesBadLine(t *testing.T) {
	r := openRoot(t)
	writeLog(t, r, 2)
	lines := logLines(t, r)
	writeLines(t, r, append(lines, []byte("{")))
	_, err := r.ReadLog()
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), LogFile) {
		t.Errorf("ReadLog = %v, want an error naming line 3 of %s", err, LogFile)
	}
}
