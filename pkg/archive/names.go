package archive

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

const (
	maxNameLen      = 4096
	maxComponentLen = 255
)

// checkName validates a slash-separated relative path (without a trailing
// slash) and returns why it is unsafe, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > maxNameLen:
		return "name longer than 4096 bytes"
	case !utf8.ValidString(name):
		return "name is not valid UTF-8"
	case strings.HasPrefix(name, "/"):
		return "absolute name"
	}
	for _, r := range name {
		switch {
		case r == 0:
			return "name contains a NUL byte"
		case r == '\\':
			return "name contains a backslash"
		case r < 0x20 || r == 0x7f:
			return "name contains a control character"
		}
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "":
			return "name has an empty component"
		case c == "..":
			return "name contains \"..\""
		case c == ".":
			return "name contains a \".\" component"
		case len(c) > maxComponentLen:
			return "name component longer than 255 bytes"
		}
	}
	return ""
}

// foldKey returns the key under which two names collide on a file system
// that ignores case (FAT32, exFAT, NTFS, APFS) or Unicode normalisation
// (APFS, HFS+): canonical caseless matching, NFC(fold(NFD(name))).
func foldKey(name string) string {
	return norm.NFC.String(cases.Fold().String(norm.NFD.String(name)))
}

type nameEntry struct {
	name     string
	dir      bool
	explicit bool
}

// nameSet tracks the entries of one archive and their implied parent
// folders, to refuse duplicates, type conflicts and names that collide by
// case or normalisation.
type nameSet struct {
	exact map[string]*nameEntry
	fold  map[string]*nameEntry
}

func newNameSet() *nameSet {
	return &nameSet{exact: map[string]*nameEntry{}, fold: map[string]*nameEntry{}}
}

// lookup returns the entry stored under name's exact spelling or its fold
// key, or an error reason if another spelling already holds the fold key.
func (s *nameSet) lookup(name string) (e *nameEntry, reason string) {
	if e := s.exact[name]; e != nil {
		return e, ""
	}
	key := foldKey(name)
	if other := s.fold[key]; other != nil {
		return nil, "collides with " + quoteName(other.name) + " on file systems that ignore case or Unicode normalisation"
	}
	e = &nameEntry{name: name}
	s.exact[name] = e
	s.fold[key] = e
	return e, ""
}

// add records a checked name and returns why it cannot be added, or "".
func (s *nameSet) add(name string, dir bool) string {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		e, reason := s.lookup(parent)
		if reason != "" {
			return "folder " + quoteName(parent) + " " + reason
		}
		if e.explicit && !e.dir {
			return "is inside " + quoteName(parent) + ", which is a regular file"
		}
		e.dir = true
	}
	isNew := s.exact[name] == nil
	e, reason := s.lookup(name)
	if reason != "" {
		return reason
	}
	if !isNew {
		switch {
		case e.dir && !dir:
			return "regular file with the name of a folder"
		case !e.dir && dir:
			return "folder with the name of a regular file"
		case e.explicit:
			return "duplicate entry"
		}
	}
	e.explicit = true
	e.dir = dir
	return ""
}
