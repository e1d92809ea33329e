package mirror

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// Shell completion helpers shared by the verbs. They read only small files
// (bounded), never write, and return nothing rather than an error when the
// folder a flag names does not exist yet: a completion must not fail loudly.

// maxCompletionRead bounds the files read for completion descriptions.
const maxCompletionRead = 1 << 20

// exportRootEnv is serve's environment variable for the export root; the
// completions read it when --export-root is not on the command line.
const exportRootEnv = "CONCELIER__MIRROR__EXPORTROOT"

// activeExportEnv pins the active export like --active-export-id.
const activeExportEnv = "CONCELIER__MIRROR__ACTIVEEXPORTID"

// bundlePathExts are the file name extensions a --bundle-path completes
// besides folders: an archive (.tar.zst, .tar.gz) or the first part of a
// split set (NAME.part-0001).
var bundlePathExts = []string{"zst", "gz", "part-0001"}

// completeDomainsFromSource completes --domain with the domain folders of
// the --source tree (CONTRACT §1.1), described by their domain.json
// displayName. Domains already given are left out.
func completeDomainsFromSource(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	src := flagString(cmd, "source")
	if src == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return filterCompletions(sourceDomains(src), given(cmd, "domain"), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeDomainsFromExportRoot completes --domain with the domains of the
// active export of --export-root (or $CONCELIER__MIRROR__EXPORTROOT).
func completeDomainsFromExportRoot(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	root := exportRootFor(cmd)
	if root == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	active := flagString(cmd, "active-export-id")
	if active == "" {
		active = os.Getenv(activeExportEnv)
	}
	return filterCompletions(exportRootDomains(root, active), given(cmd, "domain"), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeExportIDs completes an export id flag with the export folders of
// --export-root (or $CONCELIER__MIRROR__EXPORTROOT), newest first.
func completeExportIDs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	root := exportRootFor(cmd)
	if root == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return filterCompletions(exportIDs(root), nil, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// sourceDomains lists the domain folders of a source tree as completions
// ("id\tdisplay name"), sorted by id.
func sourceDomains(src string) []cobra.Completion {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, e := range entries {
		if !e.IsDir() || !bundle.DomainIDPattern.MatchString(e.Name()) {
			continue
		}
		var doc struct {
			DisplayName string `json:"displayName"`
		}
		readSmallJSON(filepath.Join(src, e.Name(), "domain.json"), &doc)
		out = append(out, describe(e.Name(), doc.DisplayName))
	}
	return out
}

// exportRootDomains lists the domains of the export that serve would
// publish from root (CONTRACT §1.4: active, else latest, else the newest),
// described by their display names from its mirror/index.json.
func exportRootDomains(root, active string) []cobra.Completion {
	id, err := exportroot.ResolveActive(root, active)
	if err != nil {
		return nil
	}
	dir := filepath.Join(root, id)
	names := map[string]string{}
	var idx bundle.Index
	if readSmallJSON(filepath.Join(dir, filepath.FromSlash(bundle.IndexPath)), &idx) {
		for _, d := range idx.Domains {
			names[d.ID] = d.DisplayName
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, bundle.MirrorDir))
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, e := range entries {
		if e.IsDir() && bundle.DomainIDPattern.MatchString(e.Name()) {
			out = append(out, describe(e.Name(), names[e.Name()]))
		}
	}
	return out
}

// exportIDs lists the export folders of root as completions, newest first;
// the one latest points at is described as such.
func exportIDs(root string) []cobra.Completion {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	latest, _ := os.Readlink(filepath.Join(root, exportroot.LatestName))
	var ids []string
	for _, e := range entries {
		if e.IsDir() && exportroot.ValidExportID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	out := make([]cobra.Completion, 0, len(ids))
	for _, id := range ids {
		desc := ""
		if filepath.Clean(latest) == id {
			desc = "latest"
		}
		out = append(out, describe(id, desc))
	}
	return out
}

func describe(value, desc string) cobra.Completion {
	desc = strings.Join(strings.Fields(desc), " ")
	if desc == "" {
		return value
	}
	return cobra.CompletionWithDesc(value, desc)
}

// filterCompletions keeps the completions that start with prefix and are
// not in skip.
func filterCompletions(all []cobra.Completion, skip []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range all {
		value, _, _ := strings.Cut(c, "\t")
		if !strings.HasPrefix(value, prefix) || contains(skip, value) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func exportRootFor(cmd *cobra.Command) string {
	if root := flagString(cmd, "export-root"); root != "" {
		return root
	}
	return os.Getenv(exportRootEnv)
}

func flagString(cmd *cobra.Command, name string) string {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// given returns the values already set for a repeatable string flag.
func given(cmd *cobra.Command, name string) []string {
	v, err := cmd.Flags().GetStringArray(name)
	if err != nil {
		return nil
	}
	return v
}

// readSmallJSON decodes a small JSON file into v and reports success.
func readSmallJSON(path string, v any) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCompletionRead+1))
	if err != nil || len(data) > maxCompletionRead {
		return false
	}
	return json.Unmarshal(data, v) == nil
}
