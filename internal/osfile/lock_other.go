//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package osfile

import "os"

// lock does nothing: this system has no flock, and the project does not
// claim to support it (see the README's platform list).
func lock(*os.File) error { return nil }
