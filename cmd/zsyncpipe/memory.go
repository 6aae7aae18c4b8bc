package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"runtime/metrics"

	"github.com/dustin/go-humanize"
)

// printMemory writes one line on the memory of the process so far: its
// peak resident set (where the system reports it), what the collector
// found live at its last run, and the GOGC it runs with ("Memory budget"
// in docs/performance.md says what the parts are).
func printMemory(w io.Writer) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	rss := "unknown"
	if n := peakRSS(); n > 0 {
		rss = humanize.IBytes(uint64(n))
	}
	held := s[1].Value.Uint64() - s[2].Value.Uint64()
	fmt.Fprintf(w, "memory: peak RSS %s; the Go runtime holds %s, the heap had %s live at the last collection; GOGC %d\n",
		rss, humanize.IBytes(held), humanize.IBytes(s[0].Value.Uint64()), gogc)
}
