package main

import "testing"

// TestEscapeName: names and link targets from an image cannot drive the terminal that
// encfs ls prints to.
func TestEscapeName(t *testing.T) {
	for in, want := range map[string]string{
		"plain.txt":              "plain.txt",
		"café ünïcode":           "café ünïcode",
		"two\nlines":             `two\nlines`,
		"tab\there":              `tab\there`,
		"\x1b[2J\x1b[Hclear":     `\x1b[2J\x1b[Hclear`,
		"back\\slash\x07":        `back\\slash\x07`,
		"bad\xffutf8":            `bad\xffutf8`,
		"c1 control \u0085 next": `c1 control \xc2\x85 next`,
	} {
		if got := escapeName(in); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", in, got, want)
		}
	}
}
