package serve

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// FuzzParseHtpasswd feeds arbitrary files to the htpasswd parser: it must
// not panic, must refuse with a usage error (exit 4), and what it accepts
// holds only named users with well-formed bcrypt hashes, each once.
func FuzzParseHtpasswd(f *testing.F) {
	const hash = "$2a$04$NiICzptfU9n.V9b1ZjoPr.2OXbRXtq6F6kDCbYzPBx6Vxq8bNdO/S"
	for _, s := range testutil.CorpusSeeds(f, "../..", "htpasswd/*.htpasswd", 1<<20) {
		f.Add(s)
	}
	f.Add([]byte("alice:" + hash + "\nbob:" + hash + "\r\n# comment\n\n"))
	f.Add([]byte("alice:" + hash + "\nalice:" + hash + "\n"))
	f.Add([]byte("a:b:" + hash + "\n"))
	f.Add([]byte(" alice :" + hash + "\n"))
	f.Add([]byte("al\x00ice:" + hash + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHtpasswd("fuzz", data)
		if err != nil {
			if failure.Code(err) != failure.ExitUsage {
				t.Fatalf("refusal with exit %d: %v", failure.Code(err), err)
			}
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(h.users) > lines {
			t.Fatalf("%d users from %d lines", len(h.users), lines)
		}
		for user, hash := range h.users {
			if user == "" || strings.Contains(user, ":") || strings.ContainsAny(user, "\r\n") {
				t.Fatalf("accepted user %q", user)
			}
			if !isBcrypt(string(hash)) {
				t.Fatalf("user %q: accepted hash %q", user, hash)
			}
		}
	})
}
