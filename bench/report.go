package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// WriteTable writes the report as an aligned table for people: a heading
// with the corpus, the machine and the floor, one row per tool and block
// size, and the block size that minimises the bytes downloaded.
func (rep *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "corpus %s: old %s, new %s\n", rep.Corpus.Name, humanize.IBytes(uint64(rep.OldSize)), humanize.IBytes(uint64(rep.NewSize)))
	fmt.Fprintf(bw, "machine: %s, %d CPUs, %s; load %.2f before, %.2f after; best of %d run(s); page-cached data\n",
		rep.Platform, rep.CPUs, rep.GoVersion, rep.LoadBefore[0], rep.LoadAfter[0], rep.Runs)
	if rep.ZsyncVersion != "" {
		fmt.Fprintf(bw, "zsync: %s\n", rep.ZsyncVersion)
	}
	fmt.Fprintf(bw, "floor: sha256 %s (%.0f MB/s); copy+sha256 %s (%.0f MB/s); durable (copy+sha256+fsync) %s (%.0f MB/s); disk (write+fsync only, %s) %s (%.0f MB/s)\n",
		seconds(rep.Floor.Hash), rep.Floor.HashMBps, seconds(rep.Floor.CopyHash), rep.Floor.CopyHashMBps,
		seconds(rep.Floor.Durable), rep.Floor.DurableMBps, rep.Floor.DiskMethod, seconds(rep.Floor.Disk), rep.Floor.DiskMBps)
	if rep.NoFsync {
		fmt.Fprint(bw, "sync/floor: against copy+sha256 (zsyncpipe --no-fsync)\n\n")
	} else {
		fmt.Fprint(bw, "sync/floor: zsyncpipe (flushes its result) against the durable floor, zsync (does not) against copy+sha256\n\n")
	}

	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "block\ttool\tcontrol\tmake\tmake MB/s\tmake/floor\tmake RSS\tsync\tsync MB/s\tsync/floor\tsync RSS\treused\tfetched\tranges\treqs\tdownloaded\t")
	for _, r := range rep.Results {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\tfailed: %s\t\n", humanize.IBytes(uint64(r.BlockSize)), r.Tool, oneLine(r.Err))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.1f×\t%s\t%s\t%.0f\t%.1f×\t%s\t%.1f%%\t%s\t%d\t%d\t%s\t\n",
			humanize.IBytes(uint64(r.BlockSize)), r.Tool, humanize.IBytes(uint64(r.ControlSize)),
			seconds(r.Make), r.MakeMBps, r.MakeVsFloor, humanize.IBytes(uint64(r.MakeMaxRSS)),
			seconds(r.Sync), r.SyncMBps, r.SyncVsFloor, humanize.IBytes(uint64(r.SyncMaxRSS)),
			100*r.ReusedShare, humanize.IBytes(uint64(r.Fetched)), r.Ranges, r.Requests,
			humanize.IBytes(uint64(r.Downloaded)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: write table: %w", err)
	}
	for _, tool := range []string{ToolZsyncpipe, ToolZsync} {
		bs, ok := rep.Best[tool]
		if !ok {
			continue
		}
		for _, r := range rep.Results {
			if r.Tool == tool && r.BlockSize == bs {
				fmt.Fprintf(bw, "\nleast downloaded by %s: %s at %s blocks (%.1f%% of the new file)",
					tool, humanize.IBytes(uint64(r.Downloaded)), humanize.IBytes(uint64(bs)),
					100*float64(r.Downloaded)/float64(rep.NewSize))
			}
		}
	}
	for _, r := range rep.Results {
		if r.Err == "" && r.Tool == ToolZsync && r.SyncVsDisk > 0 {
			fmt.Fprintf(bw, "\nzsync's sync at %s blocks is %.1f× the disk floor: the most any durable tool can be faster than zsync here (zsyncpipe here: %.2f× zsync's speed)",
				humanize.IBytes(uint64(r.BlockSize)), r.SyncVsDisk, r.SyncVsDisk/rep.syncVsDisk(ToolZsyncpipe, r.BlockSize))
		}
	}
	fmt.Fprintln(bw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bench: write table: %w", err)
	}
	return nil
}

// syncVsDisk returns the SyncVsDisk of tool at block size bs, or NaN.
func (rep *Report) syncVsDisk(tool string, bs int) float64 {
	for _, r := range rep.Results {
		if r.Tool == tool && r.BlockSize == bs && r.Err == "" && r.SyncVsDisk > 0 {
			return r.SyncVsDisk
		}
	}
	return math.NaN()
}

// WriteJSON writes the report as indented JSON. Durations are nanoseconds.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("bench: write JSON: %w", err)
	}
	return nil
}

// toolColor returns the line colour of the i-th tool: blue for zsyncpipe,
// red for zsync.
func toolColor(i int) color.Color {
	if i == 0 {
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	}
	return color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
}

// seconds formats d in seconds with three decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// oneLine keeps the first line of s.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
