package releasetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// pendingCommands are commands that deploy files and docs already use but
// that have not landed in the command tree yet. Their invocations are
// reported in the log instead of failing; once a command exists, its flags
// are checked like any other.
var pendingCommands = map[string]bool{}

// invocation is one stellaops-cli command line found in a file.
type invocation struct {
	where string   // file (and line) it came from
	args  []string // the arguments after the program name
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// deployYAML lists the YAML files under deploy/.
func deployYAML(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(repoPath("deploy"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// isKubernetes reports whether a file under deploy/ is a Kubernetes manifest.
func isKubernetes(path string) bool {
	return filepath.Base(filepath.Dir(path)) == "k8s"
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

// containerInvocations finds the maps with an image of stellaops-cli in a
// decoded YAML tree (compose services, Kubernetes containers) and returns
// their command lines.
func containerInvocations(where string, node any, compose bool) []invocation {
	var out []invocation
	switch n := node.(type) {
	case map[string]any:
		if img, ok := n["image"].(string); ok && strings.Contains(img, "stellaops-cli") {
			var argv []string
			if compose {
				argv = strs(n["command"])
			} else {
				command := strs(n["command"])
				argv = append(command, strs(n["args"])...)
				if len(command) > 0 && strings.HasSuffix(command[0], "stellaops-cli") {
					argv = argv[1:]
				}
			}
			name, _ := n["name"].(string)
			out = append(out, invocation{fmt.Sprintf("%s (%s)", where, name), argv})
		}
		for _, v := range n {
			out = append(out, containerInvocations(where, v, compose)...)
		}
	case []any:
		for _, v := range n {
			out = append(out, containerInvocations(where, v, compose)...)
		}
	}
	return out
}

// containerfile returns the final stage's instructions of deploy/Containerfile
// (continuation lines joined) and its CMD as an invocation.
func containerfile(t *testing.T) (final []string, cmd invocation) {
	t.Helper()
	data := readFile(t, "deploy", "Containerfile")
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") && cur.Len() == 0 {
			continue
		}
		if s, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = nil
		}
		final = append(final, l)
	}
	for _, l := range final {
		if rest, ok := strings.CutPrefix(l, "CMD "); ok {
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil {
				t.Fatalf("Containerfile: CMD is not a JSON array: %v", err)
			}
			cmd = invocation{"deploy/Containerfile (CMD)", argv}
		}
	}
	return final, cmd
}

// TestDeployFilesParse decodes every YAML file under deploy/ and checks
// the parts the profiles rely on.
func TestDeployFilesParse(t *testing.T) {
	files := deployYAML(t)
	if len(files) < 2 {
		t.Fatalf("deploy/ holds %d YAML files, want compose.yaml and k8s/", len(files))
	}
	kinds := map[string][]map[string]any{}
	for _, f := range files {
		docs := yamlDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		if !isKubernetes(f) {
			continue
		}
		for _, d := range docs {
			kind, _ := d["kind"].(string)
			if kind == "" || d["apiVersion"] == nil {
				t.Errorf("%s: a document without apiVersion and kind", f)
			}
			kinds[kind] = append(kinds[kind], d)
		}
	}
	for _, k := range []string{"Deployment", "Service", "PersistentVolumeClaim", "CronJob", "Kustomization"} {
		if len(kinds[k]) == 0 {
			t.Errorf("deploy/k8s has no %s", k)
		}
	}
}

// TestKubernetesProfile checks that the manifests fit together: the
// Service selects the serve pods, every claim exists, the kustomization
// lists every manifest, pods run as non-root, the sync jobs never overlap.
func TestKubernetesProfile(t *testing.T) {
	docs := map[string][]map[string]any{}
	for _, f := range deployYAML(t) {
		if !isKubernetes(f) {
			continue
		}
		for _, d := range yamlDocs(t, f) {
			docs[d["kind"].(string)] = append(docs[d["kind"].(string)], d)
		}
	}
	get := func(v any, path ...string) any {
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	claims := map[string]bool{}
	for _, pvc := range docs["PersistentVolumeClaim"] {
		claims[get(pvc, "metadata", "name").(string)] = true
	}
	type pod struct {
		name string
		spec any
	}
	var pods []pod
	for _, d := range docs["Deployment"] {
		pods = append(pods, pod{"Deployment " + get(d, "metadata", "name").(string), get(d, "spec", "template", "spec")})
		labels := get(d, "spec", "template", "metadata", "labels").(map[string]any)
		selected := false
		for _, svc := range docs["Service"] {
			sel, _ := get(svc, "spec", "selector").(map[string]any)
			match := len(sel) > 0
			for k, v := range sel {
				if labels[k] != v {
					match = false
				}
			}
			selected = selected || match
		}
		if !selected {
			t.Errorf("no Service selects the pods of Deployment %v", get(d, "metadata", "name"))
		}
	}
	for _, c := range docs["CronJob"] {
		pods = append(pods, pod{"CronJob " + get(c, "metadata", "name").(string), get(c, "spec", "jobTemplate", "spec", "template", "spec")})
		if get(c, "spec", "concurrencyPolicy") != "Forbid" {
			t.Errorf("CronJob %v: concurrencyPolicy is not Forbid", get(c, "metadata", "name"))
		}
	}
	for _, p := range pods {
		if get(p.spec, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: securityContext.runAsNonRoot is not true", p.name)
		}
		mountsExportRoot := false
		for _, v := range get(p.spec, "volumes").([]any) {
			if claim, ok := get(v, "persistentVolumeClaim", "claimName").(string); ok {
				mountsExportRoot = true
				if !claims[claim] {
					t.Errorf("%s: claim %q is not defined in deploy/k8s", p.name, claim)
				}
			}
		}
		if !mountsExportRoot {
			t.Errorf("%s: does not mount the export-root claim", p.name)
		}
	}
	for _, k := range docs["Kustomization"] {
		var listed []string
		for _, r := range get(k, "resources").([]any) {
			listed = append(listed, r.(string))
		}
		entries, err := os.ReadDir(repoPath("deploy", "k8s"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "kustomization.yaml" && !slices.Contains(listed, e.Name()) {
				t.Errorf("kustomization.yaml does not list %s", e.Name())
			}
		}
		for _, r := range listed {
			if _, err := os.Stat(repoPath("deploy", "k8s", r)); err != nil {
				t.Errorf("kustomization.yaml lists %s: %v", r, err)
			}
		}
	}
}

// TestComposeProfile checks that serve and the sync job share the export
// root volume and run as non-root.
func TestComposeProfile(t *testing.T) {
	docs := yamlDocs(t, repoPath("deploy", "compose.yaml"))
	services, _ := docs[0]["services"].(map[string]any)
	volumes, _ := docs[0]["volumes"].(map[string]any)
	mounts := map[string]string{}
	for _, name := range []string{"serve", "sync"} {
		svc, ok := services[name].(map[string]any)
		if !ok {
			t.Fatalf("compose.yaml has no %s service", name)
		}
		if u, _ := svc["user"].(string); u == "" || u == "0" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0:") {
			t.Errorf("compose %s: user %q is not an unprivileged user", name, u)
		}
		for _, v := range strs(svc["volumes"]) {
			src, dst, _ := strings.Cut(v, ":")
			if _, named := volumes[src]; named {
				mounts[name] = src
				dst, _, _ = strings.Cut(dst, ":")
				if argv := strs(svc["command"]); !slices.Contains(argv, dst) {
					t.Errorf("compose %s: mounts %s at %s but its command does not use that path: %v", name, src, dst, argv)
				}
			}
		}
	}
	if mounts["serve"] == "" || mounts["serve"] != mounts["sync"] {
		t.Errorf("serve and sync do not share a named export-root volume: %v", mounts)
	}
}

// TestContainerfile checks the image: a static, shell-less base, a
// non-root user, a static binary.
func TestContainerfile(t *testing.T) {
	final, cmd := containerfile(t)
	if len(final) == 0 || !(strings.Contains(final[0], "distroless/static") || strings.HasSuffix(final[0], "scratch")) {
		t.Errorf("final stage %q is not distroless/static or scratch", final)
	}
	user := ""
	for _, l := range final {
		if u, ok := strings.CutPrefix(l, "USER "); ok {
			user = u
		}
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "0:") {
		t.Errorf("final stage runs as %q, want an unprivileged user", user)
	}
	data := string(readFile(t, "deploy", "Containerfile"))
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `ENTRYPOINT ["/usr/local/bin/stellaops-cli"]`} {
		if !strings.Contains(data, want) {
			t.Errorf("Containerfile lacks %s", want)
		}
	}
	if len(cmd.args) == 0 {
		t.Error("Containerfile has no CMD")
	}
}

// TestDeployInvocationsUseExistingFlags checks every stellaops-cli command
// line in deploy/ against the command tree.
func TestDeployInvocationsUseExistingFlags(t *testing.T) {
	var invs []invocation
	for _, f := range deployYAML(t) {
		compose := filepath.Base(f) == "compose.yaml"
		rel, _ := filepath.Rel(repoRoot, f)
		for _, d := range yamlDocs(t, f) {
			if !compose {
				invs = append(invs, containerInvocations(rel, d, false)...)
				continue
			}
			services, _ := d["services"].(map[string]any)
			for name, svc := range services {
				for _, inv := range containerInvocations(rel, svc, true) {
					inv.where = fmt.Sprintf("%s (service %s)", rel, name)
					invs = append(invs, inv)
				}
			}
		}
	}
	_, cmd := containerfile(t)
	invs = append(invs, cmd)
	if len(invs) < 5 {
		t.Fatalf("found only %d stellaops-cli invocations in deploy/", len(invs))
	}
	checkInvocations(t, invs)
}

// TestDocsInvocationsUseExistingFlags checks the stellaops-cli command
// lines in the code blocks of README.md and docs/*.md.
func TestDocsInvocationsUseExistingFlags(t *testing.T) {
	files, err := filepath.Glob(repoPath("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, repoPath("README.md"))
	var invs []invocation
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		invs = append(invs, markdownInvocations(rel, data)...)
	}
	if len(invs) == 0 {
		t.Fatal("no stellaops-cli command lines found in the docs")
	}
	checkInvocations(t, invs)
}

var programRe = regexp.MustCompile(`(?:^|[\s=/])stellaops-cli\s+(.*)$`)

// markdownInvocations returns the stellaops-cli command lines of the
// fenced code blocks of a markdown file, continuation lines joined.
func markdownInvocations(name string, data []byte) []invocation {
	var out []invocation
	inCode := false
	var logical strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			logical.Reset()
			continue
		}
		if !inCode {
			continue
		}
		if logical.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			logical.WriteString(s + " ")
			continue
		}
		logical.WriteString(line)
		text := logical.String()
		logical.Reset()
		m := programRe.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		args := shellWords(m[1])
		// "stellaops-cli.bash", paths and the like are not invocations.
		if len(args) == 0 || strings.ContainsAny(args[0], "/.=") {
			continue
		}
		out = append(out, invocation{fmt.Sprintf("%s:%d", name, start), args})
	}
	return out
}

