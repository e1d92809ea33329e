package exportroot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadStatusWithoutFile(t *testing.T) {
	r := openRoot(t)
	s, err := r.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	want := Status{State: StateIdle, Errors: []string{}, Warnings: []string{}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ReadStatus = %+v, want %+v", s, want)
	}
}

func TestWriteReadStatus(t *testing.T) {
	started := fixedNow
	finished := fixedNow.Add(90)
	tests := []struct {
		name     string
		in       Status
		wantJSON []string
	}{
		{
			name:     "running with nil slices",
			in:       Status{State: StateRunning, StartedAt: &started},
			wantJSON: []string{`"errors":[]`, `"warnings":[]`, `"finishedAt":null`, `"startedAt":"2025-03-01T12:00:00Z"`},
		},
		{
			name: "failed",
			in: Status{State: StateFailed, ExportsImported: 0, TotalBytes: 1234,
				Errors: []string{"digest mismatch: mirror/index.json"}, Warnings: []string{"--verify-dsse=false"},
				StartedAt: &started, FinishedAt: &finished},
			wantJSON: []string{`"state":"failed"`, `"totalBytes":1234`, `"errors":["digest mismatch: mirror/index.json"]`},
		},
		{
			name:     "succeeded",
			in:       Status{State: StateSucceeded, ExportsImported: 1, TotalBytes: 10, StartedAt: &started, FinishedAt: &finished},
			wantJSON: []string{`"exportsImported":1`},
		},
		{
			name:     "idle",
			in:       Status{State: StateIdle},
			wantJSON: []string{`"startedAt":null`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			if err := r.WriteStatus(tt.in); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(r.StateDir(), StatusFile))
			if err != nil {
				t.Fatal(err)
			}
			var compact map[string]json.RawMessage
			if err := json.Unmarshal(data, &compact); err != nil {
				t.Fatal(err)
			}
			if len(compact) != 7 {
				t.Errorf("status has %d keys, want 7: %s", len(compact), data)
			}
			flat, _ := json.Marshal(tt.in)
			for _, w := range tt.wantJSON {
				if !strings.Contains(string(flat), w) {
					t.Errorf("JSON %s lacks %s", flat, w)
				}
			}
			got, err := r.ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			want := tt.in
			if want.Errors == nil {
				want.Errors = []string{}
			}
			if want.Warnings == nil {
				want.Warnings = []string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReadStatus = %+v, want %+v", got, want)
			}
		})
	}
}

func TestStatusRefusesUnknownState(t *testing.T) {
	r := openRoot(t)
	if err := r.WriteStatus(Status{State: "done"}); err == nil || !strings.Contains(err.Error(), StatusFile) {
		t.Errorf("WriteStatus(done) = %v, want an error naming %s", err, StatusFile)
	}
	p := filepath.Join(r.StateDir(), StatusFile)
	for _, content := range []string{`{"state":"done"}`, `{`} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadStatus(); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("ReadStatus of %s = %v, want an error naming %s", content, err, p)
		}
	}
}
