package releasetest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const buildinfoPkg = "github.com/stellaops/stellaops-cli/internal/buildinfo"

// goreleaserConfig is the part of goreleaser.yaml the tests look at.
type goreleaserConfig struct {
	Version int `yaml:"version"`
	Builds  []struct {
		Main         string   `yaml:"main"`
		Binary       string   `yaml:"binary"`
		Env          []string `yaml:"env"`
		Goos         []string `yaml:"goos"`
		Goarch       []string `yaml:"goarch"`
		Flags        []string `yaml:"flags"`
		Ldflags      []string `yaml:"ldflags"`
		ModTimestamp string   `yaml:"mod_timestamp"`
	} `yaml:"builds"`
	Archives []struct {
		Files []struct {
			Src string `yaml:"src"`
		} `yaml:"files"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
	Signs []struct {
		Cmd       string   `yaml:"cmd"`
		Artifacts string   `yaml:"artifacts"`
		Args      []string `yaml:"args"`
	} `yaml:"signs"`
}

func loadGoreleaser(t *testing.T) goreleaserConfig {
	t.Helper()
	var c goreleaserConfig
	if err := yaml.Unmarshal(readFile(t, "goreleaser.yaml"), &c); err != nil {
		t.Fatalf("goreleaser.yaml: %v", err)
	}
	if c.Version != 2 || len(c.Builds) != 1 || len(c.Archives) == 0 {
		t.Fatalf("goreleaser.yaml: want version 2, one build, an archive; got %+v", c)
	}
	return c
}

// buildinfoVars returns the package-level string variables of
// internal/buildinfo, which -X can set.
func buildinfoVars(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), repoPath("internal", "buildinfo", "buildinfo.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				vars = append(vars, n.Name)
			}
		}
	}
	return vars
}

var xflagRe = regexp.MustCompile(`-X ([^=\s]+)\.([A-Za-z_]+)=(\S+)`)

// TestGoreleaserConfig checks the release matrix and the reproducibility
// and provenance settings the operators rely on.
func TestGoreleaserConfig(t *testing.T) {
	c := loadGoreleaser(t)
	b := c.Builds[0]
	if b.Main != "./cmd/stellaops-cli" || b.Binary != "stellaops-cli" {
		t.Errorf("build main %q binary %q", b.Main, b.Binary)
	}
	for _, os := range []string{"linux", "darwin", "windows"} {
		if !slices.Contains(b.Goos, os) {
			t.Errorf("goos lacks %s", os)
		}
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if !slices.Contains(b.Goarch, arch) {
			t.Errorf("goarch lacks %s", arch)
		}
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") {
		t.Error("builds are not CGO_ENABLED=0")
	}
	if !slices.Contains(b.Flags, "-trimpath") {
		t.Error("builds lack -trimpath")
	}
	if !strings.Contains(b.ModTimestamp, "CommitTimestamp") {
		t.Errorf("mod_timestamp %q is not the commit's", b.ModTimestamp)
	}
	vars := buildinfoVars(t)
	set := map[string]bool{}
	for _, m := range xflagRe.FindAllStringSubmatch(strings.Join(b.Ldflags, " "), -1) {
		if m[1] != buildinfoPkg || !slices.Contains(vars, m[2]) {
			t.Errorf("ldflags set %s.%s, which is not a variable of %s (%v)", m[1], m[2], buildinfoPkg, vars)
		}
		set[m[2]] = true
	}
	for _, v := range []string{"version", "commit", "date"} {
		if !set[v] {
			t.Errorf("ldflags do not set buildinfo.%s", v)
		}
	}

	var srcs []string
	for _, f := range c.Archives[0].Files {
		srcs = append(srcs, f.Src)
	}
	for _, want := range []string{"README.md", "LICENSE", "man/*.1", "completions/*"} {
		if !slices.Contains(srcs, want) {
			t.Errorf("archives do not carry %s (files: %v)", want, srcs)
		}
	}
	for _, src := range srcs {
		matches, err := filepath.Glob(repoPath(filepath.FromSlash(src)))
		if err != nil || len(matches) == 0 {
			t.Errorf("archive file %s matches nothing in the repository", src)
		}
	}
	if c.Checksum.NameTemplate == "" {
		t.Error("no checksum file")
	}
	signed := false
	for _, s := range c.Signs {
		if s.Cmd == "cosign" && s.Artifacts == "checksum" && slices.Contains(s.Args, "sign-blob") {
			signed = true
		}
	}
	if !signed {
		t.Error("the checksum file is not signed with cosign sign-blob")
	}
}

func TestVersionOutput(t *testing.T) {
	flagOut, _, code := runCLI(t, "--version")
	if code != 0 {
		t.Fatalf("--version: exit %d", code)
	}
	cmdOut, _, code := runCLI(t, "version")
	if code != 0 {
		t.Fatalf("version: exit %d", code)
	}
	if flagOut != cmdOut {
		t.Errorf("--version and version differ:\n%s\n%s", flagOut, cmdOut)
	}
	for _, want := range []string{"stellaops-cli ", "\ncommit: ", "\nbuilt: ", "\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(cmdOut, want) {
			t.Errorf("version output lacks %q:\n%s", want, cmdOut)
		}
	}

	jsonOut, _, code := runCLI(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("version -o json: exit %d", code)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &v); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, jsonOut)
	}
	for _, k := range []string{"version", "commit", "date", "goVersion", "platform"} {
		if s, _ := v[k].(string); s == "" {
			t.Errorf("version -o json: %s missing or empty: %s", k, jsonOut)
		}
	}
	if v["schemaVersion"] != float64(1) || v["goVersion"] != runtime.Version() {
		t.Errorf("version -o json: %s", jsonOut)
	}
}

// TestReleaseLdflags builds the binary with goreleaser.yaml's ldflags and
// checks that version, commit and date reach "--version" and
// "version -o json".
func TestReleaseLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	values := map[string]string{
		"{{ .Version }}":    "1.2.3",
		"{{ .FullCommit }}": "0123456789abcdef0123456789abcdef01234567",
		"{{ .CommitDate }}": "2026-03-15T10:00:00Z",
	}
	ldflags := strings.Join(loadGoreleaser(t).Builds[0].Ldflags, " ")
	for k, v := range values {
		ldflags = strings.ReplaceAll(ldflags, k, v)
	}
	bin := filepath.Join(t.TempDir(), "stellaops-cli")
	build := exec.Command(gobin, "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/stellaops-cli")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "stellaops-cli 1.2.3\ncommit: 0123456789abcdef0123456789abcdef01234567\nbuilt: 2026-03-15T10:00:00Z\ngo: " +
		runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if string(out) != want {
		t.Errorf("--version:\n got %q\nwant %q", out, want)
	}
	out, err = exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v["version"] != "1.2.3" || v["commit"] != values["{{ .FullCommit }}"] || v["date"] != values["{{ .CommitDate }}"] {
		t.Errorf("version -o json: %s", out)
	}
}
