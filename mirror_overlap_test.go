package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// TestMirrorHoldReleasedInParallel checks that the files held while the
// scan reads local files are renamed by several goroutines when the hold
// ends, every one of them, and none before.
func TestMirrorHoldReleasedInParallel(t *testing.T) {
	dst := t.TempDir()
	meta := filepath.Join(dst, MirrorStateDir)
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var now, most int
	m := &mirrorRun{dir: dst, meta: meta, st: &mirrorState{Files: map[string]fileState{}}, local: map[string]os.FileInfo{},
		opts: MirrorOptions{NoFsync: true, hook: func(ev string, paths []string) {
			if ev != "rename" {
				return
			}
			mu.Lock()
			now++
			most = max(most, now)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			now--
			mu.Unlock()
		}}}
	m.hold(true)
	const n = 16
	for i := range n {
		rel := fmt.Sprintf("f%02d.txt", i)
		tmp := filepath.Join(dst, "."+rel+tmpSuffix)
		if err := os.WriteFile(tmp, []byte(rel), 0o600); err != nil {
			t.Fatal(err)
		}
		m.verified(&fileJob{e: &treeindex.Entry{Path: rel, Type: treeindex.File, Mode: 0o644, Size: int64(len(rel))}, tmp: tmp})
	}
	if most > 0 {
		t.Fatalf("%d files renamed while held", most)
	}
	m.hold(false)
	for i := range n {
		rel := fmt.Sprintf("f%02d.txt", i)
		if b, err := os.ReadFile(filepath.Join(dst, rel)); err != nil || string(b) != rel {
			t.Errorf("%s: %q, %v", rel, b, err)
		}
	}
	if most < 2 {
		t.Errorf("at most %d renames at once when the hold ended, want several", most)
	}
}

// TestMirrorPhasesEndWithTheirWork checks that the rebuilds' phase ends
// when the last rebuild does, not when the mirror gets to wait for it
// (after the files fetched whole, here slowed by the hook).
func TestMirrorPhasesEndWithTheirWork(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	var big []byte
	for i := range 8 {
		old := treeData(uint64(100+i), 6<<10) // under treeSmall: fetched whole
		treeFile(t, dst, fmt.Sprintf("s/f%02d.txt", i), old, 0o644)
		big = append(big, old...)
		treeFile(t, pub, fmt.Sprintf("s/f%02d.txt", i), treeData(uint64(200+i), 5000), 0o644)
	}
	treeFile(t, dst, "big.bin", treeData(1, 64<<10), 0o644)
	treeFile(t, pub, "big.bin", append(big, treeData(2, 4<<10)...), 0o644)
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	opts := mirrorOpts(url, dst)
	const slow = 300 * time.Millisecond
	opts.hook = func(ev string, paths []string) {
		if ev == "rename" && strings.Contains(filepath.ToSlash(paths[1]), "/s/") {
			time.Sleep(slow)
		}
	}
	sum, err := Mirror(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	ph := phasesByName(sum)
	rb := ph["rebuild"]
	last := max(ph["fetch whole"].End, ph["place held"].End)
	if rb.Name == "" || last < slow {
		t.Fatalf("no rebuild, or the files fetched whole were not slowed: %+v", sum.Phases)
	}
	if rb.End > last-slow/2 {
		t.Errorf("the rebuild phase ends at %v, the files fetched whole at %v: it should end with its one rebuild, well before them", rb.End, last)
	}
	if sum.Reused < int64(len(big)) {
		t.Errorf("reused %d bytes, want at least %d", sum.Reused, len(big))
	}
}

// TestMirrorStateEncode checks that the state is written as json.Marshal
// writes it, byte for byte: paths that need escaping (quotes, control
// characters, HTML characters, invalid UTF-8, U+2028) and those that do
// not, an empty state, a state without files.
func TestMirrorStateEncode(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "/", ".", "-", "_", " ", "\"", "\\", "<", ">", "&", "\x00", "\x1f", "\x7f", "\xff", "é", "\u2028", "😀"}
	for i := range 50 {
		st := &mirrorState{Version: mirrorStateVersion, URL: "http://example.com/tree/?a=<b>&c", Generation: uint64(i)}
		if i%2 == 1 {
			st.IndexModified = time.Date(2026, 12, 2, 11, 0, i, i*1000, time.UTC)
		}
		switch i {
		case 0: // no map
		case 1:
			st.Files = map[string]fileState{}
		default:
			st.Files = map[string]fileState{}
			for range r.IntN(200) {
				var k strings.Builder
				for range 1 + r.IntN(30) {
					if r.IntN(4) == 0 {
						k.WriteString(alphabet[r.IntN(len(alphabet))])
					} else {
						k.WriteString(alphabet[r.IntN(6)])
					}
				}
				st.Files[k.String()] = fileState{Size: r.Int64N(1 << 40), MTime: r.Int64() - 1<<62, SHA256: fmt.Sprintf("%064x", r.Uint64())}
			}
		}
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("state %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func BenchmarkMirrorStateEncode(b *testing.B) {
	st := &mirrorState{Version: mirrorStateVersion, URL: "http://127.0.0.1/", Files: map[string]fileState{}}
	for i := range 10700 {
		st.Files[fmt.Sprintf("src/cmd/compile/internal/pkg%d/file%d.go", i/20, i)] = fileState{Size: int64(i * 100), MTime: 1700000000000000000 + int64(i), SHA256: fmt.Sprintf("%064x", i)}
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			st.encode()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(st)
		}
	})
}

