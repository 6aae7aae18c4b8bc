//go:build !amd64 || !gc || noasm || appengine

package simd

import "crypto/md5"

// cpuHasX8 reports false: the 8-lane MD4 and MD5 are amd64 assembly.
func cpuHasX8() bool { return false }

// x8 reports false: there is no 8-lane MD4 or MD5 in this build.
func x8(bool, *[8][md5.Size]byte, [][]byte) bool { return false }
