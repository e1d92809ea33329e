//go:build unix

package archive

import (
	"syscall"
	"testing"
)

// reportRSS reports the process's peak resident set size so far.
func reportRSS(b *testing.B) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}
