// Command gendocs writes the man pages (man/) and the shell completion
// scripts (completions/) generated from the stellaops-cli command tree.
//
//	go run ./internal/gendocs           regenerate man/ and completions/
//	go run ./internal/gendocs -check    write nothing; exit 1 listing every file
//	                                    that differs, is missing or is extra
//
// It is a development tool: the shipped binary does not contain it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gendocs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "repository root (default: the folder holding go.mod, searched upwards from the working directory)")
	check := fs.Bool("check", false, "write nothing; exit 1 when a generated file differs, is missing or is extra")
	date := fs.String("date", ManDate, "date printed in the man pages (YYYY-MM-DD)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gendocs: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	d, err := time.Parse(time.DateOnly, *date)
	if err != nil {
		fmt.Fprintf(stderr, "gendocs: -date %q: want YYYY-MM-DD\n", *date)
		return 2
	}
	if *dir == "" {
		if *dir, err = moduleRoot(); err != nil {
			fmt.Fprintf(stderr, "gendocs: %v\n", err)
			return 1
		}
	}
	files, err := Generate(d)
	if err != nil {
		fmt.Fprintf(stderr, "gendocs: %v\n", err)
		return 1
	}
	if *check {
		drift, err := Check(*dir, files)
		if err != nil {
			fmt.Fprintf(stderr, "gendocs: %v\n", err)
			return 1
		}
		if len(drift) > 0 {
			for _, d := range drift {
				fmt.Fprintf(stdout, "%s\n", d)
			}
			fmt.Fprintf(stderr, "gendocs: %d generated file(s) out of date; run: go run ./internal/gendocs\n", len(drift))
			return 1
		}
		return 0
	}
	written, removed, err := Write(*dir, files)
	if err != nil {
		fmt.Fprintf(stderr, "gendocs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "gendocs: %d files generated (%d changed, %d removed) under %s\n",
		len(files), written, removed, *dir)
	return 0
}

// moduleRoot returns the nearest folder at or above the working directory
// that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory; pass -dir")
		}
		dir = parent
	}
}
