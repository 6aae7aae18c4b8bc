package httpsource

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

func TestDownload(t *testing.T) {
	data := testData(50_000)
	mod := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tls := range []bool{false, true} {
		srv := newServer(t, data, faultserver.Options{RedirectFrom: "/latest.zsync", ModTime: mod, TLS: tls, HTTP2: tls})
		opts := Options{Client: srv.Client()}
		f, err := Download(context.Background(), srv.RedirectURL(), opts, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Body, data) || f.NotModified {
			t.Errorf("body of %d bytes, NotModified %v", len(f.Body), f.NotModified)
		}
		if f.FinalURL.String() != srv.URL() {
			t.Errorf("FinalURL = %s, want %s", f.FinalURL, srv.URL())
		}
		if !f.LastModified.Equal(mod) || f.ETag == "" {
			t.Errorf("LastModified %v, ETag %q", f.LastModified, f.ETag)
		}

		f, err = Download(context.Background(), srv.URL(), opts, mod)
		if err != nil || !f.NotModified || f.Body != nil {
			t.Errorf("If-Modified-Since: %+v, %v; want NotModified", f, err)
		}
		f, err = Download(context.Background(), srv.URL(), opts, mod.Add(-time.Hour))
		if err != nil || f.NotModified || !bytes.Equal(f.Body, data) {
			t.Errorf("older If-Modified-Since: NotModified %v, %v", f != nil && f.NotModified, err)
		}
	}
}

func TestDownloadRetries(t *testing.T) {
	data := testData(50_000)
	srv := newServer(t, data, faultserver.Options{DropAfter: 1000, Faults: 2})
	f, err := Download(context.Background(), srv.URL(), Options{Backoff: time.Millisecond}, time.Time{})
	if err != nil || !bytes.Equal(f.Body, data) {
		t.Fatalf("err %v", err)
	}
	if srv.Requests() != 3 {
		t.Errorf("requests = %d, want 3", srv.Requests())
	}

	srv = newServer(t, data, faultserver.Options{Status503: true})
	_, err = Download(context.Background(), srv.URL(), Options{Backoff: time.Millisecond, Retries: 2}, time.Time{})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable || srv.Requests() != 3 {
		t.Errorf("err = %v after %d requests", err, srv.Requests())
	}
}

func TestDownloadTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(MaxDownloadSize+1))
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	_, err := Download(context.Background(), srv.URL, Options{Client: srv.Client()}, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("err = %v, want a size error", err)
	}
}
