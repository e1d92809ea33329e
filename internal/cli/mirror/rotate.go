package mirror

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// NewCmdRotate returns the "mirror rotate" group.
func NewCmdRotate(io *iostreams.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate secrets: signing keys (carried to offline sites by bundles), bundle signatures, htpasswd credentials",
		Long: `Rotate replaces the mirror's secrets.

  rotate key          new signing key, a trust-roots file with both keys, and a
                      rotation statement signed by the old key and the new one
  rotate revoke       a statement that withdraws a compromised key at once
  rotate resign       sign an existing bundle again with another key
  rotate credentials  new password for an htpasswd user (mirror serve)

Statements travel inside bundles: "mirror export --rotation FILE" places them
under keys/, covered by mirror.json's signature. "mirror verify" and "mirror
import" apply them before checking the bundle's signatures, so an offline site
learns the new key from the first bundle that carries the statement, and
import records it in the export root's trust store.`,
		Example: `  stellaops-cli mirror rotate key --current-key signing-2025.pem --generate ES256 --new-key-out signing-2026.pem \
      --trust-roots roots.pem --trust-roots-out roots-2026.pem
  stellaops-cli mirror rotate revoke --key-id 3f1c...e9 --signing-key signing-2026.pem
  stellaops-cli mirror rotate resign --bundle-path /data/mirror-bundles/export-2026-03-15 --key signing-2026.pem
  stellaops-cli mirror rotate credentials --htpasswd /etc/stellaops/mirror.htpasswd --user downstream-a`,
		Args: cobra.ArbitraryArgs,
		RunE: runGroup,
	}
	cmd.AddCommand(
		NewCmdRotateKey(io),
		NewCmdRotateRevoke(io),
		NewCmdRotateResign(io),
		NewCmdRotateCredentials(io),
	)
	return cmd
}

// RotateKeyOptions holds the flags of "mirror rotate key".
type RotateKeyOptions struct {
	IO             *iostreams.IO
	CurrentKey     string
	NewKey         string
	Generate       string
	NewKeyOut      string
	NewKeyID       string
	NewKeyNotAfter string
	TrustRoots     string
	TrustRootsOut  string
	Overlap        string
	Reason         string
	StatementOut   string
	Now            string
}

