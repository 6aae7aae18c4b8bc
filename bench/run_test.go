package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// TestMain lets the test binary serve as zsyncpipe's child process, as the
// zsyncpipe command does with its bench-child sub-command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ChildCommand {
		if err := RunChild(context.Background(), os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// zsyncWanted reports whether zsync's columns must be present: zsync is
// installed, or CI is set (then its absence fails the test).
func zsyncWanted(t *testing.T) bool {
	t.Helper()
	_, err1 := testtool.Find("zsync")
	_, err2 := testtool.Find("zsyncmake")
	if err := errors.Join(err1, err2); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("zsync is not installed, and CI is set: %v", err)
		}
		return false
	}
	return true
}

// sharedReport runs the benchmark once for the tests that read its report.
func runSmall(t *testing.T) *Report {
	t.Helper()
	dir := t.TempDir()
	c, err := GenerateRandom(dir, 42, 2<<20, Edits{Inserts: 2, Deletes: 2, Overwrites: 2, Moves: 2, MinLen: 100, MaxLen: 3000})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log bytes.Buffer
	rep, err := Run(ctx, Options{
		Corpus:     c,
		BlockSizes: []int{1024, 4096},
		WorkDir:    filepath.Join(dir, "work"),
		Log:        &log,
	})
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log.String())
	}
	return rep
}

func TestRun(t *testing.T) {
	wantZsync := zsyncWanted(t)
	rep := runSmall(t)
	fi, err := os.Stat(rep.Corpus.New)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewSize != fi.Size() {
		t.Errorf("NewSize %d, want %d", rep.NewSize, fi.Size())
	}
	if rep.Floor.Hash <= 0 || rep.Floor.CopyHash <= 0 || rep.Floor.CopyHashMBps <= 0 || rep.Floor.Durable <= 0 || rep.Floor.DurableMBps <= 0 || rep.Floor.Disk <= 0 || rep.Floor.DiskMBps <= 0 || !slices.Contains(DiskMethods(), rep.Floor.DiskMethod) {
		t.Errorf("floor not measured: %+v", rep.Floor)
	}
	tools := []string{ToolZsyncpipe}
	if wantZsync {
		tools = append(tools, ToolZsync)
	} else {
		t.Log("zsync is not installed: its columns are not checked")
	}
	if len(rep.Results) != 2*len(tools) {
		t.Fatalf("%d results, want %d: %+v", len(rep.Results), 2*len(tools), rep.Results)
	}
	for _, bs := range []int{1024, 4096} {
		for _, tool := range tools {
			var r *Result
			for i := range rep.Results {
				if rep.Results[i].Tool == tool && rep.Results[i].BlockSize == bs {
					r = &rep.Results[i]
				}
			}
			if r == nil {
				t.Errorf("no result for %s at %d", tool, bs)
				continue
			}
			checkResult(t, rep, r)
		}
	}
	for _, tool := range tools {
		if _, ok := rep.Best[tool]; !ok {
			t.Errorf("no best block size for %s", tool)
		}
	}
	// Small blocks find more of the few small edits: at 1 KiB more of the
	// target is reused than at 4 KiB.
	for _, tool := range tools {
		var small, large Result
		for _, r := range rep.Results {
			if r.Tool == tool && r.BlockSize == 1024 {
				small = r
			} else if r.Tool == tool {
				large = r
			}
		}
		if small.Reused <= large.Reused {
			t.Errorf("%s reused %d bytes at 1 KiB and %d at 4 KiB; want more at 1 KiB", tool, small.Reused, large.Reused)
		}
	}
}

