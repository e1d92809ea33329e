package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

func sortDurations(d []time.Duration) { slices.Sort(d) }

// report prints the results as a Markdown table followed by the details.
func report(w io.Writer, results []*result) {
	fmt.Fprintln(w, "| scenario | load | normal client p50 / p99 / max | serve max RSS | result |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, r := range results {
		verdict := "pass"
		if r.failed() {
			verdict = "**FAIL**"
		}
		lat := "-"
		if r.probe.n > 0 {
			lat = fmt.Sprintf("%s / %s / %s (%d req)", ms(r.probe.p50), ms(r.probe.p99), ms(r.probe.max), r.probe.n)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d MiB | %s |\n", r.name, r.load, lat, r.maxRSS>>20, verdict)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- **%s**: %s\n", r.name, r.details)
		for _, c := range r.checks {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(c, "\n", " "))
		}
	}
}
