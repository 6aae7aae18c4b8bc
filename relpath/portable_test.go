package relpath

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCheckWindows(t *testing.T) {
	tests := []struct {
		p      string
		reason string // part of the error; "" for a good path
	}{
		{"a/b.txt", ""},
		{"console/conf.d", ""},
		{"CONNECT", ""},
		{"nully", ""},
		{"com10", ""},
		{"lpt", ""},
		{"a.b.c", ""},
		{".hidden", ""},
		{"é/ü", ""},
		{"CON", "reserved"},
		{"con", "reserved"},
		{"dir/Nul", "reserved"},
		{"nul.txt", "reserved"},
		{"Com1.tar.gz", "reserved"},
		{"LPT9", "reserved"},
		{"com0", "reserved"},
		{"COM¹", "reserved"},
		{"conin$", "reserved"},
		{"PRN /x", "space"},
		{"AUX .txt", "reserved"},
		{"a.", "dot or a space"},
		{"dir./b", "dot or a space"},
		{"a ", "dot or a space"},
		{"a:b", `":"`},
		{"c:/x", `":"`},
		{"file:stream", `":"`},
		{`a<b`, `"<"`},
		{`a"b`, `"\""`},
		{"a|b", `"|"`},
		{"a?", `"?"`},
		{"a*", `"*"`},
		{`a\b`, "backslash"},
		{strings.Repeat("é", MaxElemLen), ""},
		{strings.Repeat("é", MaxElemLen+1), "UTF-16"},
		{strings.Repeat("😀", MaxElemLen/2+1), "UTF-16"}, // surrogate pairs count twice
		{"../x", `".."`},
		{"/abs", "absolute"},
	}
	for _, tt := range tests {
		err := CheckWindows(tt.p)
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("CheckWindows(%q) = %v, want nil", tt.p, err)
		case tt.reason != "" && !errors.Is(err, ErrUnsafe):
			t.Errorf("CheckWindows(%q) = %v, want ErrUnsafe", tt.p, err)
		case tt.reason != "" && !strings.Contains(err.Error(), tt.reason):
			t.Errorf("CheckWindows(%q) = %v, want a reason with %q", tt.p, err, tt.reason)
		}
	}
}

func TestCheckFor(t *testing.T) {
	for _, tt := range []struct {
		goos, p string
		ok      bool
	}{
		{"linux", "CON", true},
		{"linux", "a:b", true},
		{"darwin", "a.", true},
		{"windows", "CON", false},
		{"windows", "a:b", false},
		{"windows", "a/b", true},
		{"linux", "../a", false},
		{"darwin", "a//b", false},
	} {
		if err := CheckFor(tt.goos, tt.p); (err == nil) != tt.ok {
			t.Errorf("CheckFor(%q, %q) = %v, want ok=%v", tt.goos, tt.p, err, tt.ok)
		}
	}
}

func TestCaseInsensitive(t *testing.T) {
	for goos, want := range map[string]bool{"windows": true, "darwin": true, "ios": true, "linux": false, "freebsd": false} {
		if got := CaseInsensitive(goos); got != want {
			t.Errorf("CaseInsensitive(%q) = %v", goos, got)
		}
	}
}

func TestCollisions(t *testing.T) {
	tests := []struct {
		paths []string
		want  [][]string
	}{
		{[]string{"a", "b", "a/c"}, nil},
		{[]string{"a", "a"}, nil},
		{[]string{"README", "readme"}, [][]string{{"README", "readme"}}},
		{[]string{"Docs/a", "docs/b"}, [][]string{{"Docs", "docs"}}},
		{[]string{"x/File", "x/FILE", "x/file", "y"}, [][]string{{"x/FILE", "x/File", "x/file"}}},
		{[]string{"A", "a/b"}, [][]string{{"A", "a"}}},
		// ß folds to ss; K (Kelvin sign) to k; composed é equals e + ◌́.
		{[]string{"straße", "STRASSE"}, [][]string{{"STRASSE", "straße"}}},
		{[]string{"\u212a", "k"}, [][]string{{"k", "\u212a"}}},
		{[]string{"caf\u00e9", "cafe\u0301"}, [][]string{{"cafe\u0301", "caf\u00e9"}}},
		{[]string{"a/B", "A/b"}, [][]string{{"A", "a"}, {"A/b", "a/B"}}},
	}
	for _, tt := range tests {
		got := Collisions(tt.paths)
		if !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("Collisions(%q) = %q, want %q", tt.paths, got, tt.want)
		}
		err := CheckCollisions(tt.paths)
		if (err == nil) != (tt.want == nil) || err != nil && !errors.Is(err, ErrCollision) {
			t.Errorf("CheckCollisions(%q) = %v", tt.paths, err)
		}
	}
}

func ExampleCheckWindows() {
	for _, p := range []string{"docs/readme.txt", "logs/aux.log", "notes."} {
		fmt.Println(CheckWindows(p))
	}
	// Output:
	// <nil>
	// "logs/aux.log": element "aux.log" is a reserved device name on Windows: unsafe path
	// "notes.": element "notes." ends in a dot or a space, which Windows strips: unsafe path
}

func ExampleCollisions() {
	fmt.Println(Collisions([]string{"Makefile", "src/main.c", "makefile", "SRC/util.c"}))
	// Output:
	// [[Makefile makefile] [SRC src]]
}
