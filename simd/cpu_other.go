//go:build !amd64 || !gc || noasm || appengine

package simd

// cpuHasLanes reports false: md5-simd has no vector code for this build.
func cpuHasLanes() bool { return false }
