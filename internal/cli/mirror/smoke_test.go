package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/smoke"
	"github.com/stellaops/stellaops-cli/pkg/smoke/smoketest"
)

const (
	smokeUser     = "smoke"
	smokePassword = "hunter2 hunter2"
)

// smokeNow is one hour after the fake mirror's export.
var smokeNow = smoketest.DefaultGeneratedAt.Add(time.Hour)

type smokeRun struct {
	stdout, stderr string
	err            error
	code           int
}

type smokeEnv struct {
	env    map[string]string
	stdin  string
	json   bool
	noHook bool // leave the JWS verifier hook unset
}

func runSmokeCmd(t *testing.T, e smokeEnv, args ...string) smokeRun {
	t.Helper()
	var out, errb bytes.Buffer
	io := iostreams.Test(strings.NewReader(e.stdin), &out, &errb)
	io.Getenv = func(k string) string { return e.env[k] }
	if e.json {
		io.Format = iostreams.FormatJSON
	}
	cmd := newCmdSmoke(io, func(o *SmokeOptions) {
		o.Now = func() time.Time { return smokeNow }
		if e.noHook {
			o.jwsVerifierFor = nil
		}
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return smokeRun{stdout: out.String(), stderr: errb.String(), err: err, code: failure.Code(err)}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSmokeMirror(f smoketest.Faults) *smoketest.Mirror {
	return smoketest.New(smoketest.Config{User: smokeUser, Password: smokePassword, IndexBudget: 10, Faults: f})
}

var passwordEnv = map[string]string{SmokePasswordEnv: smokePassword}

func tsvRows(t *testing.T, stdout string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if lines[0] != "CHECK\tSTATUS\tDETAIL\tDURATION" {
		t.Fatalf("header %q", lines[0])
	}
	var rows [][]string
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			t.Fatalf("row %q has %d fields", l, len(f))
		}
		rows = append(rows, f)
	}
	return rows
}

func TestSmokeCorrectMirror(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{})
	defer m.Close()
	key := writeFile(t, "cosign.pub", m.PublicKeyPEM())
	r := runSmokeCmd(t, smokeEnv{env: passwordEnv},
		"--url", m.URL, "--user", smokeUser, "--key", key, "--check-rate-limit", "--max-age", "1d")
	if r.err != nil {
		t.Fatalf("err %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	rows := tsvRows(t, r.stdout)
	if len(rows) != 15 {
		t.Fatalf("%d rows:\n%s", len(rows), r.stdout)
	}
	for _, row := range rows {
		if row[1] != "pass" {
			t.Errorf("%s: %s %s", row[0], row[1], row[2])
		}
	}
	if rows[0][0] != "index" || rows[5][0] != "jws/primary" || !strings.Contains(rows[5][2], "signed by key "+m.KeyID()) {
		t.Errorf("rows %q %q", rows[0], rows[5])
	}
	wantErr := "mirror smoke of " + m.URL + "/ at 2025-03-01T13:00:00Z, export " + m.ExportID + "\n" +
		"15 passed, 0 failed, 0 skipped\n"
	if r.stderr != wantErr {
		t.Errorf("stderr %q, want %q", r.stderr, wantErr)
	}
}

func TestSmokeFailedCheckExit2WithJUnit(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{JWSOtherKey: true})
	defer m.Close()
	key := writeFile(t, "cosign.pub", m.PublicKeyPEM())
	dir := t.TempDir()
	junit := filepath.Join(dir, "smoke.xml")
	r := runSmokeCmd(t, smokeEnv{env: passwordEnv},
		"--url", m.URL, "--user", smokeUser, "--trust-roots", key, "--junit", junit)
	if r.code != failure.ExitVerification || !errors.Is(r.err, failure.ErrVerification) {
		t.Fatalf("code %d err %v, want 2", r.code, r.err)
	}
	if want := "2 of 15 checks failed: jws/primary, jws/secondary"; !strings.Contains(r.err.Error(), want) {
		t.Errorf("err %q does not contain %q", r.err, want)
	}
	var failed []string
	for _, row := range tsvRows(t, r.stdout) {
		if row[1] == "fail" {
			failed = append(failed, row[0])
			if !strings.Contains(row[2], "signed by a key that is not trusted") {
				t.Errorf("%s detail %q", row[0], row[2])
			}
		}
	}
	if strings.Join(failed, " ") != "jws/primary jws/secondary" {
		t.Errorf("failed rows %v", failed)
	}
	if !strings.HasSuffix(r.stderr, "11 passed, 2 failed, 2 skipped\n") {
		t.Errorf("stderr %q", r.stderr)
	}

	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Skipped  int `xml:"skipped,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("JUnit: %v\n%s", err, data)
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Tests != 15 || doc.Suites[0].Failures != 2 || doc.Suites[0].Skipped != 2 {
		t.Fatalf("JUnit suites %+v", doc.Suites)
	}
	var fails, skips int
	for _, c := range doc.Suites[0].Cases {
		if c.Failure != nil {
			fails++
		}
		if c.Skipped != nil {
			skips++
		}
	}
	if fails != 2 || skips != 2 {
		t.Errorf("JUnit cases: %d failures, %d skipped", fails, skips)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left next to the JUnit file: %v", entries)
	}
}

func TestSmokeJSON(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{NoETag: true})
	defer m.Close()
	r := runSmokeCmd(t, smokeEnv{env: passwordEnv, json: true}, "--url", m.URL, "--user", smokeUser)
	if r.code != failure.ExitVerification {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
	var doc struct {
		SchemaVersion int    `json:"schemaVersion"`
		URL           string `json:"url"`
		ExportID      string `json:"exportId"`
		StartedAt     string `json:"startedAt"`
		Duration      string `json:"duration"`
		Passed        int    `json:"passed"`
		Failed        int    `json:"failed"`
		Skipped       int    `json:"skipped"`
		Checks        []struct {
			Name   string `json:"name"`
			Domain string `json:"domain"`
			Status string `json:"status"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if doc.SchemaVersion != 1 || doc.URL != m.URL+"/" || doc.ExportID != m.ExportID ||
		doc.StartedAt != "2025-03-01T13:00:00Z" || doc.Duration != "0s" ||
		doc.Passed != 9 || doc.Failed != 2 || doc.Skipped != 4 || len(doc.Checks) != 15 {
		t.Errorf("document %+v", doc)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestSmokeUnreachableExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	junit := filepath.Join(t.TempDir(), "smoke.xml")
	r := runSmokeCmd(t, smokeEnv{}, "--url", "http://"+addr, "--junit", junit)
	if r.code != failure.ExitError || !errors.Is(r.err, smoke.ErrUnreachable) {
		t.Fatalf("code %d err %v, want 1", r.code, r.err)
	}
	if failure.HintOf(r.err) == "" {
		t.Errorf("no hint on %v", r.err)
	}
	rows := tsvRows(t, r.stdout)
	if len(rows) != 1 || rows[0][0] != "index" || rows[0][1] != "fail" || !strings.Contains(rows[0][2], "connection refused") {
		t.Errorf("rows %q", rows)
	}
	if _, err := os.Stat(junit); err != nil {
		t.Errorf("no JUnit file for an unreachable mirror: %v", err)
	}
}

func TestSmokeTLS(t *testing.T) {
	m := smoketest.NewTLS(smoketest.Config{Token: "tok"})
	defer m.Close()
	ca := writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Certificate().Raw}))
	env := map[string]string{SmokeTokenEnv: "tok"}

	r := runSmokeCmd(t, smokeEnv{env: env}, "--url", m.URL, "--ca-file", ca)
	if r.err != nil {
		t.Fatalf("with --ca-file: %v\n%s", r.err, r.stdout)
	}
	r = runSmokeCmd(t, smokeEnv{env: env}, "--url", m.URL)
	if r.code != failure.ExitError || !strings.Contains(r.stdout, "certificate") {
		t.Fatalf("without --ca-file: code %d err %v\n%s", r.code, r.err, r.stdout)
	}
}

