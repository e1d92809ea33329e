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
	if key, ok := asciiFoldKey(name); ok {
		return key
	}
	return norm.NFC.String(cases.Fold().String(norm.NFD.String(name)))
}

// asciiFoldKey is foldKey for an ASCII name, where normalisation changes
// nothing and case folding only lowers A to Z; the name itself is returned
// when it has no upper case letter. ok is false for other names.
func asciiFoldKey(name string) (key string, ok bool) {
	upper := false
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= utf8.RuneSelf:
			return "", false
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if !upper {
		return name, true
	}
	return strings.ToLower(name), true
}

// Flags of a name in a nameSet.
const (
	// nameDir: the name is a folder, named by an entry or implied by
	// the names below it.
	nameDir uint8 = 1 << iota
	// nameExplicit: an entry of the archive has the name.
	nameExplicit
)

// nameSet tracks the entries of one archive and their implied parent
// folders, to refuse duplicates, type conflicts and names that collide by
// case or normalisation. It holds one small map entry per name, keyed by
// its fold key, which for most names is the name itself; the spelling of
// a name is kept apart only where it differs from its key.
type nameSet struct {
	flags    map[string]uint8
	spelling map[string]string
	// lastFolder is the folder of the last name added: its own folders
	// are known to be folders already, so the next name in the same
	// folder need not check them again.
	lastFolder string
}

func newNameSet() *nameSet {
	return &nameSet{flags: map[string]uint8{}, spelling: map[string]string{}}
}

// lookup returns the flags of name and its key (no flags for a name not
// known yet), or an error reason if another spelling holds the key.
func (s *nameSet) lookup(name string) (flags uint8, key string, reason string) {
	key = foldKey(name)
	flags, ok := s.flags[key]
	if !ok {
		return 0, key, ""
	}
	spelled := key
	if sp, ok := s.spelling[key]; ok {
		spelled = sp
	}
	if spelled != name {
		return flags, key, "collides with " + quoteName(spelled) + " on file systems that ignore case or Unicode normalisation"
	}
	return flags, key, ""
}

// set records the flags of name under its key.
func (s *nameSet) set(name, key string, flags uint8) {
	if _, known := s.flags[key]; !known && key != name {
		s.spelling[key] = name
	}
	s.flags[key] = flags
}

// add records a checked name and returns why it cannot be added, or "".
func (s *nameSet) add(name string, dir bool) string {
	folder := ""
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		folder = name[:i]
	}
	if folder != "" && folder != s.lastFolder {
		if reason := s.addFolders(name); reason != "" {
			return reason
		}
	}
	flags, key, reason := s.lookup(name)
	if reason != "" {
		return reason
	}
	switch isDir := flags&nameDir != 0; {
	case isDir && !dir:
		return "regular file with the name of a folder"
	case flags != 0 && !isDir && dir:
		return "folder with the name of a regular file"
	case flags&nameExplicit != 0:
		return "duplicate entry"
	}
	flags = nameExplicit
	if dir {
		flags |= nameDir
	}
	s.set(name, key, flags)
	s.lastFolder = folder
	return ""
}

// addFolders records the folders name's path implies.
func (s *nameSet) addFolders(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		flags, key, reason := s.lookup(parent)
		if reason != "" {
			return "folder " + quoteName(parent) + " " + reason
		}
		if flags&nameExplicit != 0 && flags&nameDir == 0 {
			return "is inside " + quoteName(parent) + ", which is a regular file"
		}
		if flags&nameDir == 0 {
			s.set(parent, key, flags|nameDir)
		}
	}
	return ""
}
