//go:build !unix

package stages

import "time"

// processCPU is not measured here; benchmarks then omit MB/cpu-s.
func processCPU() time.Duration { return 0 }
