//go:build !unix

package archive

import "testing"

// reportRSS is a no-op where getrusage is unavailable.
func reportRSS(*testing.B) {}
