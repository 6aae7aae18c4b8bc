//go:build unix

package seedscan

import (
	"bytes"
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// TestRealTree scans a real tree pair as zsyncpipe mirror does, for
// measuring the scan alone: SEEDSCAN_TREES=OLD:NEW:CTL, CTL the published
// .zsyncpipe directory of NEW (zsyncpipe index NEW); the targets are the
// files of NEW with a control file that differ from OLD's. The seeds
// follow SEEDSCAN_POLICY: the mirror's default when empty,
// "scan-unchanged" or "skip-unchanged" (MirrorOptions). SEEDSCAN_WORKERS
// sets Options.Workers; SEEDSCAN_PROF and SEEDSCAN_PROF_EXTEND write CPU
// profiles of Scan and of Extend; SEEDSCAN_EXTEND_REPEAT=N runs Extend N
// more times on copies of the scan's results first. For example, from the module root:
//
//	SEEDSCAN_TREES=/work/data/trees/go1.22.12:/work/data/trees/go1.24.5:/tmp/pub/.zsyncpipe \
//	    go test -run TestRealTree -v ./seedscan
func TestRealTree(t *testing.T) {
	spec := os.Getenv("SEEDSCAN_TREES")
	if spec == "" {
		t.Skip("SEEDSCAN_TREES not set")
	}
	parts := strings.Split(spec, ":")
	oldDir, newDir, ctl := parts[0], parts[1], parts[2]
	files := func(root string) map[string]int64 {
		out := map[string]int64{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				fi, _ := d.Info()
				rel, _ := filepath.Rel(root, p)
				out[rel] = fi.Size()
			}
			return nil
		})
		return out
	}
	oldF, newF := files(oldDir), files(newDir)
	same := func(rel string) bool {
		a, err1 := os.ReadFile(filepath.Join(oldDir, rel))
		b, err2 := os.ReadFile(filepath.Join(newDir, rel))
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	}
	unchanged := map[string]bool{}
	var tnames []string
	for rel := range newF {
		if _, ok := oldF[rel]; ok && same(rel) {
			unchanged[rel] = true
			continue
		}
		if _, err := os.Stat(filepath.Join(ctl, rel+".zsync")); err == nil {
			tnames = append(tnames, rel)
		}
	}
	sort.Strings(tnames)
	var targets []Target
	var blocks int64
	minBS := int64(math.MaxInt64)
	for _, rel := range tnames {
		r, err := os.Open(filepath.Join(ctl, rel+".zsync"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := control.Read(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{Control: f})
		blocks += f.Blocks()
		minBS = min(minBS, int64(f.Blocksize))
	}
	policy := os.Getenv("SEEDSCAN_POLICY")
	var seeds []stages.Seed
	var seedBytes int64
	seen := map[string]bool{}
	add := func(rel string, aligned bool) {
		size, ok := oldF[rel]
		if seen[rel] || !ok || size == 0 {
			return
		}
		seen[rel] = true
		p := filepath.Join(oldDir, rel)
		seeds = append(seeds, stages.Seed{Name: p, R: lazyFile(p), Size: size, Aligned: aligned})
		seedBytes += size
	}
	for _, rel := range tnames {
		add(rel, false)
	}
	var rest []string
	for rel := range oldF {
		rest = append(rest, rel)
	}
	sort.Strings(rest)
	for _, rel := range rest {
		switch {
		case !unchanged[rel] || policy == "scan-unchanged":
			add(rel, false)
		case policy != "skip-unchanged" && oldF[rel] >= 2*minBS:
			add(rel, true)
		}
	}
	t.Logf("%d targets, %d blocks; %d seeds, %d bytes; policy %q", len(targets), blocks, len(seeds), seedBytes, policy)
	ctx := context.Background()
	if pf := os.Getenv("SEEDSCAN_PROF"); pf != "" {
		w, _ := os.Create(pf)
		pprof.StartCPUProfile(w)
		defer pprof.StopCPUProfile()
	}
	cpu := func() float64 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	c0 := cpu()
	t0 := time.Now()
	workers, _ := strconv.Atoi(os.Getenv("SEEDSCAN_WORKERS"))
	ms, err := Scan(ctx, targets, seeds, Options{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	c1 := cpu()
	if pf := os.Getenv("SEEDSCAN_PROF_EXTEND"); pf != "" {
		w, _ := os.Create(pf)
		pprof.StartCPUProfile(w)
		defer pprof.StopCPUProfile()
	}
	if k, _ := strconv.Atoi(os.Getenv("SEEDSCAN_EXTEND_REPEAT")); k > 0 {
		// Extend again on copies of the scan's results, for profiles.
		t0 := time.Now()
		for range k {
			cp := make([]*stages.Matches, len(ms))
			for i, m := range ms {
				cp[i] = stages.NewMatches(m.Blocks())
				for b := range m.Blocks() {
					if s, off, ok := m.Lookup(b); ok {
						cp[i].Set(b, s, off)
					}
				}
			}
			if _, err := Extend(ctx, targets, cp, seeds, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%d extends: %.3f s each", k, time.Since(t0).Seconds()/float64(k))
	}
	n, err := Extend(ctx, targets, ms, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	c2 := cpu()
	var reused int64
	for i, tg := range targets {
		reused += stages.Blueprint(&tg.Control.Header, ms[i]).Reused
	}
	t.Logf("scan %.3f s (cpu %.3f), extend %.3f s (cpu %.3f, %d blocks), reused %d bytes", t1.Sub(t0).Seconds(), c1-c0, t2.Sub(t1).Seconds(), c2-c1, n, reused)
}

// lazyFile opens the file for each read, as the mirror's seeds do.
type lazyFile string

func (p lazyFile) ReadAt(b []byte, off int64) (int, error) { return osfile.ReadAt(string(p), b, off) }
