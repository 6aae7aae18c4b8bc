//go:build !amd64 || !gc || noasm

package stages

// rollSumsVec rolls no window: there is no vector code in this build.
func rollSumsVec(_, _ []byte, _ []uint32, a, b, _, _ uint32) (int, uint32, uint32) {
	return 0, a, b
}

// probe2Vec probes no position: there is no vector code in this build.
func probe2Vec([]uint32, []uint32, *index, uint64) (m, i int) { return 0, 0 }

// probe1Vec probes no position: there is no vector code in this build.
func probe1Vec([]uint32, *index) (m, i int) { return 0, 0 }

// hasAVX2 is false: there is no vector code in this build.
var hasAVX2 = false
