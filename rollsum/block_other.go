//go:build !amd64 || !gc || noasm

package rollsum

// vecPrefix returns m = 0: there is no vector code in this build.
func vecPrefix([]byte) (m int, sum, weighted uint32) { return 0, 0, 0 }

// hasVec is false: there is no vector code in this build.
var hasVec = false
