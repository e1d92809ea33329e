package smoke

import (
	"encoding/xml"
	"fmt"
	"io"
	"time"
)

// JUnitSuiteName is the name of the test suite in JUnit files.
const JUnitSuiteName = "stellaops-cli mirror smoke"

// JUnitClassName is the classname of every test case in JUnit files.
const JUnitClassName = "stellaops.mirror.smoke"

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one <testsuite> inside
// <testsuites>, one <testcase> per check named by Check.ID, a <failure>
// for each failed check and a <skipped/> for each skipped one. The URL,
// export id and start time are suite properties; every detail is also in
// the test case's <system-out>.
func (r *Report) WriteJUnit(w io.Writer) error {
	n := r.Counts()
	suite := junitSuite{
		Name:      JUnitSuiteName,
		Tests:     len(r.Checks),
		Failures:  n.Failed,
		Skipped:   n.Skipped,
		Time:      seconds(r.Duration),
		Timestamp: r.StartedAt.UTC().Format(time.RFC3339),
		Properties: []junitProperty{
			{Name: "url", Value: r.URL},
			{Name: "startedAt", Value: r.StartedAt.UTC().Format(time.RFC3339)},
		},
	}
	if r.ExportID != "" {
		suite.Properties = append(suite.Properties, junitProperty{Name: "exportId", Value: r.ExportID})
	}
	if !r.GeneratedAt.IsZero() {
		suite.Properties = append(suite.Properties,
			junitProperty{Name: "generatedAt", Value: r.GeneratedAt.UTC().Format(time.RFC3339)})
	}
	for _, c := range r.Checks {
		tc := junitCase{Name: c.ID(), ClassName: JUnitClassName, Time: seconds(c.Duration)}
		out := fmt.Sprintf("%s: %s", c.Status, c.Detail)
		if c.URL != "" {
			out += "\nurl: " + c.URL
		}
		tc.SystemOut = out
		switch c.Status {
		case StatusFail:
			tc.Failure = &junitFailure{Message: c.Detail, Type: c.Name, Text: out}
		case StatusSkip:
			tc.Skipped = &junitSkipped{Message: c.Detail}
		}
		suite.Cases = append(suite.Cases, tc)
	}
	doc := junitSuites{
		Name: JUnitSuiteName, Tests: suite.Tests, Failures: suite.Failures,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
