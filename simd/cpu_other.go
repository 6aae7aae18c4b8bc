//go:build !amd64 || !gc || noasm || appengine

package simd

// lanesPerSet is the number of hashers kept per server. md5-simd defines
// Lanes only where it has assembly (amd64); elsewhere its server is a
// crypto/md5 fallback that cpuHasLanes keeps unused, and the figure only
// sizes the (unused) lane sets alike on every platform.
const lanesPerSet = 16

// cpuHasLanes reports false: md5-simd has no vector code for this build.
func cpuHasLanes() bool { return false }
