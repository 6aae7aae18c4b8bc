package httpsource

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/source"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		h                 string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-9/100", 0, 10, 100, true},
		{"bytes 90-99/*", 90, 100, -1, true},
		{"bytes */100", 0, 0, 100, true},
		{"bytes 90-100/100", 0, 0, 0, false},
		{"bytes 9-8/100", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"items 0-9/100", 0, 0, 0, false},
		{"bytes a-9/100", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		s, e, tot, err := parseContentRange(tc.h)
		if (err == nil) != tc.ok || (tc.ok && (s != tc.start || e != tc.end || tot != tc.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.h, s, e, tot, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"junk":                          0,
		"-3":                            0,
		"7":                             7 * time.Second,
		"100000":                        MaxRetryAfter,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 23:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
	st := settings{backoff: 200 * time.Millisecond}
	if d := st.wait(1, 5*time.Minute); d != MaxRetryAfter {
		t.Errorf("Retry-After not capped: %v", d)
	}
	for failures, max := range map[int]time.Duration{1: 200 * time.Millisecond, 3: 800 * time.Millisecond, 30: MaxBackoff} {
		for range 20 {
			if d := st.wait(failures, 0); d < max/2 || d > max {
				t.Errorf("wait(%d) = %v, want in [%v, %v]", failures, d, max/2, max)
			}
		}
	}
}

func TestPlan(t *testing.T) {
	s := &Source{st: settings{mergeGap: 10}}
	s.maxRanges.Store(2)
	c := &call{ranges: []source.Range{{Start: 0, End: 5}, {Start: 15, End: 20}, {Start: 40, End: 50}, {Start: 100, End: 110}, {Start: 200, End: 201}}}
	spans, end := s.plan(c, false)
	if end != 3 || len(spans) != 2 || spans[0] != (source.Range{Start: 0, End: 20}) || rangeHeader(spans) != "bytes=0-19,40-49" {
		t.Errorf("plan = %v, %d", spans, end)
	}
	c.next = 3
	if spans, end = s.plan(c, true); end != 5 || len(spans) != 2 {
		t.Errorf("plan all = %v, %d", spans, end)
	}
}

func TestCredentialsMatching(t *testing.T) {
	u, _ := url.Parse("https://User:pw@Example.COM/f")
	st, err := (&Options{Credentials: map[string]Credentials{
		"other.org:8080": {"a", "b"},
		"plain.net":      {"c", "d"},
	}}).settings(u)
	if err != nil {
		t.Fatal(err)
	}
	if u.User != nil {
		t.Errorf("credentials left in URL")
	}
	for raw, want := range map[string]string{
		"https://example.com/x":     "User",
		"https://example.com:443/x": "User",
		"http://example.com/x":      "",
		"http://other.org:8080/":    "a",
		"http://other.org/":         "",
		"http://plain.net:81/":      "c",
		"http://sub.plain.net/":     "",
	} {
		req, _ := http.NewRequest("GET", raw, nil)
		st.authorize(req)
		user, _, _ := req.BasicAuth()
		if user != want {
			t.Errorf("%s: user %q, want %q", raw, user, want)
		}
	}
}
