//go:build !linux

package prefault

// populate does nothing where the platform has no MADV_POPULATE_WRITE.
func populate([]byte) {}
