// Package cpus says how many goroutines keep the machine's cores busy.
package cpus

import (
	"runtime"

	"github.com/klauspost/cpuid/v2"
)

// Cores returns the number of physical CPU cores reported by
// github.com/klauspost/cpuid/v2, or runtime.NumCPU() when that is unknown,
// capped by runtime.GOMAXPROCS(0). It is at least 1.
func Cores() int {
	n := cpuid.CPU.PhysicalCores
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return max(min(n, runtime.GOMAXPROCS(0)), 1)
}
