package archive

import (
	"testing"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// TestASCIIFoldKey checks the ASCII shortcut against the full folding.
func TestASCIIFoldKey(t *testing.T) {
	var all []byte
	for c := byte(0); c < 0x80; c++ {
		all = append(all, c)
	}
	for _, name := range []string{string(all), "mirror/vex/a.json", "Mirror/VEX/A.JSON", "MiXeD-Case_1.json", ""} {
		key, ok := asciiFoldKey(name)
		if !ok {
			t.Fatalf("%q: not ASCII", name)
		}
		if want := norm.NFC.String(cases.Fold().String(norm.NFD.String(name))); key != want {
			t.Errorf("asciiFoldKey(%q) = %q, want %q", name, key, want)
		}
	}
	if _, ok := asciiFoldKey("caf\u00e9"); ok {
		t.Error("a non-ASCII name took the shortcut")
	}
}