// shellWords splits a shell command line into words, honouring quotes and
// $(...) substitutions, up to the first operator or comment.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote, prev rune
	depth := 0
	for _, r := range s {
		last := prev
		prev = r
		switch {
		case depth > 0:
			cur.WriteRune(r)
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			}
		case r == '(' && last == '$':
			cur.WriteRune(r)
			depth++
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case !inWord && strings.ContainsRune("|;&<>#)", r):
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// checkInvocations resolves each command line against the command tree:
// the subcommands must exist, every flag must be one of the command's, and
// the positional arguments must be accepted.
func checkInvocations(t *testing.T, invs []invocation) {
	t.Helper()
	for _, inv := range invs {
		path, problems, pending := checkArgs(newRoot(), inv.args)
		if pending {
			t.Logf("%s: %s is not in the command tree yet; flags not checked: %v", inv.where, path, inv.args)
			continue
		}
		for _, p := range problems {
			t.Errorf("%s: %s: %s", inv.where, strings.Join(append([]string{"stellaops-cli"}, inv.args...), " "), p)
		}
	}
}

func checkArgs(root *cobra.Command, args []string) (path string, problems []string, pending bool) {
	cmd := root
	i := 0
	for i < len(args) && !strings.HasPrefix(args[i], "-") {
		var next *cobra.Command
		for _, c := range cmd.Commands() {
			if c.Name() == args[i] || c.HasAlias(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd = next
		i++
	}
	if i < len(args) && !strings.HasPrefix(args[i], "-") && cmd.HasSubCommands() {
		p := cmd.CommandPath() + " " + args[i]
		if pendingCommands[p] {
			return p, nil, true
		}
		return p, []string{fmt.Sprintf("unknown command %q for %q", args[i], cmd.CommandPath())}, false
	}
	cmd.InitDefaultHelpFlag()
	lookup := func(name string, short bool) *pflag.Flag {
		for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
			var f *pflag.Flag
			if short {
				f = fs.ShorthandLookup(name)
			} else {
				f = fs.Lookup(name)
			}
			if f != nil {
				return f
			}
		}
		return nil
	}
	var positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			f := lookup(name, false)
			if f == nil {
				problems = append(problems, fmt.Sprintf("unknown flag --%s", name))
				continue
			}
			if !hasValue && f.NoOptDefVal == "" {
				i++
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			f := lookup(a[1:2], true)
			if f == nil {
				problems = append(problems, fmt.Sprintf("unknown shorthand flag -%s", a[1:2]))
				continue
			}
			if len(a) == 2 && f.NoOptDefVal == "" {
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	if err := cmd.ValidateArgs(positional); err != nil {
		problems = append(problems, err.Error())
	}
	return cmd.CommandPath(), problems, false
}

func TestShellWords(t *testing.T) {
	got := shellWords(`mirror verify --bundle-path "/media/usb/my export" --now '2026-03-16T09:00:00Z' --out /b/$(date -u +%F) -o json | jq .`)
	want := []string{"mirror", "verify", "--bundle-path", "/media/usb/my export", "--now", "2026-03-16T09:00:00Z", "--out", "/b/$(date -u +%F)", "-o", "json"}
	if !slices.Equal(got, want) {
		t.Errorf("shellWords:\n got %q\nwant %q", got, want)
	}
}

func TestCheckArgsFindsProblems(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mirror", "verify", "--bundle", "x"}, "unknown flag --bundle"},
		{[]string{"mirror", "nosuch", "--x"}, `unknown command "nosuch"`},
		{[]string{"mirror", "export", "-Z"}, "unknown shorthand flag -Z"},
		{[]string{"version", "extra"}, "unknown command"},
	} {
		_, problems, _ := checkArgs(newRoot(), tc.args)
		if !strings.Contains(strings.Join(problems, "; "), tc.want) {
			t.Errorf("checkArgs %v: problems %q, want one with %q", tc.args, problems, tc.want)
		}
	}
	if _, problems, _ := checkArgs(newRoot(), []string{"mirror", "import", "-q", "--bundle-path", "b", "--verify-dsse", "--export-root=r", "-o", "json"}); len(problems) > 0 {
		t.Errorf("valid import line: %q", problems)
	}
}
