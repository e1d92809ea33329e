package cli

// The man pages (man/) and shell completion scripts (completions/) are
// generated from this command tree; .ci/run checks that they are current.
//go:generate go run ../gendocs -dir ../..