// TestMirrorFinish checks the end of a run, which removes the extra
// paths and sets the directories' attributes several at once: every
// extra file and directory is gone, every directory of the index (some
// read-only, at several depths) has its mode and mtime, and the count of
// deleted files is right.
func TestMirrorFinish(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	extra := 0
	for i := range 12 {
		for j := range 5 {
			rel := fmt.Sprintf("d%d/e%d/x%02d.txt", i%4, i, j)
			treeFile(t, pub, rel, treeData(uint64(i*10+j), 100), 0o644)
			treeFile(t, dst, rel, treeData(uint64(i*10+j), 100), 0o644)
			treeFile(t, dst, fmt.Sprintf("d%d/e%d/gone%02d.txt", i%4, i, j), []byte("extra"), 0o644)
			treeFile(t, dst, fmt.Sprintf("old%d/sub/gone%02d.txt", i, j), []byte("extra"), 0o644)
			extra += 2
		}
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	modes := []os.FileMode{0o555, 0o755, 0o700, 0o550}
	var dirs []string
	filepath.WalkDir(pub, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != pub {
			dirs = append(dirs, p)
		}
		return err
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i], modes[i%len(modes)]); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dirs[i], mt.Add(time.Duration(i)*time.Hour), mt.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, root := range []string{pub, dst} {
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					os.Chmod(p, 0o755)
				}
				return nil
			})
		}
	})
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	opts := mirrorOpts(url, dst)
	opts.Delete = true
	sum, err := Mirror(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Deleted != extra {
		t.Errorf("%d files deleted, want %d", sum.Deleted, extra)
	}
}

// TestMirrorEarlyFetchesAfterScanStarts checks that the files fetched
// whole beside the scan start once the scan has started (its setup done),
// not with the last control file.
func TestMirrorEarlyFetchesAfterScanStarts(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	var big []byte
	for i := range 30 {
		old := treeData(uint64(100+i), 6<<10)
		treeFile(t, dst, fmt.Sprintf("s%d/f%02d.txt", i%3, i), old, 0o644)
		big = append(big, old...)
		treeFile(t, pub, fmt.Sprintf("s%d/f%02d.txt", i%3, i), treeData(uint64(200+i), 5000), 0o644)
		treeFile(t, pub, fmt.Sprintf("n%d/g%02d.txt", i%3, i), treeData(uint64(300+i), 3000), 0o644)
	}
	// Many local files make the scan's setup (its seeds) take a while.
	for i := range 800 {
		d := treeData(uint64(1000+i), 64)
		treeFile(t, dst, fmt.Sprintf("k%d/k%04d.txt", i%10, i), d, 0o644)
		treeFile(t, pub, fmt.Sprintf("k%d/k%04d.txt", i%10, i), d, 0o644)
	}
	for i := range 4 {
		treeFile(t, dst, fmt.Sprintf("b/big%d.bin", i), treeData(uint64(i), 64<<10), 0o644)
		treeFile(t, pub, fmt.Sprintf("b/big%d.bin", i), append(big[i*1000:], treeData(uint64(10+i), 4<<10)...), 0o644)
	}
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	ph := phasesByName(sum)
	scan, fetch := ph["scan"], ph["fetch whole"]
	if scan.Name == "" || fetch.Name == "" {
		t.Fatalf("no scan or no early fetches: %+v", sum.Phases)
	}
	if fetch.Start < scan.Start {
		t.Errorf("the early fetches started at %v, before the scan at %v", fetch.Start, scan.Start)
	}
}

