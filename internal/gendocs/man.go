package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
)

// Section titles, in the order of man-pages(7).
const (
	secName        = "NAME"
	secSynopsis    = "SYNOPSIS"
	secDescription = "DESCRIPTION"
	secOptions     = "OPTIONS"
	secInherited   = "OPTIONS INHERITED FROM PARENT COMMANDS"
	secExitStatus  = "EXIT STATUS"
	secEnvironment = "ENVIRONMENT"
	secFiles       = "FILES"
	secExamples    = "EXAMPLES"
	secSeeAlso     = "SEE ALSO"

	// cobraExample is the title cobra/doc gives the examples.
	cobraExample = "EXAMPLE"
)

// section is one ".SH" section of a roff page: its title and its body.
type section struct {
	title string
	body  string
}

// restructure adds the EXIT STATUS, ENVIRONMENT and FILES sections to a
// page rendered by cobra/doc, renames EXAMPLE to EXAMPLES, and orders the
// sections as man-pages(7) does.
func restructure(page []byte) []byte {
	preamble, sections := splitSections(string(page))
	byTitle := map[string]section{}
	var order []string
	for _, s := range sections {
		if s.title == cobraExample {
			s.title = secExamples
		}
		if s.title == secOptions || s.title == secInherited {
			s.body = tagOptions(s.body)
		}
		byTitle[s.title] = s
		order = append(order, s.title)
	}
	byTitle[secExitStatus] = section{secExitStatus, exitStatusBody()}
	byTitle[secEnvironment] = section{secEnvironment, environmentBody()}
	byTitle[secFiles] = section{secFiles, filesBody()}

	want := []string{secName, secSynopsis, secDescription, secOptions, secInherited}
	tail := []string{secExitStatus, secEnvironment, secFiles, secExamples, secSeeAlso}
	known := map[string]bool{}
	for _, t := range append(append([]string(nil), want...), tail...) {
		known[t] = true
	}
	// Sections this generator does not know stay, before the fixed tail.
	for _, t := range order {
		if !known[t] {
			want = append(want, t)
		}
	}
	want = append(want, tail...)

	var b bytes.Buffer
	b.WriteString(strings.TrimRight(preamble, "\n"))
	b.WriteString("\n")
	for _, t := range want {
		s, ok := byTitle[t]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "\n.SH %s\n%s\n", s.title, strings.Trim(s.body, "\n"))
	}
	return b.Bytes()
}

// splitSections cuts a roff page at its ".SH" lines.
func splitSections(page string) (string, []section) {
	lines := strings.Split(page, "\n")
	var preamble strings.Builder
	var sections []section
	for _, l := range lines {
		if title, ok := strings.CutPrefix(l, ".SH "); ok {
			sections = append(sections, section{title: strings.Trim(title, `"`)})
			continue
		}
		if len(sections) == 0 {
			preamble.WriteString(l + "\n")
			continue
		}
		sections[len(sections)-1].body += l + "\n"
	}
	return preamble.String(), sections
}

// tagOptions turns cobra/doc's option paragraphs (a bold term line, then
// the usage indented by a tab) into tagged paragraphs (.TP), and writes the
// hyphens of option names as \- so that they copy as typed.
func tagOptions(body string) string {
	var b strings.Builder
	lines := strings.Split(body, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, `\fB`) {
			continue // .PP and blank lines between the paragraphs
		}
		b.WriteString(".TP\n" + strings.ReplaceAll(l, "-", `\-`) + "\n")
		for i+1 < len(lines) && lines[i+1] != "" && lines[i+1] != ".PP" {
			i++
			b.WriteString(strings.TrimPrefix(lines[i], "\t") + "\n")
		}
	}
	return b.String()
}

// roff quotes text for a roff body: backslashes, hyphens (so that flags and
// paths copy as typed) and control characters at a line start.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

func bold(s string) string   { return `\fB` + roff(s) + `\fP` }
func italic(s string) string { return `\fI` + roff(s) + `\fP` }

// item is one tagged paragraph (.TP): a term and its description.
type item struct{ term, text string }

func tagged(b *strings.Builder, items []item) {
	for _, it := range items {
		fmt.Fprintf(b, ".TP\n%s\n%s\n", it.term, roff(it.text))
	}
}

// exitCodes is the exit status table of the contract.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{failure.ExitOK, "Success."},
	{failure.ExitError, "Unexpected or I/O error (disk full, network down)."},
	{failure.ExitVerification, "Verification failed: digest, size, signature, untrusted key, missing or extra file, unsafe archive entry, malformed signed document."},
	{failure.ExitPolicy, "Refused by policy: expired, not yet valid, rollback (sequence not above the high-water mark), stale."},
	{failure.ExitUsage, "Bad invocation or unreadable operator input: unknown flag, missing flag, unreadable key or trust-roots file."},
	{failure.ExitBusy, "Busy: another import or sync holds the export root's lock."},
	{failure.ExitInterrupted, "Interrupted (SIGINT or SIGTERM); nothing half-done is left visible."},
}

func exitStatusBody() string {
	var b strings.Builder
	b.WriteString(roff("Every command exits with one of these codes.") + "\n")
	items := make([]item, 0, len(exitCodes))
	for _, c := range exitCodes {
		items = append(items, item{bold(fmt.Sprint(c.code)), c.meaning})
	}
	tagged(&b, items)
	b.WriteString(".PP\n" + roff("A failed verify, import or sync changes nothing under the export root: latest, the trust store and the high-water mark stay as they were, and no partial export folder is visible.") + "\n")
	return b.String()
}

// envGroup is a set of environment variables read by some commands.
type envGroup struct {
	heading string
	vars    []item
}

