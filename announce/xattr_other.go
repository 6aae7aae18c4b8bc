//go:build !linux

package announce

// getAttr returns nil: extended attributes are used on Linux only.
func getAttr(path, name string) []byte { return nil }

// setAttr does nothing: extended attributes are used on Linux only.
func setAttr(path, name string, value []byte) {}
