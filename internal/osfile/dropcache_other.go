//go:build !linux

package osfile

func dropCache(string) error { return nil }
