package smoke

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRunLocal(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "kept")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	report, lm, err := RunLocal(ctx, LocalOptions{Dir: dir, Now: func() time.Time { return now }, IndexBudget: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !report.Passed() {
		for _, c := range report.Failures() {
			t.Errorf("%s: %s", c.ID(), c.Detail)
		}
		t.Fatal("self-contained smoke failed")
	}
	want := map[string]bool{NameSetupExport: false, NameSetupVerify: false, NameSetupImport: false, NameSetupServe: false,
		"auth/primary": false, "auth/community": false, "rate-limit": false, "jws/primary": false, "healthz": false, "readyz": false}
	for _, c := range report.Checks {
		if _, ok := want[c.ID()]; ok {
			if c.Status != StatusPass {
				t.Errorf("%s: %s (%s)", c.ID(), c.Status, c.Detail)
			}
			want[c.ID()] = true
		}
	}
	for id, seen := range want {
		if !seen {
			t.Errorf("no %s row in the report", id)
		}
	}
	for _, p := range []string{lm.Key, lm.PublicKey, filepath.Join(lm.Bundle, "mirror.json"), filepath.Join(lm.ExportRoot, "latest"), lm.Htpasswd} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("kept %s: %v", p, err)
		}
	}
	if lm.Password == "" || lm.URL == "" {
		t.Errorf("kept mirror lacks password or URL: %+v", lm)
	}
}

func TestRunLocalRemovesEverything(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	report, _, err := RunLocal(context.Background(), LocalOptions{Now: func() time.Time { return now }, IndexBudget: 3})
	if err != nil || !report.Passed() {
		t.Fatalf("run: %v, passed %v", err, report != nil && report.Passed())
	}
	left, _ := os.ReadDir(tmp)
	if len(left) != 0 {
		t.Fatalf("left behind in TMPDIR: %v", left)
	}
}
