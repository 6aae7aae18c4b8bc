package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSyncControlByURL syncs from a control file given by URL on a loopback
// server: its relative URL resolves against the control file's URL, and -k
// keeps a copy that a second run reuses after a 304 Not Modified.
func TestSyncControlByURL(t *testing.T) {
	f := newFixture(t, 2<<20)
	// Published a minute ago: a Last-Modified in the second of serving is
	// weak, and the kept copy is then dated back so that the next run
	// fetches it again (zsyncpipe.Fetched.Validator).
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(f.control, past, past); err != nil {
		t.Fatal(err)
	}
	var notModified, rangeRequests atomic.Int64
	// served, once set, is the Date the server gives its answers: the time
	// of serving as the client sees it, pinned so that "served in the
	// second of the change" does not depend on how long a run takes.
	var served atomic.Pointer[time.Time]
	files := http.FileServer(http.Dir(filepath.Dir(f.target)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			rangeRequests.Add(1)
		}
		if t := served.Load(); t != nil {
			w.Header().Set("Date", t.UTC().Format(http.TimeFormat))
		}
		rec := &statusRecorder{ResponseWriter: w}
		files.ServeHTTP(rec, r)
		if rec.status == http.StatusNotModified {
			notModified.Add(1)
		}
	}))
	defer srv.Close()

	out := filepath.Join(f.dir, "out.bin")
	keep := filepath.Join(f.dir, "kept.zsync")
	url := srv.URL + "/data.bin.zsync"
	r := mustRun(t, "sync", "-i", f.old, "-o", out, "-k", keep, url)
	sameBytes(t, "output", readFile(t, out), f.newData)
	sameBytes(t, "kept control file", readFile(t, keep), readFile(t, f.control))
	if rangeRequests.Load() == 0 {
		t.Error("no range request reached the server: nothing was fetched over HTTP")
	}
	if !strings.Contains(r.stdout, "fetched") {
		t.Errorf("summary %q lacks the fetched bytes", r.stdout)
	}

	// Again, with the copy kept: the server answers 304 and the copy is
	// used; the output is already complete, so nothing is fetched.
	before := rangeRequests.Load()
	mustRun(t, "sync", "-q", "-o", out, "-k", keep, url)
	if notModified.Load() != 1 {
		t.Errorf("server sent %d Not Modified answers, want 1", notModified.Load())
	}
	if rangeRequests.Load() != before {
		t.Errorf("a sync of an up-to-date file made %d range requests", rangeRequests.Load()-before)
	}
	sameBytes(t, "output after the second sync", readFile(t, out), f.newData)

	// A control file replaced in the second it is served in: its
	// Last-Modified cannot tell a second change in that second apart, so
	// the kept copy is not trusted on a 304 — both runs fetch it whole.
	// (The server's Date stays in that second however long the runs take:
	// on a loaded machine they once ended in the next one, where the
	// Last-Modified is no longer weak and a 304 is right.)
	now := time.Now()
	if err := os.Chtimes(f.control, now, now); err != nil {
		t.Fatal(err)
	}
	served.Store(&now)
	for range 2 {
		mustRun(t, "sync", "-q", "-o", out, "-k", keep, url)
	}
	if notModified.Load() != 1 {
		t.Errorf("control file modified in the second it was served: %d Not Modified answers in all, want still 1", notModified.Load())
	}

	// A control URL that does not exist: a fetch failure, exit 3.
	res := runZ(t, "sync", "--retries", "0", "-o", filepath.Join(f.dir, "x"), srv.URL+"/missing.zsync")
	if res.code != 3 || !strings.Contains(res.stderr, "404") {
		t.Errorf("missing control URL: exit %d, stderr %q; want 3 mentioning 404", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "x")); err == nil {
		t.Error("a failed sync created its output")
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
