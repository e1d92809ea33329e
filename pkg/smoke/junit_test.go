package smoke_test

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/smoke"
	"github.com/stellaops/stellaops-cli/pkg/smoke/smoketest"
)

// JUnitDoc is the part of a JUnit file CI systems read.
type JUnitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Skipped    int    `xml:"skipped,attr"`
		Timestamp  string `xml:"timestamp,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			ClassName string `xml:"classname,attr"`
			Time      string `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// ParseJUnit parses b strictly, token by token first, then into JUnitDoc.
func ParseJUnit(t *testing.T, b []byte) JUnitDoc {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
	}
	var doc JUnitDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse JUnit: %v", err)
	}
	return doc
}

func TestJUnit(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{TamperVEX: true}))
	defer m.Close()
	opts := fullOptions(m)
	opts.VerifyJWS = nil
	r := run(t, m, opts)
	var buf bytes.Buffer
	if err := r.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration: %.60s", buf.String())
	}
	doc := ParseJUnit(t, buf.Bytes())
	if len(doc.Suites) != 1 {
		t.Fatalf("%d suites, want 1", len(doc.Suites))
	}
	s := doc.Suites[0]
	if doc.Tests != 15 || s.Tests != 15 || len(s.Cases) != 15 || s.Failures != 2 || s.Skipped != 2 ||
		doc.Failures != 2 || doc.Skipped != 2 {
		t.Errorf("counts: doc %d/%d/%d suite %d/%d/%d cases %d", doc.Tests, doc.Failures, doc.Skipped,
			s.Tests, s.Failures, s.Skipped, len(s.Cases))
	}
	if s.Name != smoke.JUnitSuiteName || s.Timestamp != genAt.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("suite %q at %q", s.Name, s.Timestamp)
	}
	props := map[string]string{}
	for _, p := range s.Properties {
		props[p.Name] = p.Value
	}
	if props["url"] != m.URL+"/" || props["exportId"] != m.ExportID {
		t.Errorf("properties %v", props)
	}
	for i, c := range s.Cases {
		want := r.Checks[i]
		if c.Name != want.ID() || c.ClassName != smoke.JUnitClassName || c.Time != "0.000" {
			t.Errorf("case %d: %q %q %q, want %q", i, c.Name, c.ClassName, c.Time, want.ID())
		}
		switch want.Status {
		case smoke.StatusFail:
			if c.Failure == nil || c.Failure.Message != want.Detail || c.Skipped != nil {
				t.Errorf("%s: failure %+v skipped %+v", c.Name, c.Failure, c.Skipped)
			}
		case smoke.StatusSkip:
			if c.Skipped == nil || c.Failure != nil || c.Skipped.Message != want.Detail {
				t.Errorf("%s: failure %+v skipped %+v", c.Name, c.Failure, c.Skipped)
			}
		default:
			if c.Skipped != nil || c.Failure != nil {
				t.Errorf("%s: failure %+v skipped %+v", c.Name, c.Failure, c.Skipped)
			}
		}
		if !strings.Contains(c.SystemOut, want.Detail) {
			t.Errorf("%s: system-out %q", c.Name, c.SystemOut)
		}
	}
	if fail := s.Cases[7]; fail.Name != "excititor/primary" || !strings.Contains(fail.Failure.Message, "does not match") {
		t.Errorf("case 7: %+v", fail)
	}
}
