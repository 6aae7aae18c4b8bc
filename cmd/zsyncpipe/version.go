package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/zsyncpipe/zsyncpipe/simd"
)

// cmdVersion implements "zsyncpipe version".
func cmdVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "version prints the version of zsyncpipe, the Go release it was built with,\nand whether MD5 runs on the CPU's vector lanes.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version", "no arguments expected")
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	lanes := "no"
	if simd.Available() {
		lanes = "yes"
	}
	fmt.Fprintf(e.stdout, "zsyncpipe %s %s %s/%s (md5 vector lanes: %s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, lanes)
	return nil
}