// TestMirrorReadyPartNoControl checks that a file an interrupted run left
// complete in the parts directory is taken without its control file
// being fetched (prefetchControls reads the parts directory once). The
// other file is rebuilt from its old version (its control file fetched
// once) or, on a first copy (no local data), fetched whole without it.
func TestMirrorReadyPartNoControl(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old      bool // a/other.bin has an old version in DIR
		controls int  // fetches of its control file
	}{
		{"old version", true, 1},
		{"first copy", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, dst := t.TempDir(), t.TempDir()
			data := treeData(7, 64<<10)
			treeFile(t, pub, "a/big.bin", data, 0o644)
			treeFile(t, pub, "a/other.bin", treeData(8, 64<<10), 0o644)
			publishTree(t, pub, 1)
			if tc.old {
				treeFile(t, dst, "a/other.bin", treeData(9, 64<<10), 0o644)
			}
			parts := filepath.Join(dst, MirrorStateDir, "parts")
			if err := os.MkdirAll(parts, 0o755); err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(data)
			if err := os.WriteFile(filepath.Join(parts, hex.EncodeToString(h[:])), data, 0o644); err != nil {
				t.Fatal(err)
			}
			url, asked := countingServer(t, pub)
			sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			if n := asked("/" + treeindex.ControlPath("a/big.bin", false)); n != 0 {
				t.Errorf("the control file of a/big.bin, complete in the parts directory, was fetched %d times", n)
			}
			if n := asked("/" + treeindex.ControlPath("a/other.bin", false)); n != tc.controls {
				t.Errorf("the control file of a/other.bin was fetched %d times, want %d", n, tc.controls)
			}
			if sum.Fetched != 64<<10 {
				t.Errorf("%d bytes fetched, want %d (a/other.bin only)", sum.Fetched, 64<<10)
			}
		})
	}
}

// phasesByName returns a run's phases by name (the last of each name).
func phasesByName(sum *MirrorSummary) map[string]MirrorPhase {
	ph := map[string]MirrorPhase{}
	for _, p := range sum.Phases {
		ph[p.Name] = p
	}
	return ph
}

// TestMirrorFirstCopyRebuildsLargeFiles checks that a first copy (no
// local data) fetches a file up to the limit whole, without its control
// file, and still rebuilds a larger one from its control file, so that an
// interrupted first copy can resume it.
func TestMirrorFirstCopyRebuildsLargeFiles(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	treeFile(t, pub, "a/small.bin", treeData(1, 64<<10), 0o644)
	treeFile(t, pub, "a/large.bin", treeData(2, 256<<10), 0o644)
	publishTree(t, pub, 1)
	url, asked := countingServer(t, pub)
	o := mirrorOpts(url, dst)
	o.wholeMax = 128 << 10
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	for rel, want := range map[string]int{"a/small.bin": 0, "a/large.bin": 1} {
		if n := asked("/" + treeindex.ControlPath(rel, false)); n != want {
			t.Errorf("the control file of %s was fetched %d times, want %d", rel, n, want)
		}
	}
	if sum.New != 2 || sum.Fetched != 320<<10 {
		t.Errorf("%d new files, %d bytes fetched; want 2 and %d", sum.New, sum.Fetched, 320<<10)
	}
}

// countingServer serves the directory pub over HTTP for the test and
// returns its URL and how many requests asked for a path so far.
func countingServer(t *testing.T, pub string) (url string, asked func(path string) int) {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	fsrv := http.FileServer(http.Dir(pub))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.URL.Path]++
		mu.Unlock()
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/", func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[path]
	}
}