// environment lists the variables the commands read. Where a variable and
// a flag set the same thing, the flag wins.
var environment = []envGroup{
	{"All commands", []item{
		{"NO_COLOR", "When set to any non-empty value, no colour or styling is written, as with --no-color."},
	}},
	{"mirror verify, mirror import and mirror sync", []item{
		{"GOMEMLIMIT", "Soft memory limit of the Go runtime. Unset, these commands use 48MiB, which keeps verify and import of a bundle of any size near 64 MiB resident; a larger value (e.g. 256MiB) trades memory for less garbage collection."},
	}},
	{"mirror export and mirror rotate", []item{
		{"STELLAOPS_KEY_PASSWORD", "Password of an encrypted (cosign) private key. Without it, the password is read from a terminal prompt; it is never a flag value."},
	}},
	{"mirror smoke and mirror sync", []item{
		{"STELLAOPS_MIRROR_PASSWORD", "Password for --user (HTTP Basic); smoke also reads it from stdin with --password-stdin."},
		{"STELLAOPS_MIRROR_TOKEN", "Bearer token sent to the mirror (smoke: when --token is not given)."},
	}},
	{"mirror serve (and mirror status for the active export)", []item{
		{"CONCELIER__MIRROR__ENABLED", "false refuses to start the mirror."},
		{"CONCELIER__MIRROR__EXPORTROOT", "Export root to serve (--export-root)."},
		{"CONCELIER__MIRROR__ACTIVEEXPORTID", "Serve this export instead of latest (--active-export-id)."},
		{"CONCELIER__MIRROR__REQUIREAUTHENTICATION", "Require credentials on every domain without its own setting (--require-authentication)."},
		{"CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR", "Index requests per client and domain per hour; 0 means unlimited (--max-index-requests-per-hour)."},
		{"CONCELIER__MIRROR__DOMAINS__{n}__ID", "Id of the n-th domain with its own settings (n counts from 0)."},
		{"CONCELIER__MIRROR__DOMAINS__{n}__DISPLAYNAME", "Display name of that domain."},
		{"CONCELIER__MIRROR__DOMAINS__{n}__REQUIREAUTHENTICATION", "Whether that domain requires credentials."},
		{"CONCELIER__MIRROR__DOMAINS__{n}__MAXINDEXREQUESTSPERHOUR", "Index budget of that domain; without it the domain inherits the global index budget."},
		{"CONCELIER__MIRROR__DOMAINS__{n}__MAXDOWNLOADREQUESTSPERHOUR", "Download budget of that domain."},
		{"CONCELIER__AUTHORITY__ENABLED", "Verify bearer JWTs against the configured keys (--authority-keys)."},
		{"CONCELIER__AUTHORITY__ALLOWANONYMOUSFALLBACK", "Let requests without any credentials through as anonymous; wrong credentials are still refused."},
		{"CONCELIER__AUTHORITY__BYPASSNETWORKS__{n}", "CIDR whose clients skip authentication (--bypass-network)."},
	}},
	{"mirror sync", []item{
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__BASEADDRESS", "Base URL of the upstream mirror (--from)."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__INDEXPATH", "Path of the index below the base URL."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__DOMAINID", "Domain to sync (--domain)."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__HTTPTIMEOUT", "Timeout of each HTTP request."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__ENABLED", "Whether the bundle's signatures are required."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__KEYID", "Key id the signatures must carry."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__PROVIDER", "Signature provider."},
		{"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__PUBLICKEYPATH", "PEM file of the public key the signatures must verify with."},
	}},
}

func environmentBody() string {
	var b strings.Builder
	b.WriteString(roff("Where a variable and a flag set the same thing, the flag wins.") + "\n")
	for _, g := range environment {
		fmt.Fprintf(&b, ".SS %s\n", roff(g.heading))
		items := make([]item, 0, len(g.vars))
		for _, v := range g.vars {
			items = append(items, item{bold(v.term), v.text})
		}
		tagged(&b, items)
	}
	return b.String()
}

func filesBody() string {
	var b strings.Builder
	b.WriteString(roff("An export root, written by mirror import and mirror sync and read by mirror serve and mirror status:") + "\n")
	state := exportroot.StateDirName + "/"
	tagged(&b, []item{
		{italic("ROOT") + "/" + italic("exportId") + "/", "A complete, verified bundle tree, never modified after it appears."},
		{italic("ROOT") + "/" + bold(exportroot.LatestName), "Symbolic link to the active export; replaced atomically, never points at an incomplete export. Serve picks CONCELIER__MIRROR__ACTIVEEXPORTID when set, else latest, else the newest export folder."},
		{italic("ROOT") + "/" + bold(state), "State: trust store, sequence high-water mark, import status, import log, lock."},
		{italic("ROOT") + "/" + bold(state+importer.TrustStoreFile), "Trust store: the keys imports verify with, recorded by the first import with --trust-roots."},
		{italic("ROOT") + "/" + bold(state+exportroot.SequenceFile), "Sequence high-water mark: an import must carry a higher sequence unless --allow-downgrade."},
		{italic("ROOT") + "/" + bold(state+exportroot.StatusFile), "Status of the last import or sync."},
		{italic("ROOT") + "/" + bold(state+exportroot.LogFile), "Import log, one JSON object per line, hash-chained; mirror status --log checks the chain."},
		{italic("ROOT") + "/" + bold(state+exportroot.LockFile), "Lock held by a running import or sync (exit status 5 for another)."},
	})
	b.WriteString(".PP\n" + roff("A bundle folder holds mirror.json, mirror.dsse.json, SHA256SUMS and mirror/ (index.json, and per domain manifest.json, bundle.json, bundle.json.jws, bundle.json.sig and vex/); docs/format.md describes each file.") + "\n")
	return b.String()
}
