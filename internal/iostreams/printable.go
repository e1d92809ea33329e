package iostreams

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Printable returns s with what a terminal would act on instead of
// showing written as Go escapes: control characters other than tab and
// newline (C0, DEL, C1), bidirectional formatting characters, and invalid
// UTF-8. Names from a hostile bundle (a file called "\x1b]0;owned\a.json")
// are printed in messages; this keeps them from retitling the terminal,
// moving the cursor or reordering the text around them.
func Printable(s string) string { return printable(s, false) }

// PrintableLine is Printable for text that must stay on one line (a
// report row naming a file): newlines are escaped too.
func PrintableLine(s string) string { return printable(s, true) }

func printable(s string, oneLine bool) string {
	clean := true
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") || unsafeRune(r, oneLine) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case unsafeRune(r, oneLine):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune, oneLine bool) bool {
	switch {
	case r == '\t' || (r == '\n' && !oneLine):
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f || r == 0x061c:
		return true
	}
	return false
}
