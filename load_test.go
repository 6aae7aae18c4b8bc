package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// memTransport serves files from memory under a scheme of its own, as an
// sftp transport would from a server, and counts what it is asked.
type memTransport struct {
	files        map[string][]byte // by URL path
	gets, ranges atomic.Int64
}

func (m *memTransport) OpenRanges(ctx context.Context, u *url.URL, size int64) (source.RangeSource, error) {
	m.ranges.Add(1)
	data, ok := m.files[u.Path]
	if !ok || int64(len(data)) != size {
		return nil, errors.New("no such file of that size: " + u.String())
	}
	return source.ReaderAt{R: bytes.NewReader(data)}, nil
}

func (m *memTransport) Get(ctx context.Context, u *url.URL, opts GetOptions) (*Fetched, error) {
	m.gets.Add(1)
	data, ok := m.files[u.Path]
	if !ok {
		return nil, errors.New("no such file: " + u.String())
	}
	if int64(len(data)) > opts.MaxSize {
		return nil, errors.New("too large")
	}
	return &Fetched{Body: data, URL: u}, nil
}

// makeControl makes the control file of target, with the given URLs, and
// returns its bytes.
func makeControl(t *testing.T, target []byte, urls ...string) []byte {
	t.Helper()
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{Filename: "target.bin", URLs: urls, Blocksize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadControlTransport loads a control file and syncs its target
// through a transport given for a scheme of its own, the way an sftp://
// transport plugs in.
func TestLoadControlTransport(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	target := randomBytes(rng, 100_000)
	mem := &memTransport{files: map[string][]byte{"/d/target.bin": target}}
	mem.files["/d/target.bin.zsync"] = makeControl(t, target, "target.bin")
	ts := Transports{"mem": mem}
	ctx := context.Background()

	ctl, err := LoadControl(ctx, "mem://host/d/target.bin.zsync", LoadOptions{Transports: ts})
	if err != nil {
		t.Fatalf("LoadControl: %v", err)
	}
	if ctl.BaseURL != "mem://host/d/" || ctl.Location != "mem://host/d/target.bin.zsync" || ctl.File.Length != int64(len(target)) {
		t.Fatalf("loaded %+v", ctl)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, err := Sync(ctx, SyncOptions{Control: ctl.File, Output: out, BaseURL: ctl.BaseURL, Transports: ts}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, target) {
		t.Fatal("output differs from the target")
	}
	if mem.gets.Load() != 1 || mem.ranges.Load() != 1 {
		t.Errorf("transport: %d gets, %d range sources; want 1 and 1", mem.gets.Load(), mem.ranges.Load())
	}

	// Without the transport, the scheme is not known: a local path that
	// does not exist.
	if _, err := LoadControl(ctx, "mem://host/d/target.bin.zsync", LoadOptions{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadControl without the transport: %v", err)
	}
	// The size cap applies to every transport.
	if _, err := LoadControl(ctx, "mem://host/d/target.bin.zsync", LoadOptions{Transports: ts, MaxSize: 10}); !errors.Is(err, ErrFetch) {
		t.Errorf("LoadControl over the size cap: %v, want ErrFetch", err)
	}
}

// TestLoadControlLocal loads a control file by path and keeps a copy.
func TestLoadControlLocal(t *testing.T) {
	dir := t.TempDir()
	raw := makeControl(t, randomBytes(rand.New(rand.NewPCG(5, 6)), 5000), "target.bin")
	path := filepath.Join(dir, "t.zsync")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "kept.zsync")
	ctl, err := LoadControl(context.Background(), path, LoadOptions{Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Location != path || ctl.BaseURL != dir || !bytes.Equal(ctl.Raw, raw) || ctl.NotModified {
		t.Errorf("loaded Location %q BaseURL %q NotModified %v", ctl.Location, ctl.BaseURL, ctl.NotModified)
	}
	if got, _ := os.ReadFile(keep); !bytes.Equal(got, raw) {
		t.Error("the kept copy differs")
	}
	ctl, err = LoadControl(context.Background(), path, LoadOptions{BaseURL: "http://h.example/files/x.zsync"})
	if err != nil || ctl.BaseURL != "http://h.example/files/" {
		t.Errorf("BaseURL override: %v, %+v", err, ctl)
	}
	// Malformed: a *control.FormatError naming the file.
	bad := filepath.Join(dir, "bad.zsync")
	os.WriteFile(bad, []byte("zsync: 0.6.2\n\n"), 0o644)
	var fe *control.FormatError
	if _, err := LoadControl(context.Background(), bad, LoadOptions{}); !errors.As(err, &fe) || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed control file: %v", err)
	}
	// Over the size cap.
	if _, err := LoadControl(context.Background(), path, LoadOptions{MaxSize: 100}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over the size cap: %v", err)
	}
}

// TestLoadControlHTTP loads a control file over HTTP through a redirect and
// reuses the kept copy when the server answers 304 Not Modified.
func TestLoadControlHTTP(t *testing.T) {
	raw := makeControl(t, randomBytes(rand.New(rand.NewPCG(7, 8)), 5000), "target.bin")
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var gets, notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old/t.zsync" {
			http.Redirect(w, r, "/new/t.zsync", http.StatusFound)
			return
		}
		gets.Add(1)
		if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !mtime.After(ims) {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Last-Modified", mtime.Format(http.TimeFormat))
		w.Write(raw)
	}))
	defer srv.Close()
	keep := filepath.Join(t.TempDir(), "kept.zsync")
	for i := range 2 {
		ctl, err := LoadControl(context.Background(), srv.URL+"/old/t.zsync", LoadOptions{Keep: keep})
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if ctl.BaseURL != srv.URL+"/new/" || !bytes.Equal(ctl.Raw, raw) || ctl.NotModified != (i == 1) {
			t.Errorf("load %d: BaseURL %q NotModified %v", i, ctl.BaseURL, ctl.NotModified)
		}
		if fi, err := os.Stat(keep); err != nil || !fi.ModTime().Equal(mtime) {
			t.Errorf("load %d: kept copy %v, %v; want mtime %v", i, fi, err, mtime)
		}
	}
	if gets.Load() != 2 || notModified.Load() != 1 {
		t.Errorf("%d GETs, %d Not Modified; want 2 and 1", gets.Load(), notModified.Load())
	}
	if _, err := LoadControl(context.Background(), srv.URL+"/x", LoadOptions{MaxSize: 10}); !errors.Is(err, ErrFetch) {
		t.Errorf("over the size cap: %v, want ErrFetch", err)
	}
}

func TestBaseDir(t *testing.T) {
	tests := []struct{ from, want string }{
		{"srv/x.zsync", "srv"},
		{"x.zsync", "."},
		{"/a/b/x.zsync", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"file:///a/b/x.zsync", "file:///a/b/"},
		{"file:///a/b/", "file:///a/b/"},
		{"http://h.example/d/x.zsync?q=1", "http://h.example/d/"},
	}
	for _, tt := range tests {
		if got := baseDir(tt.from); got != tt.want {
			t.Errorf("baseDir(%q) = %q, want %q", tt.from, got, tt.want)
		}
	}
}
