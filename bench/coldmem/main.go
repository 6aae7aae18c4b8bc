// Command coldmem takes the machine's recently used free memory and holds
// it, so that a program started next gets only memory the system has not
// touched for a while — as on a virtual machine whose host has taken back
// the guest's free memory (virtio-balloon's free page reporting), where
// the first write to such a page faults in the host and costs several
// times what writing a used page does. bench/mirror.sh runs it before each
// timed run with COLDMEM=1, so that rsync and zsyncpipe are measured in
// that state alike (docs/trees-measurements.md, "Where it stands: nineteenth
// session").
//
// Usage: coldmem READY [MS]
//
// It touches anonymous memory 32 MiB at a time until three pieces in a
// row take longer than MS milliseconds (default 100: slower than 320
// MB/s, where used memory takes about 6 ms), writes how much it holds to
// the file READY, and sleeps until killed. It stops at 16 GiB.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

const piece = 32 << 20

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: coldmem READY [MS]")
		os.Exit(2)
	}
	limit := 100 * time.Millisecond
	if len(os.Args) == 3 {
		ms, err := strconv.Atoi(os.Args[2])
		if err != nil || ms <= 0 {
			fmt.Fprintf(os.Stderr, "coldmem: MS must be a positive number of milliseconds, not %q\n", os.Args[2])
			os.Exit(2)
		}
		limit = time.Duration(ms) * time.Millisecond
	}
	var held [][]byte // kept reachable until the process ends
	slow := 0
	for slow < 3 && len(held)*piece < 16<<30 {
		// A fresh span of this size comes straight from the system, not
		// yet touched: the loop below is its first use.
		b := make([]byte, piece)
		t := time.Now()
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 1
		}
		if time.Since(t) > limit {
			slow++
		} else {
			slow = 0
		}
		held = append(held, b)
	}
	msg := fmt.Sprintf("holding %d MiB\n", len(held)*piece>>20)
	if err := os.WriteFile(os.Args[1], []byte(msg), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "coldmem:", err)
		os.Exit(1)
	}
	for {
		time.Sleep(time.Hour)
	}
}