// NewCmdRotateKey returns "mirror rotate key".
func NewCmdRotateKey(io *iostreams.IO) *cobra.Command {
	opts := &RotateKeyOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "key --current-key OLD.pem (--new-key NEW.pem | --generate ALG --new-key-out NEW.pem) --trust-roots IN.pem --trust-roots-out OUT.pem",
		Short: "Replace the signing key: new key, trust roots with both keys, and a rotation statement",
		Long: `Rotate key replaces the signing key OLD with NEW:

- With --generate ALG (ES256, ES384, ES512, RS256, RS384 or EdDSA) it creates
  the new private key in --new-key-out (mode 0600, never overwriting a file);
  --new-key-out alone generates ES256. With --new-key it uses an existing key.
  The public key is written beside it (NEW.pub).
- OUT.pem gets the keys of IN.pem plus the new key: the old key bounded by
  Not-After = now + --overlap, the new one with Not-Before = now.
- The rotation statement (default ./keys-rotation-<newKeyId>.json) names both
  keys, their validity and the reason, and is signed by the old key and the new
  key. Carry it in bundles with "mirror export --rotation FILE": sites apply
  it on verify and import when the old key, trusted there, and the new key
  both signed it.

OLD must be in IN.pem and trusted now. Encrypted cosign keys read their
password from STELLAOPS_KEY_PASSWORD, else from a terminal prompt.`,
		Example: `  stellaops-cli mirror rotate key --current-key signing-2025.pem --generate ES256 --new-key-out signing-2026.pem \
      --trust-roots roots.pem --trust-roots-out roots-2026.pem --overlap 720h --reason "quarterly rotation"

  # Then sign bundles with the new key and carry the statement until every site has it
  stellaops-cli mirror export --source feeds --out export --key signing-2026.pem \
      --rotation keys-rotation-<newKeyId>.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "current-key", "trust-roots", "trust-roots-out"); err != nil {
				return err
			}
			return runRotateKey(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.CurrentKey, "current-key", "", "private key being replaced (it must be in --trust-roots)")
	f.StringVar(&opts.NewKey, "new-key", "", "existing private key to rotate to")
	f.StringVar(&opts.Generate, "generate", "", "generate the new key with this algorithm: "+strings.Join(sign.Algorithms, ", "))
	f.StringVar(&opts.NewKeyOut, "new-key-out", "", "where to write the generated private key (must not exist)")
	f.StringVar(&opts.NewKeyID, "new-key-id", "", "key id of the new key, as export's --key-id will write it (default: hex SHA-256 of the public key)")
	f.StringVar(&opts.NewKeyNotAfter, "new-key-not-after", "", "optional end of the new key's trust (RFC 3339)")
	f.StringVar(&opts.TrustRoots, "trust-roots", "", "trust roots the sites use now (PEM)")
	f.StringVar(&opts.TrustRootsOut, "trust-roots-out", "", "where to write the trust roots with both keys (may be --trust-roots)")
	f.StringVar(&opts.Overlap, "overlap", "720h", "how long the old key stays trusted (Go duration or days, e.g. 30d)")
	f.StringVar(&opts.Reason, "reason", "", "reason recorded in the statement")
	f.StringVar(&opts.StatementOut, "statement-out", "", "where to write the rotation statement (default ./keys-rotation-<newKeyId>.json)")
	f.StringVar(&opts.Now, "now", "", "time of the rotation (RFC 3339; default: the system clock)")
	_ = cmd.MarkFlagFilename("current-key", "pem", "key")
	_ = cmd.MarkFlagFilename("new-key", "pem", "key")
	_ = cmd.MarkFlagFilename("trust-roots", "pem", "pub")
	_ = cmd.RegisterFlagCompletionFunc("generate", cobra.FixedCompletions(sign.Algorithms, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

type rotateKeyOutput struct {
	SchemaVersion    int        `json:"schemaVersion"`
	StatementID      string     `json:"statementId"`
	Statement        string     `json:"statement"`
	OldKeyID         string     `json:"oldKeyId"`
	OldKeyNotAfter   time.Time  `json:"oldKeyNotAfter"`
	NewKeyID         string     `json:"newKeyId"`
	NewKeyAlgorithm  string     `json:"newKeyAlgorithm"`
	NewKeyNotBefore  time.Time  `json:"newKeyNotBefore"`
	NewKeyNotAfter   *time.Time `json:"newKeyNotAfter,omitempty"`
	NewKeyFile       string     `json:"newKeyFile,omitempty"`
	NewPublicKeyFile string     `json:"newPublicKeyFile,omitempty"`
	TrustRootsOut    string     `json:"trustRootsOut"`
	Notes            []string   `json:"notes"`
}

func runRotateKey(ctx context.Context, opts *RotateKeyOptions) error {
	io := opts.IO
	now, err := parseTimeFlag("now", opts.Now, time.Now)
	if err != nil {
		return err
	}
	overlap, err := parseDuration("overlap", opts.Overlap)
	if err != nil {
		return err
	}
	var notAfter time.Time
	if opts.NewKeyNotAfter != "" {
		if notAfter, err = parseTimeFlag("new-key-not-after", opts.NewKeyNotAfter, time.Now); err != nil {
			return err
		}
	}
	generate := opts.Generate
	switch {
	case opts.NewKey != "" && (generate != "" || opts.NewKeyOut != ""):
		return failure.Usagef("--new-key and --generate/--new-key-out exclude each other")
	case opts.NewKey == "" && opts.NewKeyOut == "":
		return failure.WithHint(failure.Usagef("name the new key: --new-key FILE, or --generate ALG --new-key-out FILE"),
			"run 'stellaops-cli mirror rotate key --help' for usage")
	case opts.NewKey == "" && generate == "":
		generate = sign.ES256
	}
	var outs outputs
	defer outs.rollback()
	if generate != "" {
		if err := outs.claim(opts.NewKeyOut); err != nil {
			return err
		}
	}
	password := keyPassword(io)
	current, err := sign.LoadPrivateKey(opts.CurrentKey, password)
	if err != nil {
		return err
	}
	var newPriv crypto.Signer
	newPath := opts.NewKey
	if generate != "" {
		if newPriv, err = sign.Generate(generate); err != nil {
			return err
		}
		newPath = opts.NewKeyOut
	} else if newPriv, err = sign.LoadPrivateKey(opts.NewKey, password); err != nil {
		return err
	}
	roots, err := loadTrustRoots(opts.TrustRoots)
	if err != nil {
		return err
	}
	res, err := rotation.RotateKey(ctx, rotation.KeyOptions{
		Current: current, New: newPriv, NewKeyID: opts.NewKeyID, Roots: roots,
		Now: now, Overlap: overlap, NewKeyNotAfter: notAfter, Reason: opts.Reason,
	})
	if err != nil {
		return err
	}
	statementPath := opts.StatementOut
	if statementPath == "" {
		statementPath = res.FileName
	}
	out := rotateKeyOutput{
		SchemaVersion: 1, StatementID: res.Payload.StatementID, Statement: statementPath,
		OldKeyID: res.OldKey.ID, OldKeyNotAfter: res.OldKey.NotAfter,
		NewKeyID: res.NewKey.ID, NewKeyAlgorithm: res.NewKey.Algorithm(), NewKeyNotBefore: res.NewKey.NotBefore,
		TrustRootsOut: opts.TrustRootsOut, Notes: res.Notes,
	}
	if !res.NewKey.NotAfter.IsZero() {
		t := res.NewKey.NotAfter
		out.NewKeyNotAfter = &t
	}
	pubPEM, err := sign.MarshalPublicKeyPEM(newPriv.Public())
	if err != nil {
		return err
	}
	if generate != "" {
		privPEM, err := sign.MarshalPrivateKeyPEM(newPriv)
		if err != nil {
			return err
		}
		if err := outs.writeNew(opts.NewKeyOut, privPEM, 0o600); err != nil {
			return err
		}
		out.NewKeyFile = opts.NewKeyOut
	}
	pubPath := publicKeyPath(newPath)
	if wrote, err := outs.writePublic(pubPath, pubPEM); err != nil {
		return err
	} else if wrote {
		out.NewPublicKeyFile = pubPath
	}
	if err := outs.replace(statementPath, res.Statement, 0o644); err != nil {
		return err
	}
	rootsPEM, err := res.Roots.MarshalPEM()
	if err != nil {
		return err
	}
	if err := outs.replace(opts.TrustRootsOut, rootsPEM, 0o644); err != nil {
		return err
	}
	outs.commit()

	if io.JSON() {
		return io.PrintJSON(out)
	}
	if io.Quiet {
		fmt.Fprintln(io.Out, statementPath)
		return nil
	}
	fmt.Fprintf(io.Out, "old key %s: trusted until %s\n", out.OldKeyID, stamp(out.OldKeyNotAfter))
	newBound := "trusted from " + stamp(out.NewKeyNotBefore)
	if out.NewKeyNotAfter != nil {
		newBound += " until " + stamp(*out.NewKeyNotAfter)
	}
	fmt.Fprintf(io.Out, "new key %s (%s): %s\n", out.NewKeyID, out.NewKeyAlgorithm, newBound)
	if out.NewKeyFile != "" {
		fmt.Fprintf(io.Out, "wrote %s (private key, mode 0600)\n", out.NewKeyFile)
	}
	if out.NewPublicKeyFile != "" {
		fmt.Fprintf(io.Out, "wrote %s (public key)\n", out.NewPublicKeyFile)
	}
	fmt.Fprintf(io.Out, "wrote %s (%d keys)\n", opts.TrustRootsOut, len(res.Roots.Keys))
	fmt.Fprintf(io.Out, "wrote %s (rotation statement %s)\n", statementPath, out.StatementID)
	io.Infof("next: sign bundles with %s and add --rotation %s to 'mirror export' until every site has imported one; "+
		"sites keep accepting the old key until %s\n", newPath, statementPath, stamp(out.OldKeyNotAfter))
	return nil
}

// RotateRevokeOptions holds the flags of "mirror rotate revoke".
type RotateRevokeOptions struct {
	IO            *iostreams.IO
	KeyID         string
	SigningKey    string
	TrustRoots    string
	TrustRootsOut string
	StatementOut  string
	Reason        string
	Now           string
}

// NewCmdRotateRevoke returns "mirror rotate revoke".
func NewCmdRotateRevoke(io *iostreams.IO) *cobra.Command {
	opts := &RotateRevokeOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "revoke --key-id ID --signing-key OTHER.pem [--trust-roots IN.pem --trust-roots-out OUT.pem]",
		Short: "Write a statement that withdraws a compromised key at once",
		Long: `Revoke writes a revocation statement for the key ID, signed by another key the
sites trust. Carried in a bundle ("mirror export --rotation FILE"), it makes
verify and import stop trusting the key at once; the export root's trust store
keeps the key marked as revoked, so no replayed rotation statement can bring it
back. A statement that would leave a site trusting no key is refused.

With --trust-roots, ID may be any id the file lists, the statement carries the
revoked public key (so sites that never trusted it refuse it in advance), and
--trust-roots-out receives the roots with the key revoked. Without it, ID must
be the key's derived id (64 hex).`,
		Example: `  stellaops-cli mirror rotate revoke --key-id 3f1c...e9 --signing-key signing-2025.pem \
      --trust-roots roots.pem --trust-roots-out roots.pem --reason "key leaked in CI logs"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key-id", "signing-key"); err != nil {
				return err
			}
			return runRotateRevoke(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.KeyID, "key-id", "", "id of the key to revoke")
	f.StringVar(&opts.SigningKey, "signing-key", "", "private key that signs the statement (trusted by the sites, not the revoked key)")
	f.StringVar(&opts.TrustRoots, "trust-roots", "", "trust roots that list the key (optional)")
	f.StringVar(&opts.TrustRootsOut, "trust-roots-out", "", "where to write the trust roots with the key revoked (needs --trust-roots)")
	f.StringVar(&opts.StatementOut, "statement-out", "", "where to write the statement (default ./keys-revocation-<keyId>.json)")
	f.StringVar(&opts.Reason, "reason", "", "reason recorded in the statement")
	f.StringVar(&opts.Now, "now", "", "time of the revocation (RFC 3339; default: the system clock)")
	_ = cmd.MarkFlagFilename("signing-key", "pem", "key")
	_ = cmd.MarkFlagFilename("trust-roots", "pem", "pub")
	return cmd
}

type rotateRevokeOutput struct {
	SchemaVersion int      `json:"schemaVersion"`
	StatementID   string   `json:"statementId"`
	Statement     string   `json:"statement"`
	RevokedKeyID  string   `json:"revokedKeyId"`
	RevokedSHA256 string   `json:"revokedKeySha256"`
	TrustRootsOut string   `json:"trustRootsOut,omitempty"`
	Notes         []string `json:"notes"`
}

func runRotateRevoke(ctx context.Context, opts *RotateRevokeOptions) error {
	io := opts.IO
	if opts.TrustRootsOut != "" && opts.TrustRoots == "" {
		return failure.Usagef("--trust-roots-out needs --trust-roots")
	}
	now, err := parseTimeFlag("now", opts.Now, time.Now)
	if err != nil {
		return err
	}
	signer, err := sign.LoadPrivateKey(opts.SigningKey, keyPassword(io))
	if err != nil {
		return err
	}
	var roots *trust.Roots
	if opts.TrustRoots != "" {
		if roots, err = trust.LoadFile(opts.TrustRoots); err != nil {
			return err
		}
	}
	res, err := rotation.NewRevocation(ctx, rotation.RevokeOptions{Signer: signer, KeyID: opts.KeyID, Roots: roots, Now: now, Reason: opts.Reason})
	if err != nil {
		return err
	}
	statementPath := opts.StatementOut
	if statementPath == "" {
		statementPath = res.FileName
	}
	var outs outputs
	defer outs.rollback()
	if err := outs.replace(statementPath, res.Statement, 0o644); err != nil {
		return err
	}
	if opts.TrustRootsOut != "" {
		data, err := res.Roots.MarshalPEM()
		if err != nil {
			return err
		}
		if err := outs.replace(opts.TrustRootsOut, data, 0o644); err != nil {
			return err
		}
	}
	outs.commit()
	out := rotateRevokeOutput{SchemaVersion: 1, StatementID: res.Payload.StatementID, Statement: statementPath,
		RevokedKeyID: res.Payload.RevokedKeyID, RevokedSHA256: res.Payload.RevokedKeySHA256, TrustRootsOut: opts.TrustRootsOut, Notes: res.Notes}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	if io.JSON() {
		return io.PrintJSON(out)
	}
	if io.Quiet {
		fmt.Fprintln(io.Out, statementPath)
		return nil
	}
	fmt.Fprintf(io.Out, "wrote %s (revocation statement %s for key %s)\n", statementPath, out.StatementID, out.RevokedSHA256)
	if opts.TrustRootsOut != "" {
		fmt.Fprintf(io.Out, "wrote %s (key %s marked revoked)\n", opts.TrustRootsOut, out.RevokedKeyID)
	}
	io.Infof("next: add --rotation %s to 'mirror export'; sites stop trusting the key when they verify or import that bundle\n", statementPath)
	return nil
}

// RotateResignOptions holds the flags of "mirror rotate resign".
type RotateResignOptions struct {
	IO             *iostreams.IO
	BundlePath     string
	Key            string
	KeyID          string
	Alg            string
	KeepSignatures bool
	TrustRoots     string
	Now            string
}

// NewCmdRotateResign returns "mirror rotate resign".
func NewCmdRotateResign(io *iostreams.IO) *cobra.Command {
	opts := &RotateResignOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "resign --bundle-path DIR --key NEW.pem [--keep-signatures]",
		Short: "Sign an existing bundle folder again with another key, without changing its content",
		Long: `Resign re-issues a bundle made before a rotation: every domain's
bundle.json.jws and bundle.json.sig are signed with --key, the signature
{alg, kid} of the domain manifests and index.json follow the new key,
mirror.json lists the new digests of those files, its DSSE envelope is signed
again and SHA256SUMS rewritten. Advisories, VEX files, rotation statements,
the export id, sequence and validity stay as they were.

The bundle's files must match its mirror.json (with --trust-roots the bundle
must also verify as it is). The result is written into a folder beside DIR,
verified against the new key, and swapped in with two renames: a failure
leaves DIR as it was. Bundles inside an export root are never modified.

