//go:build !linux

package osfile

// reserveDescriptors does nothing: only Linux's table is known to make
// every growth wait.
func reserveDescriptors(int) {}
