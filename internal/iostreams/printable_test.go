package iostreams

import "testing"

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, text, line string }{
		{"mirror/index.json", "mirror/index.json", "mirror/index.json"},
		{"mirror/\x1b]0;owned\x07.json", `mirror/\x1b]0;owned\a.json`, `mirror/\x1b]0;owned\a.json`},
		{"mirror/\xff\xfe.json", `mirror/\xff\xfe.json`, `mirror/\xff\xfe.json`},
		{"caf\u00e9 \u202eevil", `café \u202eevil`, `café \u202eevil`},
		{"a\u0085b\x7f", `a\u0085b\x7f`, `a\u0085b\x7f`},
		{"two\nlines\tand a tab", "two\nlines\tand a tab", `two\nlines` + "\tand a tab"},
		{"x\r\nverified: export 1", `x\r` + "\nverified: export 1", `x\r\nverified: export 1`},
		{"\uFFFD is a character", "\uFFFD is a character", "\uFFFD is a character"},
	} {
		if got := Printable(tt.in); got != tt.text {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if got := PrintableLine(tt.in); got != tt.line {
			t.Errorf("PrintableLine(%q) = %q, want %q", tt.in, got, tt.line)
		}
	}
}
