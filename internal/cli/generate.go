package cli

// The man pages (man/) and shell completion scripts (completions/) are
// generated from this command tree by internal/gendocs; .ci/run checks that
// the committed files are current.
//
//go:generate go run ../gendocs -dir ../..
