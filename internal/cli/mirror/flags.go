package mirror

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// verifyFlags are the verification switches shared by verify, import and sync.
type verifyFlags struct {
	TrustRoots      string
	VerifyChecksums bool
	VerifyDSSE      bool
	Now             string
}

func (f *verifyFlags) AddFlags(cmd *cobra.Command, trustRequired bool) {
	fl := cmd.Flags()
	usage := "PEM file of trusted public keys or certificates (a cosign.pub works)"
	if !trustRequired {
		usage += "; default: the export root's trust store"
	}
	fl.StringVar(&f.TrustRoots, "trust-roots", "", usage)
	fl.BoolVar(&f.VerifyChecksums, "verify-checksums", true, "check every file's size and SHA-256 against mirror.json (=false warns)")
	fl.BoolVar(&f.VerifyDSSE, "verify-dsse", true, "check the DSSE signature over mirror.json (=false warns)")
	fl.StringVar(&f.Now, "now", "", "trusted current time for expiry checks (RFC 3339; default: the system clock)")
	_ = cmd.MarkFlagFilename("trust-roots", "pem", "pub", "crt")
}

// warnDisabled prints the warnings for switched-off checks.
func (f *verifyFlags) warnDisabled(io *iostreams.IO) {
	if !f.VerifyChecksums {
		io.Warnf("--verify-checksums=false: file contents will not be checked against mirror.json")
	}
	if !f.VerifyDSSE {
		io.Warnf("--verify-dsse=false: the signature over mirror.json will not be checked")
	}
}

// now returns the trusted time.
func (f *verifyFlags) now() (time.Time, error) {
	return parseTimeFlag("now", f.Now, time.Now)
}

// parseTimeFlag reads an RFC 3339 time, a date (YYYY-MM-DD, midnight UTC) or
// Unix seconds ("@1700000000"); empty means def().
func parseTimeFlag(name, v string, def func() time.Time) (time.Time, error) {
	if v == "" {
		return def().UTC(), nil
	}
	if strings.HasPrefix(v, "@") {
		n, err := strconv.ParseInt(v[1:], 10, 64)
		if err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, failure.Usagef("--%s %q: want an RFC 3339 time such as 2026-03-15T00:00:00Z", name, v)
}

// parseDuration accepts Go durations plus a "d" (days) suffix.
func parseDuration(name, v string) (time.Duration, error) {
	if strings.HasSuffix(v, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "d"), 64)
		if err == nil && n > 0 {
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, failure.Usagef("--%s %q: want a positive duration such as 168h or 7d", name, v)
	}
	return d, nil
}

// loadTrustRoots reads --trust-roots.
func loadTrustRoots(path string) (*trust.Roots, error) {
	if path == "" {
		return nil, failure.WithHint(failure.Usagef("--trust-roots is required"),
			"pass the PEM file of the producer's public keys, e.g. --trust-roots /data/trust-roots/roots.pem")
	}
	return trust.LoadFile(path)
}

// keyPassword returns the password source for encrypted keys: the
// environment variable, else a prompt on the terminal.
func keyPassword(io *iostreams.IO) func() ([]byte, error) {
	var prompt func() ([]byte, error)
	if io.InTTY {
		prompt = func() ([]byte, error) {
			fmt.Fprint(io.Err, "Enter password for private key: ")
			pw, err := term.ReadPassword(int(os.Stdin.Fd()))
			fmt.Fprintln(io.Err)
			return pw, err
		}
	}
	return sign.PasswordFromEnv(io.Getenv, prompt)
}

// requireFlags returns a usage error naming the first empty flag.
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil || f.Value.String() == "" {
			return failure.WithHint(failure.Usagef("--%s is required", n),
				fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath()))
		}
	}
	return nil
}

func failureUsage(msg string) error { return failure.Usagef("%s", msg) }
