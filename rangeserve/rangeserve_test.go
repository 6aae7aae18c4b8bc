package rangeserve

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func setup(t *testing.T) (*httptest.Server, []byte) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	os.MkdirAll(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "f"), data, 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "out"))
	os.Symlink("d/f", filepath.Join(dir, "in"))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	s := httptest.NewServer(Handler(root, HandlerOptions{}))
	t.Cleanup(s.Close)
	return s, data
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Method" {
			req.Method = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestRanges(t *testing.T) {
	s, data := setup(t)
	u := s.URL + "/d/f"
	resp, b := get(t, u)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !bytes.Equal(b, data) || etag == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("GET: %d, %d bytes, etag %q", resp.StatusCode, len(b), etag)
	}
	resp, b = get(t, u, "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(b, data[10:20]) {
		t.Fatalf("single range: %d %q", resp.StatusCode, b)
	}
	resp, b = get(t, u, "Range", "bytes=0-3,100-199,65530-")
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != 206 || mt != "multipart/byteranges" {
		t.Fatalf("multi range: %d %s", resp.StatusCode, mt)
	}
	if !bytes.HasPrefix(b, []byte("\r\n--"+params["boundary"])) {
		t.Fatalf("multipart body does not start with CRLF and the boundary: %q", b[:40])
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != itoa(len(b)) {
		t.Fatalf("Content-Length %s, body %d", cl, len(b))
	}
	mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := io.ReadAll(p)
		parts = append(parts, pb)
	}
	if len(parts) != 3 || !bytes.Equal(parts[1], data[100:200]) || !bytes.Equal(parts[2], data[65530:]) {
		t.Fatalf("parts %d", len(parts))
	}
	// If-Range with the current ETag honours the range; with another one
	// the whole file comes back.
	if resp, _ := get(t, u, "Range", "bytes=0-9", "If-Range", etag); resp.StatusCode != 206 {
		t.Errorf("If-Range current: %d", resp.StatusCode)
	}
	if resp, b := get(t, u, "Range", "bytes=0-9", "If-Range", `"other"`); resp.StatusCode != 200 || len(b) != len(data) {
		t.Errorf("If-Range stale: %d", resp.StatusCode)
	}
	if resp, _ := get(t, u, "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ := get(t, u, "If-Modified-Since", resp.Header.Get("Last-Modified")); resp.StatusCode != 304 {
		t.Errorf("If-Modified-Since: %d", resp.StatusCode)
	}
	if resp, b := get(t, u, "Method", "HEAD"); resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Length") != itoa(len(data)) {
		t.Errorf("HEAD: %d %d %s", resp.StatusCode, len(b), resp.Header.Get("Content-Length"))
	}
	if resp, _ := get(t, u, "Method", "PUT"); resp.StatusCode != 405 {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestConfined(t *testing.T) {
	s, data := setup(t)
	for _, p := range []string{"/out", "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/nothing"} {
		if resp, b := get(t, s.URL+p); resp.StatusCode != 404 || bytes.Contains(b, []byte("root:")) {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	if resp, b := get(t, s.URL+"/in"); resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Errorf("link inside the tree: %d", resp.StatusCode)
	}
	if resp, b := get(t, s.URL+"/d/"); resp.StatusCode != 200 || !bytes.Contains(b, []byte(`href="./f"`)) {
		t.Errorf("listing: %d %s", resp.StatusCode, b)
	}
	if resp, _ := get(t, s.URL+"/d"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/d/" {
		t.Errorf("redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
