// Package relpath validates and resolves the slash-separated relative paths
// that travel between machines: tree-index entries, announcement relPaths and
// control-file names.
//
// A path received from a server or a message is untrusted. Check refuses every
// form that could name a file outside the directory it is resolved in, or a
// file other than the one intended, and Join resolves a checked path below a
// root. The rules are plain functions so that they can be tested on any OS.
package relpath

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// ErrUnsafe is returned (wrapped) for a path that may not be used.
var ErrUnsafe = errors.New("unsafe path")

// MaxLen is the longest path accepted, in bytes.
const MaxLen = 4096

// Check reports whether p is a clean, relative, slash-separated path that
// stays below the directory it is resolved in: not empty, not absolute, no
// empty, "." or ".." element, no backslash, no NUL or other control
// character, valid UTF-8, at most MaxLen bytes. The error names p and the
// reason and wraps ErrUnsafe.
func Check(p string) error {
	if reason := check(p); reason != "" {
		return fmt.Errorf("%q: %s: %w", p, reason, ErrUnsafe)
	}
	return nil
}

func check(p string) string {
	switch {
	case p == "":
		return "empty path"
	case len(p) > MaxLen:
		return fmt.Sprintf("longer than %d bytes", MaxLen)
	case !utf8.ValidString(p):
		return "not valid UTF-8"
	case p[0] == '/':
		return "absolute path"
	case strings.ContainsRune(p, '\\'):
		return "contains a backslash"
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "":
			return "empty path element"
		case ".", "..":
			return fmt.Sprintf("contains a %q element", elem)
		}
	}
	return ""
}

// Join checks p and returns it resolved below root with the OS separator.
func Join(root, p string) (string, error) {
	if err := Check(p); err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(p)), nil
}

// CheckName reports whether name is a plain file name: one path element
// that Check accepts, so no '/' either. The error names it and the reason
// and wraps ErrUnsafe.
func CheckName(name string) error {
	if strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q: contains a slash: %w", name, ErrUnsafe)
	}
	return Check(name)
}
