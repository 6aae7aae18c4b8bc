package faultserver

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zsyncpipe/zsyncpipe/source"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, s *Server, rangeHdr string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHdr != "" {
		req.Header.Set("Range", rangeHdr)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func data() []byte {
	b := make([]byte, 10_000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestRanges(t *testing.T) {
	d := data()
	s := New(d, Options{})
	defer s.Close()

	resp, b, err := get(t, s, "bytes=10-19")
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, d[10:20]) ||
		resp.Header.Get("Content-Range") != "bytes 10-19/10000" {
		t.Fatalf("single range: %v %v %q", err, resp.Status, resp.Header.Get("Content-Range"))
	}

	resp, b, err = get(t, s, "bytes=0-9, 100-199,-5")
	if err != nil || resp.StatusCode != 206 {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q", mt)
	}
	mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
	want := []struct {
		cr   string
		data []byte
	}{{"bytes 0-9/10000", d[:10]}, {"bytes 100-199/10000", d[100:200]}, {"bytes 9995-9999/10000", d[9995:]}}
	for _, w := range want {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(p)
		if p.Header.Get("Content-Range") != w.cr || !bytes.Equal(got, w.data) {
			t.Errorf("part %q: %d bytes, want %q", p.Header.Get("Content-Range"), len(got), w.cr)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("extra part: %v", err)
	}

	resp, _, _ = get(t, s, "bytes=20000-")
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */10000" {
		t.Errorf("unsatisfiable: %s %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	resp, b, _ = get(t, s, "")
	if resp.StatusCode != 200 || !bytes.Equal(b, d) {
		t.Errorf("whole file: %s", resp.Status)
	}
	s.Close()
	if s.Requests() != 4 || s.BytesServed() < 10_000+10+100+5 {
		t.Errorf("requests %d, bytes %d", s.Requests(), s.BytesServed())
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want []source.Range
		ok   bool
	}{
		{"", nil, true},
		{"items=1-2", nil, true},
		{"bytes=5-", []source.Range{{Start: 5, End: 100}}, true},
		{"bytes=-10", []source.Range{{Start: 90, End: 100}}, true},
		{"bytes=90-200", []source.Range{{Start: 90, End: 100}}, true},
		{"bytes=5-4", nil, true},
		{"bytes=x-4", nil, true},
		{"bytes=100-", nil, false},
		{"bytes=100-,0-0", []source.Range{{Start: 0, End: 1}}, true},
	} {
		got, ok := parseRange(tc.h, 100)
		if ok != tc.ok || len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("parseRange(%q) = %v, %v; want %v, %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFaults(t *testing.T) {
	d := data()
	t.Run("drop", func(t *testing.T) {
		s := New(d, Options{DropAfter: 100, Faults: 1})
		defer s.Close()
		if _, b, err := get(t, s, ""); err == nil || len(b) != 100 {
			t.Errorf("first request: %d bytes, err %v; want a cut at 100", len(b), err)
		}
		if _, b, err := get(t, s, ""); err != nil || !bytes.Equal(b, d) {
			t.Errorf("second request: %v", err)
		}
	})
	t.Run("503", func(t *testing.T) {
		s := New(d, Options{Status503: true, RetryAfter: "3", Faults: 1})
		defer s.Close()
		resp, _, _ := get(t, s, "")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
			t.Errorf("%s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
		}
		if resp, _, _ := get(t, s, ""); resp.StatusCode != 200 {
			t.Errorf("second: %s", resp.Status)
		}
	})
	t.Run("max ranges", func(t *testing.T) {
		s := New(d, Options{MaxRanges: 1})
		defer s.Close()
		if resp, _, _ := get(t, s, "bytes=0-1,5-6"); resp.StatusCode != 416 {
			t.Errorf("%s", resp.Status)
		}
	})
	t.Run("ignore, corrupt", func(t *testing.T) {
		s := New(d, Options{IgnoreRanges: true, CorruptRange: source.Range{Start: 3, End: 5}})
		defer s.Close()
		resp, b, _ := get(t, s, "bytes=0-1")
		if resp.StatusCode != 200 || len(b) != len(d) || b[3] != ^d[3] || b[4] != ^d[4] || b[5] != d[5] {
			t.Errorf("%s", resp.Status)
		}
	})
	t.Run("change", func(t *testing.T) {
		s := New(d, Options{ChangeAfter: 1})
		defer s.Close()
		r1, _, _ := get(t, s, "")
		r2, b, _ := get(t, s, "")
		if r1.Header.Get("ETag") == r2.Header.Get("ETag") || bytes.Equal(b, d) {
			t.Errorf("content did not change")
		}
		req, _ := http.NewRequest("GET", s.URL(), nil)
		req.Header.Set("Range", "bytes=0-1")
		req.Header.Set("If-Range", r1.Header.Get("ETag"))
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("stale If-Range: %s, want 200", resp.Status)
		}
	})
	t.Run("stall", func(t *testing.T) {
		s := New(d, Options{Stall: 300 * time.Millisecond})
		defer s.Close()
		start := time.Now()
		if _, b, err := get(t, s, ""); err != nil || !bytes.Equal(b, d) || time.Since(start) < 300*time.Millisecond {
			t.Errorf("stall: %v after %v", err, time.Since(start))
		}
	})
	t.Run("auth, redirect, tls", func(t *testing.T) {
		s := New(d, Options{User: "u", Password: "p", RedirectFrom: "/r", TLS: true, HTTP2: true})
		defer s.Close()
		req, _ := http.NewRequest("GET", s.RedirectURL(), nil)
		req.SetBasicAuth("u", "p")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || !strings.HasPrefix(s.URL(), "https://127.0.0.1") {
			t.Errorf("%s %s", resp.Proto, resp.Status)
		}
		if resp, _, _ := get(t, s, ""); resp.StatusCode != 401 {
			t.Errorf("no credentials: %s", resp.Status)
		}
		if log := s.Log(); len(log) != 3 || log[0].Status != 302 || log[1].Authorization == "" {
			t.Errorf("log %+v", log)
		}
	})
}

// TestInFlight: with a Delay, requests sent at once are counted in flight
// together, each on its own connection; requests one after the other are
// not, and reuse one connection.
func TestInFlight(t *testing.T) {
	d := data()
	s := New(d, Options{Delay: 200 * time.Millisecond})
	defer s.Close()
	for range 2 {
		if _, b, err := get(t, s, "bytes=0-9"); err != nil || !bytes.Equal(b, d[:10]) {
			t.Fatal(err)
		}
	}
	if s.MaxInFlight() != 1 || s.Connections() != 1 {
		t.Fatalf("one after the other: %d in flight, %d connections, want 1 and 1", s.MaxInFlight(), s.Connections())
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, _, err := get(t, s, "bytes=0-9")
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s.MaxInFlight() != 3 || s.Connections() < 3 {
		t.Fatalf("three at once: %d in flight, %d connections, want 3 and at least 3", s.MaxInFlight(), s.Connections())
	}
}
