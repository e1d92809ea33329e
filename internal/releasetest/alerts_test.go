package releasetest

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// serveMetrics returns the metric names pkg/serve registers, read from its
// source, with the series names a histogram adds.
func serveMetrics(t *testing.T) []string {
	t.Helper()
	src := string(readFile(t, "pkg", "serve", "metrics.go"))
	var names []string
	for _, m := range regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(stellaops_[a-z0-9_]+)"`).FindAllStringSubmatch(src, -1) {
		names = append(names, m[1])
		if strings.HasSuffix(m[1], "_seconds") {
			names = append(names, m[1]+"_bucket", m[1]+"_sum", m[1]+"_count")
		}
	}
	if len(names) == 0 {
		t.Fatal("no metric names found in pkg/serve/metrics.go")
	}
	return names
}

// TestPrometheusAlerts checks deploy/prometheus/alerts.yaml: well-formed
// rules that use only metrics serve exports, and a row in the operations
// guide for every alert.
func TestPrometheusAlerts(t *testing.T) {
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, "deploy", "prometheus", "alerts.yaml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	metrics := serveMetrics(t)
	guide, err := os.ReadFile(repoPath("docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	metricRe := regexp.MustCompile(`stellaops_[a-z0-9_]+`)
	used := map[string]bool{}
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.For == "" {
				t.Errorf("group %s: rule %q lacks alert, expr or for", g.Name, r.Alert)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			for _, m := range metricRe.FindAllString(r.Expr, -1) {
				used[m] = true
				if !slices.Contains(metrics, m) {
					t.Errorf("%s: metric %s is not exported by serve (have %v)", r.Alert, m, metrics)
				}
			}
			if !strings.Contains(string(guide), "`"+r.Alert+"`") {
				t.Errorf("%s is not explained in docs/operations.md", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("alerts.yaml has no rules")
	}
	for _, want := range []string{"stellaops_mirror_active_export_age_seconds", "stellaops_mirror_http_rate_limited_total"} {
		if !used[want] {
			t.Errorf("no alert on %s", want)
		}
	}
}
