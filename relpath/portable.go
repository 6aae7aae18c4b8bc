package relpath

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// ErrCollision is returned (wrapped) by CheckCollisions for paths that name
// the same file on a case-insensitive file system.
var ErrCollision = errors.New("paths collide on a case-insensitive file system")

// MaxElemLen is the longest path element Windows and macOS accept, in
// UTF-16 code units (NTFS, APFS and HFS+ all allow 255).
const MaxElemLen = 255

// CheckFor reports whether p can be written below a directory on the
// operating system goos (a runtime.GOOS value): Check, and on "windows"
// CheckWindows as well. Case-insensitive collisions concern a set of paths:
// see CheckCollisions.
func CheckFor(goos, p string) error {
	if goos == "windows" {
		return CheckWindows(p)
	}
	return Check(p)
}

// CheckWindows reports whether p passes Check and names, on Windows, the
// very file it says. It refuses, in any element:
//
//   - a reserved device name — CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM0 to
//     COM9 and LPT0 to LPT9 (also with the superscript digits ¹ ² ³) — in
//     any case, alone or before an extension ("nul.txt", "Com1.tar.gz"):
//     Windows opens the device instead;
//   - a trailing dot or space ("a.", "a "): Windows strips it, so the file
//     written would be "a";
//   - the characters < > : " | ? * (":" would name an NTFS alternate data
//     stream) and backslash (a separator there), and control characters;
//   - an element longer than MaxElemLen UTF-16 units.
//
// The error names p and the reason and wraps ErrUnsafe. Nothing is mapped
// to another name: a name that cannot exist is refused, never renamed.
func CheckWindows(p string) error {
	if err := Check(p); err != nil {
		return err
	}
	for elem := range strings.SplitSeq(p, "/") {
		if reason := checkWindowsElem(elem); reason != "" {
			return fmt.Errorf("%q: element %q %s: %w", p, elem, reason, ErrUnsafe)
		}
	}
	return nil
}

// reserved are the device names of Windows, upper case.
var reserved = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}
	for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"} {
		m["COM"+d] = true
		m["LPT"+d] = true
	}
	return m
}()

func checkWindowsElem(elem string) string {
	if i := strings.IndexAny(elem, `<>:"|?*\`); i >= 0 {
		return fmt.Sprintf("contains %q, which Windows does not allow in names", elem[i:i+1])
	}
	switch elem[len(elem)-1] {
	case '.', ' ':
		return "ends in a dot or a space, which Windows strips"
	}
	base, _, _ := strings.Cut(elem, ".")
	if reserved[strings.ToUpper(strings.TrimRight(base, " "))] {
		return "is a reserved device name on Windows"
	}
	if n := len(utf16.Encode([]rune(elem))); n > MaxElemLen {
		return fmt.Sprintf("is %d UTF-16 units long, more than %d", n, MaxElemLen)
	}
	return ""
}

// CaseInsensitive reports whether the file systems of goos (a runtime.GOOS
// value) are case-insensitive by default: Windows (NTFS) and macOS and iOS
// (APFS and HFS+, which also ignore Unicode normalization). A macOS volume
// formatted case-sensitive, or a case-folding ext4 directory on Linux, is
// not told apart: callers wanting to be safe everywhere check collisions
// on every system.
func CaseInsensitive(goos string) bool {
	switch goos {
	case "windows", "darwin", "ios":
		return true
	}
	return false
}

// FoldKey returns the name under which a case- and normalization-insensitive
// file system sees p: Unicode case folding, then NFC. Two paths with the
// same key name the same file there.
func FoldKey(p string) string {
	return norm.NFC.String(cases.Fold().String(p))
}

// Collisions returns the groups of distinct names among paths, and among
// their directories, that name the same file or directory on a
// case-insensitive file system ("README" and "readme"; "Docs/a" and
// "docs/b", whose directories collide). Each group is sorted, and the
// groups are in the order of their first name. A path given twice is not a
// collision.
func Collisions(paths []string) [][]string {
	byKey := make(map[string][]string)
	var keys []string
	for _, p := range paths {
		for i := 0; i <= len(p); i++ {
			if i < len(p) && p[i] != '/' {
				continue
			}
			name := p[:i]
			k := FoldKey(name)
			names, seen := byKey[k]
			if !seen {
				keys = append(keys, k)
			}
			if !slices.Contains(names, name) {
				byKey[k] = append(names, name)
			}
		}
	}
	var groups [][]string
	for _, k := range keys {
		if names := byKey[k]; len(names) > 1 {
			slices.Sort(names)
			groups = append(groups, names)
		}
	}
	return groups
}

// CheckCollisions returns an error wrapping ErrCollision that names the
// first group of Collisions(paths), or nil when there is none.
func CheckCollisions(paths []string) error {
	groups := Collisions(paths)
	if len(groups) == 0 {
		return nil
	}
	return fmt.Errorf("%q name the same file on Windows and macOS (and %d more such groups): %w", groups[0], len(groups)-1, ErrCollision)
}
