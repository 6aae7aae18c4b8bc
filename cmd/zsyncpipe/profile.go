package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile of the whole command to path (the
// environment variable ZSYNCPIPE_CPUPROFILE, for "go tool pprof") and
// returns the function that ends it; with path empty it does nothing. A
// profile that cannot be started is reported on stderr and the command
// runs without it.
func startProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "zsyncpipe: ZSYNCPIPE_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "zsyncpipe: ZSYNCPIPE_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "zsyncpipe: ZSYNCPIPE_CPUPROFILE: %v\n", err)
		}
	}
}
