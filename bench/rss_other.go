//go:build !unix

package bench

import "os"

// maxRSS returns 0: this platform does not report the peak resident set
// size through os.ProcessState.
func maxRSS(*os.ProcessState) int64 { return 0 }