--keep-signatures keeps the old DSSE signatures beside the new one. They stay
valid only while mirror.json's bytes do not change, which is the case only
when the JWS and .sig come out the same (the same key); otherwise they are
dropped with a warning.`,
		Example: `  stellaops-cli mirror rotate resign --bundle-path /data/mirror-bundles/export-2026-03-15 --key signing-2026.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "bundle-path", "key"); err != nil {
				return err
			}
			return runRotateResign(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.BundlePath, "bundle-path", "", "bundle folder to re-sign in place")
	f.StringVar(&opts.Key, "key", "", "private key to sign with")
	f.StringVar(&opts.KeyID, "key-id", "", "key id written into the signatures (default: hex SHA-256 of the public key)")
	f.StringVar(&opts.Alg, "alg", "", "JWS algorithm (default by key)")
	f.BoolVar(&opts.KeepSignatures, "keep-signatures", false, "keep the old DSSE signatures beside the new one when mirror.json does not change")
	f.StringVar(&opts.TrustRoots, "trust-roots", "", "verify the bundle against these roots before re-signing (recommended)")
	f.StringVar(&opts.Now, "now", "", "trusted time for that verification (RFC 3339; default: the system clock)")
	_ = cmd.MarkFlagDirname("bundle-path")
	_ = cmd.MarkFlagFilename("key", "pem", "key")
	_ = cmd.RegisterFlagCompletionFunc("alg", cobra.FixedCompletions(sign.Algorithms, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runRotateResign(ctx context.Context, opts *RotateResignOptions) error {
	io := opts.IO
	now, err := parseTimeFlag("now", opts.Now, time.Now)
	if err != nil {
		return err
	}
	signer, err := sign.LoadSigner(opts.Key, opts.Alg, opts.KeyID, keyPassword(io))
	if err != nil {
		return err
	}
	var roots *trust.Roots
	if opts.TrustRoots != "" {
		if roots, err = trust.LoadFile(opts.TrustRoots); err != nil {
			return err
		}
	}
	res, err := rotation.Resign(ctx, rotation.ResignOptions{Dir: opts.BundlePath, Signer: signer,
		KeepSignatures: opts.KeepSignatures, Roots: roots, Now: now, Rotate: rotationHook})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		io.Warnf("%s", w)
	}
	if io.JSON() {
		return io.PrintJSON(res)
	}
	if io.Quiet {
		return nil
	}
	fmt.Fprintf(io.Out, "re-signed export %s in %s with %s (%s)\n", res.ExportID, res.BundlePath, res.KeyID, res.Alg)
	if len(res.PreviousKeyIDs) > 0 {
		fmt.Fprintf(io.Out, "previously signed by %s\n", strings.Join(res.PreviousKeyIDs, ", "))
	}
	if len(res.KeptSignatures) > 0 {
		fmt.Fprintf(io.Out, "kept DSSE signatures by %s\n", strings.Join(res.KeptSignatures, ", "))
	}
	if len(res.Rewritten) == 0 {
		fmt.Fprintln(io.Out, "no file changed")
	} else {
		fmt.Fprintf(io.Out, "rewrote %d files: %s\n", len(res.Rewritten), strings.Join(res.Rewritten, ", "))
	}
	fmt.Fprintf(io.Out, "mirror.json sha256 %s\n", res.ManifestSHA256)
	return nil
}

// RotateCredentialsOptions holds the flags of "mirror rotate credentials".
type RotateCredentialsOptions struct {
	IO            *iostreams.IO
	Htpasswd      string
	User          string
	PasswordStdin bool
	Remove        bool
	Cost          int
}

// NewCmdRotateCredentials returns "mirror rotate credentials".
func NewCmdRotateCredentials(io *iostreams.IO) *cobra.Command {
	opts := &RotateCredentialsOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "credentials --htpasswd FILE --user NAME [--password-stdin] [--remove]",
		Short: "Set a new password for an htpasswd user of mirror serve, or remove the user",
		Long: `Credentials replaces the password of --user in the htpasswd file that
"mirror serve --htpasswd" reads. Without --password-stdin a random password of
192 bits (32 base64url characters) is generated and printed once on stdout;
with it, the first line of stdin is used (typed without echo on a terminal). The password is stored as bcrypt
($2y$, cost --cost, at least 12), the form "htpasswd -B" writes.

Other lines of the file stay byte for byte. The file is replaced atomically and
keeps its mode and owner; a missing file is created with mode 0600.

A running "mirror serve" picks up the change when it receives SIGHUP: the new
password works and the old one is refused from then on.`,
		Example: `  # New random password, printed once
  stellaops-cli mirror rotate credentials --htpasswd /etc/stellaops/mirror.htpasswd --user downstream-a
  kill -HUP "$(pidof stellaops-cli)"

  # A password from a secrets manager
  vault kv get -field=password secret/mirror/downstream-a | \
      stellaops-cli mirror rotate credentials --htpasswd mirror.htpasswd --user downstream-a --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "htpasswd", "user"); err != nil {
				return err
			}
			return runRotateCredentials(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Htpasswd, "htpasswd", "", "htpasswd file (created with mode 0600 if missing)")
	f.StringVar(&opts.User, "user", "", "user name")
	f.BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	f.BoolVar(&opts.Remove, "remove", false, "remove the user instead")
	f.IntVar(&opts.Cost, "cost", rotation.DefaultBcryptCost, fmt.Sprintf("bcrypt cost (at least %d)", rotation.MinBcryptCost))
	_ = cmd.MarkFlagFilename("htpasswd")
	return cmd
}

type credentialsOutput struct {
	*rotation.CredentialResult
	// Password is set when it was generated.
	Password string `json:"password,omitempty"`
}

func runRotateCredentials(_ context.Context, opts *RotateCredentialsOptions) error {
	io := opts.IO
	if opts.Remove && opts.PasswordStdin {
		return failure.Usagef("--remove and --password-stdin exclude each other")
	}
	if opts.Remove {
		res, err := rotation.RemoveUser(opts.Htpasswd, opts.User)
		if err != nil {
			return err
		}
		if io.JSON() {
			return io.PrintJSON(credentialsOutput{CredentialResult: res})
		}
		io.Infof("removed user %s from %s; send SIGHUP to mirror serve to apply\n", res.User, res.Htpasswd)
		return nil
	}
	if opts.Cost < rotation.MinBcryptCost {
		return failure.Usagef("--cost %d: bcrypt cost must be at least %d", opts.Cost, rotation.MinBcryptCost)
	}
	var password []byte
	generated := ""
	switch {
	case opts.PasswordStdin && io.InTTY:
		fmt.Fprintf(io.Err, "New password for %s: ", opts.User)
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(io.Err)
		if err != nil {
			return failure.Classify(failure.ErrUsage, fmt.Errorf("read password: %w", err))
		}
		password = pw
	case opts.PasswordStdin:
		line, err := bufio.NewReaderSize(io.In, 4096).ReadString('\n')
		if err != nil && line == "" {
			return failure.Usagef("--password-stdin: nothing to read on stdin")
		}
		password = []byte(strings.TrimRight(line, "\r\n"))
	default:
		p, err := rotation.GeneratePassword()
		if err != nil {
			return err
		}
		generated, password = p, []byte(p)
	}
	res, err := rotation.SetPassword(opts.Htpasswd, opts.User, password, opts.Cost)
	if err != nil {
		return err
	}
	if io.JSON() {
		return io.PrintJSON(credentialsOutput{CredentialResult: res, Password: generated})
	}
	if generated != "" {
		fmt.Fprintln(io.Out, generated)
	}
	what := "new password for"
	if res.Action == rotation.ActionAdded {
		what = "added user"
	}
	io.Infof("%s %s in %s (bcrypt cost %d); send SIGHUP to mirror serve to apply\n", what, res.User, res.Htpasswd, res.Cost)
	if generated != "" {
		io.Infof("the password is printed once and stored nowhere else\n")
	}
	return nil
}

// outputs tracks the files a command creates, so that a failed run removes
// them and leaves nothing behind.
type outputs struct {
	created   []string
	committed bool
}

// claim fails when path exists (a private key is never overwritten).
func (o *outputs) claim(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return failure.WithHint(failure.Usagef("%s already exists; a key file is never overwritten", path),
			"choose another --new-key-out")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return failure.Classify(failure.ErrUsage, err)
	}
	return nil
}

// writeNew creates path atomically with exactly perm, failing if it exists:
// the data goes to a temporary file that is then hard-linked into place.
func (o *outputs) writeNew(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return failure.Usagef("%s already exists; a key file is never overwritten", path)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	o.created = append(o.created, path)
	return atomicfile.SyncDir(dir)
}

// writePublic writes a public key beside its private key: a file already
// holding the same key is left alone, one holding another is refused.
func (o *outputs) writePublic(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil {
		have, perr := trust.Parse(old, path)
		want, werr := trust.Parse(data, path)
		if perr == nil && werr == nil && len(have.Keys) == 1 && have.Keys[0].DerivedID == want.Keys[0].DerivedID {
			return false, nil
		}
		return false, failure.WithHint(failure.Usagef("%s already exists and holds another public key", path),
			"move it away; the new key's public key is written beside the private key")
	}
	return true, o.writeNew(path, data, 0o644)
}

// replace writes path atomically, keeping an existing file's mode.
func (o *outputs) replace(path string, data []byte, perm os.FileMode) error {
	_, statErr := os.Lstat(path)
	if err := atomicfile.WriteFile(path, data, perm, atomicfile.KeepMode()); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		o.created = append(o.created, path)
	}
	return nil
}

func (o *outputs) commit() { o.committed = true }

func (o *outputs) rollback() {
	if o.committed {
		return
	}
	for i := len(o.created) - 1; i >= 0; i-- {
		os.Remove(o.created[i])
	}
}

// publicKeyPath returns NEW.pub for NEW.pem, NEW.key or NEW.
func publicKeyPath(priv string) string {
	ext := filepath.Ext(priv)
	switch ext {
	case ".pem", ".key":
		return strings.TrimSuffix(priv, ext) + ".pub"
	}
	return priv + ".pub"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
