//go:build amd64 && gc && !noasm && !appengine

package simd

import (
	"github.com/klauspost/cpuid/v2"
	md5simd "github.com/minio/md5-simd"
)

// lanesPerSet is the number of md5-simd hashers kept per server: one per
// AVX-512 lane, so that a full batch fills every lane.
const lanesPerSet = md5simd.Lanes

// cpuHasLanes reports whether md5-simd runs its vector lanes on this CPU.
// md5-simd v1.1.2 requires AVX2 (two 8-lane halves) and uses AVX-512 (16
// lanes in one pass) when AVX512F and AVX512DQ are present as well; without
// AVX2 it silently hashes with crypto/md5. Every CPU with AVX512F+DQ has
// AVX2, so AVX2 is the one flag that decides.
func cpuHasLanes() bool {
	return cpuid.CPU.Has(cpuid.AVX2)
}
