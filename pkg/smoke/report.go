package smoke

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Status is the outcome of one check.
type Status string

// Outcomes of a check. Only StatusFail makes a run fail; StatusWarn marks
// something an operator should look at that does not break clients.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
	StatusWarn Status = "warn"
)

// Check names, numbered as in the runbook (see the package documentation).
const (
	NameIndex     = "index"      // 1
	NameManifest  = "manifest"   // 2, per domain
	NameBundle    = "bundle"     // 3, per domain
	NameJWS       = "jws"        // 4, per domain
	NameExcititor = "excititor"  // 5, per domain
	NameAuth      = "auth"       // 6, per domain
	NameRateLimit = "rate-limit" // 7
	NameMaxAge    = "max-age"    // 8
	NameHealthz   = "healthz"    // 9
	NameReadyz    = "readyz"     // 9
)

// Check is one row of a report.
type Check struct {
	// Number is the check's number in the runbook (1 to 9).
	Number int
	// Name is one of the Name constants.
	Name string
	// Domain is the domain id for per-domain checks, empty otherwise.
	Domain string
	// Status is the outcome.
	Status Status
	// Detail explains the outcome on one line: for failures the request,
	// the server's status code and the header or digest that was wrong,
	// with the expected and the actual value.
	Detail string
	// URL is the request that decided the outcome, when there was one.
	URL string
	// HTTPStatus is the status code of that request, 0 when there was none.
	HTTPStatus int
	// Duration is how long the check took.
	Duration time.Duration
}

// ID names the check in tables and JUnit files: the name, and for
// per-domain checks "/" and the domain id, e.g. "manifest/primary".
func (c Check) ID() string {
	if c.Domain == "" {
		return c.Name
	}
	return c.Name + "/" + c.Domain
}

// MarshalJSON writes the check with its duration both as a Go duration
// string and in whole milliseconds.
func (c Check) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Number     int    `json:"number"`
		Name       string `json:"name"`
		Domain     string `json:"domain,omitempty"`
		Status     Status `json:"status"`
		Detail     string `json:"detail"`
		URL        string `json:"url,omitempty"`
		HTTPStatus int    `json:"httpStatus,omitempty"`
		Duration   string `json:"duration"`
		DurationMS int64  `json:"durationMs"`
	}{c.Number, c.Name, c.Domain, c.Status, c.Detail, c.URL, c.HTTPStatus,
		FormatDuration(c.Duration), c.Duration.Milliseconds()})
}

// Report is the result of a smoke run.
type Report struct {
	// SchemaVersion of the JSON form (1).
	SchemaVersion int
	// URL is the mirror's base URL as checked.
	URL string
	// ExportID and GeneratedAt come from index.json, when it could be read.
	ExportID    string
	GeneratedAt time.Time
	// StartedAt is when the run began (Options.Now) and Duration how long it took.
	StartedAt time.Time
	Duration  time.Duration
	// Checks in runbook order; per-domain checks in the order of the domains.
	Checks []Check
}

// Counts tallies the checks of a report by status.
type Counts struct {
	Passed, Failed, Skipped, Warned int
}

// Counts tallies the report's checks.
func (r *Report) Counts() Counts {
	var n Counts
	for _, c := range r.Checks {
		switch c.Status {
		case StatusPass:
			n.Passed++
		case StatusFail:
			n.Failed++
		case StatusSkip:
			n.Skipped++
		case StatusWarn:
			n.Warned++
		}
	}
	return n
}

// Passed reports whether no check failed. Skipped checks and warnings do
// not make a run fail.
func (r *Report) Passed() bool { return r.Counts().Failed == 0 }

// Failures returns the failed checks.
func (r *Report) Failures() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFail {
			out = append(out, c)
		}
	}
	return out
}

// Summary is the closing line of a run: "N passed, N failed, N skipped",
// followed by ", N warnings" when there are any.
func (r *Report) Summary() string {
	n := r.Counts()
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", n.Passed, n.Failed, n.Skipped)
	switch n.Warned {
	case 0:
	case 1:
		s += ", 1 warning"
	default:
		s += fmt.Sprintf(", %d warnings", n.Warned)
	}
	return s
}

// Err returns nil when the run passed, else an error wrapping
// failure.ErrVerification (exit status 2) that names the failed checks.
func (r *Report) Err() error {
	fails := r.Failures()
	if len(fails) == 0 {
		return nil
	}
	ids := make([]string, len(fails))
	for i, c := range fails {
		ids[i] = c.ID()
	}
	return failure.Verificationf("mirror smoke of %s: %d of %d checks failed: %s",
		r.URL, len(fails), len(r.Checks), strings.Join(ids, ", "))
}

// MarshalJSON writes the report as the "-o json" document:
// {schemaVersion, url, exportId, generatedAt, startedAt, duration,
// durationMs, checks, passed, failed, skipped, warnings}.
func (r Report) MarshalJSON() ([]byte, error) {
	n := r.Counts()
	var generated *time.Time
	if !r.GeneratedAt.IsZero() {
		g := r.GeneratedAt.UTC()
		generated = &g
	}
	checks := r.Checks
	if checks == nil {
		checks = []Check{}
	}
	return json.Marshal(struct {
		SchemaVersion int        `json:"schemaVersion"`
		URL           string     `json:"url"`
		ExportID      string     `json:"exportId,omitempty"`
		GeneratedAt   *time.Time `json:"generatedAt,omitempty"`
		StartedAt     time.Time  `json:"startedAt"`
		Duration      string     `json:"duration"`
		DurationMS    int64      `json:"durationMs"`
		Checks        []Check    `json:"checks"`
		Passed        int        `json:"passed"`
		Failed        int        `json:"failed"`
		Skipped       int        `json:"skipped"`
		Warnings      int        `json:"warnings"`
	}{r.SchemaVersion, r.URL, r.ExportID, generated, r.StartedAt.UTC(),
		FormatDuration(r.Duration), r.Duration.Milliseconds(), checks,
		n.Passed, n.Failed, n.Skipped, n.Warned})
}

// FormatDuration renders d for people: rounded to the millisecond above one
// millisecond, to the microsecond below.
func FormatDuration(d time.Duration) string {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
