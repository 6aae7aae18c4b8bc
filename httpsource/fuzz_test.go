package httpsource

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// FuzzParseContentRange checks that parseContentRange never panics and
// that what it accepts is a sane range.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-5/*", "bytes */100", "bytes 1-0/5", "bytes 0-9223372036854775807/9223372036854775807",
		"bytes -1-2/3", "bytes 0-9/", " bytes 3-4/10 ", "bytes 9-9/9", "bytes 0--1/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, end, total, err := parseContentRange(h)
		if err != nil {
			return
		}
		if start < 0 || end < start || total < -1 || total >= 0 && end > total {
			t.Fatalf("%q: start %d end %d total %d", h, start, end, total)
		}
		if start == end && !strings.Contains(h, "*") {
			t.Fatalf("%q: empty range accepted", h)
		}
	})
}

// FuzzMultipart feeds arbitrary multipart/byteranges bodies to the 206
// reader: it must never panic or deliver a range of the wrong length, and
// when it succeeds every range was delivered.
func FuzzMultipart(f *testing.F) {
	good := "--B\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd\r\n--B\r\nContent-Range: bytes 10-14/20\r\n\r\nklmno\r\n--B--\r\n"
	f.Add([]byte(good), "B")
	f.Add([]byte(strings.Replace(good, "0-3", "0-5", 1)), "B")
	f.Add([]byte(strings.Replace(good, "10-14", "2-14", 1)), "B")
	f.Add([]byte(good[:40]), "B")
	f.Add([]byte("--B\r\nContent-Range: bytes 0-14/20\r\n\r\nabcdefghijklmno\r\n--B--\r\n"), "B")
	f.Add([]byte("--B\r\n\r\n--B--"), "")
	ranges := []source.Range{{Start: 0, End: 4}, {Start: 10, End: 15}}
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		s, err := New("http://127.0.0.1:1/f", Options{})
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{
			StatusCode:    http.StatusPartialContent,
			Header:        http.Header{"Content-Type": {"multipart/byteranges; boundary=" + boundary}},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: -1,
		}
		var got []source.Range
		c := &call{ranges: ranges, fn: func(r source.Range, d io.Reader) error {
			b, err := io.ReadAll(d)
			if err != nil {
				return err
			}
			if int64(len(b)) != r.Len() {
				t.Fatalf("range %v: %d bytes", r, len(b))
			}
			got = append(got, r)
			return nil
		}}
		err = s.readPartial(resp, c, len(ranges))
		if err == nil && len(got) != len(ranges) {
			t.Fatalf("success with %d of %d ranges delivered", len(got), len(ranges))
		}
		for i, r := range got {
			if r != ranges[i] {
				t.Fatalf("delivery %d is %v", i, r)
			}
		}
	})
}