// checkResult checks that the figures of one result agree with each other
// and with the control file's layout.
func checkResult(t *testing.T, rep *Report, r *Result) {
	t.Helper()
	name := fmt.Sprintf("%s at %d", r.Tool, r.BlockSize)
	if r.Err != "" {
		t.Errorf("%s failed: %s", name, r.Err)
		return
	}
	if r.Reused+r.Fetched < rep.NewSize {
		t.Errorf("%s: reused %d + fetched %d < target %d", name, r.Reused, r.Fetched, rep.NewSize)
	}
	if r.Reused <= 0 || r.Fetched <= 0 || r.ReusedShare <= 0.5 || r.ReusedShare >= 1 {
		t.Errorf("%s: reused %d (%.3f), fetched %d: want both positive and most reused", name, r.Reused, r.ReusedShare, r.Fetched)
	}
	if r.Requests < 1 || r.Ranges < 1 || r.Ranges < r.Requests {
		t.Errorf("%s: %d requests, %d ranges", name, r.Requests, r.Ranges)
	}
	if r.Wire < r.Fetched || r.Downloaded != r.ControlSize+r.Wire {
		t.Errorf("%s: wire %d, fetched %d, control %d, downloaded %d: want wire ≥ fetched and downloaded = control + wire", name, r.Wire, r.Fetched, r.ControlSize, r.Downloaded)
	}
	if r.Make <= 0 || r.Sync <= 0 || r.MakeMBps <= 0 || r.SyncMBps <= 0 || r.SyncVsFloor <= 0 || r.MakeVsFloor <= 0 || r.SyncVsDisk <= 0 {
		t.Errorf("%s: times missing: %+v", name, r)
	}
	if r.MakeMaxRSS < 1<<20 || r.SyncMaxRSS < 1<<20 || r.SyncMaxRSS > 4<<30 {
		t.Errorf("%s: peak RSS make %d, sync %d: not plausible", name, r.MakeMaxRSS, r.SyncMaxRSS)
	}
	// Control size: the header plus one record per block.
	blocks := (rep.NewSize + int64(r.BlockSize) - 1) / int64(r.BlockSize)
	hl := control.DefaultHashLengths(rep.NewSize, r.BlockSize)
	records := blocks * int64(hl.RsumBytes+hl.StrongBytes)
	if hdr := r.ControlSize - records; hdr < 100 || hdr > 600 {
		t.Errorf("%s: control file of %d bytes = %d records of %d bytes + %d: want a header of 100 to 600 bytes", name, r.ControlSize, blocks, hl.RsumBytes+hl.StrongBytes, hdr)
	}
}

func TestRunOutputs(t *testing.T) {
	zsyncWanted(t)
	rep := runSmall(t)
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	text := table.String()
	for _, want := range []string{"corpus " + rep.Corpus.Name, "floor: sha256", "1.0 KiB", "4.0 KiB", "zsyncpipe", "least downloaded by zsyncpipe"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if _, ok := rep.Best[ToolZsync]; ok && !strings.Contains(text, "least downloaded by zsync:") {
		t.Errorf("table lacks zsync's best block size:\n%s", text)
	}
	if !strings.Contains(text, "disk (write+fsync only, "+string(rep.Floor.DiskMethod)+")") {
		t.Errorf("table lacks the disk floor:\n%s", text)
	}
	if _, ok := rep.Best[ToolZsync]; ok && strings.Count(text, "the disk floor: the most any durable tool can be faster than zsync here") != 2 {
		t.Errorf("table lacks zsync's ratio to the disk floor at each block size:\n%s", text)
	}
	// Aligned: every row of the table proper has the same width.
	var widths []int
	sc := bufio.NewScanner(strings.NewReader(text))
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "block") && strings.Contains(line, "downloaded") {
			in = true
		}
		if in && line == "" {
			break
		}
		if in {
			widths = append(widths, len([]rune(line)))
		}
	}
	if len(widths) != 1+len(rep.Results) {
		t.Errorf("table has %d lines, want %d:\n%s", len(widths), 1+len(rep.Results), text)
	}
	for _, w := range widths {
		if w != widths[0] {
			t.Errorf("table rows have widths %v, want one width:\n%s", widths, text)
			break
		}
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if len(back.Results) != len(rep.Results) || back.Results[0] != rep.Results[0] || back.Best[ToolZsyncpipe] != rep.Best[ToolZsyncpipe] {
		t.Errorf("JSON round trip changed the report: %+v", back)
	}

	png := filepath.Join(t.TempDir(), "bench.png")
	if err := rep.WritePlot(png); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Errorf("plot is not a PNG of some size: %d bytes, starts %q", len(b), b[:min(8, len(b))])
	}
}

func TestRunOptionErrors(t *testing.T) {
	ctx := context.Background()
	c, err := Generate(t.TempDir(), KindAppend, 1, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"no corpus":  {},
		"block size": {Corpus: c, BlockSizes: []int{1000}},
		"zsync mode": {Corpus: c, Zsync: ZsyncMode(9)},
	} {
		if _, err := Run(ctx, o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: Run = %v, want ErrOptions", name, err)
		}
	}
	// A binary that is not zsyncpipe fails each step; the run goes on and
	// records the failures.
	rep, err := Run(ctx, Options{Corpus: c, BlockSizes: []int{1024}, Zsync: ZsyncSkip, Binary: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Err == "" {
		t.Errorf("want one failed result, got %+v", rep.Results)
	}
}

func TestCountRanges(t *testing.T) {
	for _, c := range []struct {
		h       string
		n, size int64
	}{
		{"", 0, 0},
		{"bytes=0-99", 1, 100},
		{"bytes=0-99,200-299", 2, 200},
		{"bytes=900-", 1, 100},
		{"bytes=-50", 1, 50},
		{"bytes=950-2000", 1, 50},
		{"bytes=x-y", 1, 0},
	} {
		n, size := countRanges(c.h, 1000)
		if n != c.n || size != c.size {
			t.Errorf("countRanges(%q) = %d, %d; want %d, %d", c.h, n, size, c.n, c.size)
		}
	}
}
