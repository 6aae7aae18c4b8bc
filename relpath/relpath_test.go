package relpath

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := []string{"a", "a/b", "dir/file.tar", "é/ü", "a..b", ".hidden/x", "a b/c"}
	for _, p := range good {
		if err := Check(p); err != nil {
			t.Errorf("Check(%q) = %v, want nil", p, err)
		}
	}
	bad := []string{"", "/a", "../a", "a/../b", "a/..", ".", "./a", "a//b", "a/", "a\\b",
		"a\x00b", "a\nb", "a\x7fb", "\xff", strings.Repeat("a", MaxLen+1)}
	for _, p := range bad {
		err := Check(p)
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("Check(%q) = %v, want ErrUnsafe", p, err)
		}
	}
}

func TestJoin(t *testing.T) {
	got, err := Join("/root", "a/b")
	if err != nil || got != filepath.Join("/root", "a", "b") {
		t.Fatalf("Join = %q, %v", got, err)
	}
	if _, err := Join("/root", "../etc/passwd"); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("Join(../etc/passwd) = %v, want ErrUnsafe", err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "/abs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Check(p) != nil {
			return
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			t.Fatalf("Check accepted %q, which is not local", p)
		}
		if filepath.ToSlash(filepath.Clean(filepath.FromSlash(p))) != p {
			t.Fatalf("Check accepted unclean %q", p)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"a.bin", "go1.26.8.tar", "..x", ".hidden", "a b"} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "/etc/passwd", "../x", `a\b`, "a\x00b", "a/"} {
		if err := CheckName(name); !errors.Is(err, ErrUnsafe) {
			t.Errorf("CheckName(%q) = %v, want ErrUnsafe", name, err)
		}
	}
}