func TestSmokeCredentials(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{})
	defer m.Close()

	r := runSmokeCmd(t, smokeEnv{stdin: smokePassword + "\n"}, "--url", m.URL, "--user", smokeUser, "--password-stdin")
	if r.err != nil {
		t.Fatalf("--password-stdin: %v\n%s", r.err, r.stdout)
	}
	// --password-stdin wins over the environment.
	r = runSmokeCmd(t, smokeEnv{stdin: "wrong\n", env: passwordEnv}, "--url", m.URL, "--user", smokeUser, "--password-stdin")
	if r.code != failure.ExitVerification || !strings.Contains(r.stdout, "the credentials were refused") {
		t.Fatalf("wrong password: code %d\n%s", r.code, r.stdout)
	}
	// No credentials at all: the index answers 401.
	r = runSmokeCmd(t, smokeEnv{}, "--url", m.URL)
	if r.code != failure.ExitVerification || !strings.Contains(r.stdout, "no credentials were given") {
		t.Fatalf("no credentials: code %d\n%s", r.code, r.stdout)
	}
}

func TestSmokeUsageErrors(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{})
	defer m.Close()
	badPEM := writeFile(t, "bad.pem", []byte("not a key\n"))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name string
		e    smokeEnv
		args []string
	}{
		{"user without password", smokeEnv{}, []string{"--user", smokeUser}},
		{"password-stdin without user", smokeEnv{stdin: "x\n"}, []string{"--password-stdin"}},
		{"empty password on stdin", smokeEnv{stdin: "\n"}, []string{"--user", smokeUser, "--password-stdin"}},
		{"unreadable key", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--key", missing}},
		{"malformed trust roots", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--trust-roots", badPEM}},
		{"unreadable CA file", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--ca-file", missing}},
		{"CA file without certificates", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--ca-file", badPEM}},
		{"bad max-age", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--max-age", "soon"}},
		{"zero timeout", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--timeout", "0s"}},
		{"bad domain", smokeEnv{env: passwordEnv}, []string{"--user", smokeUser, "--domain", "Primary"}},
		{"bad URL", smokeEnv{}, []string{"--url", "mirror.internal:8443"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.name != "bad URL" {
				args = append([]string{"--url", m.URL}, args...)
			}
			r := runSmokeCmd(t, tc.e, args...)
			if r.code != failure.ExitUsage {
				t.Fatalf("code %d err %v, want 4", r.code, r.err)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
	for _, args := range [][]string{
		{"--key", badPEM, "--trust-roots", badPEM},
		{"--user", smokeUser, "--token", "t"},
	} {
		if r := runSmokeCmd(t, smokeEnv{env: passwordEnv}, append([]string{"--url", m.URL}, args...)...); r.err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestSmokeKeyWithoutVerifierHook(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{})
	defer m.Close()
	key := writeFile(t, "cosign.pub", m.PublicKeyPEM())
	r := runSmokeCmd(t, smokeEnv{env: passwordEnv, noHook: true}, "--url", m.URL, "--user", smokeUser, "--key", key)
	if r.err == nil || !strings.Contains(r.err.Error(), "not available") || r.stdout != "" {
		t.Fatalf("err %v stdout %q", r.err, r.stdout)
	}
}

func TestWrapWords(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a b c", "a b c"},
		{"aaa bbb ccc ddd", "aaa bbb\nccc ddd"},
		{"x 0123456789abcdef y", "x\n0123456789abcdef\ny"},
	} {
		if got := wrapWords(tc.in, 8); got != tc.want {
			t.Errorf("wrapWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSmokeStyledTableWraps(t *testing.T) {
	m := newSmokeMirror(smoketest.Faults{ManifestCacheControl: "no-cache"})
	defer m.Close()
	var out, errb bytes.Buffer
	io := iostreams.Test(nil, &out, &errb)
	io.OutTTY = true
	io.Getenv = func(k string) string { return passwordEnv[k] }
	cmd := newCmdSmoke(io, func(o *SmokeOptions) { o.Now = func() time.Time { return smokeNow } })
	cmd.SetArgs([]string{"--url", m.URL, "--user", smokeUser})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.ExecuteContext(context.Background()); failure.Code(err) != failure.ExitVerification {
		t.Fatalf("err %v", err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > 180 {
			t.Errorf("line of %d runes: %s", n, line)
		}
	}
	if !strings.Contains(out.String(), "manifest/primary") || !strings.Contains(out.String(), "╭") {
		t.Errorf("no styled table:\n%s", out.String())
	}
}
