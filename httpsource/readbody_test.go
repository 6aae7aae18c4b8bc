package httpsource

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadBody shows that readBody returns what io.ReadAll of the body
// limited to limit+1 bytes returns, whatever the announced size, and that
// with the size announced it reads into one buffer.
func TestReadBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10000) // 100,000 bytes
	const limit = 150000
	for _, c := range []struct {
		name string
		body []byte
		size int64
	}{
		{"announced", data, int64(len(data))},
		{"unknown", data, -1},
		{"longer than announced", data, 60000},
		{"empty", nil, 0},
		{"over the limit, unknown", bytes.Repeat(data, 2), -1},
		{"over the limit, announced", bytes.Repeat(data, 2), 60000},
	} {
		want, _ := io.ReadAll(io.LimitReader(bytes.NewReader(c.body), limit+1))
		got, err := readBody(iotest.HalfReader(bytes.NewReader(c.body)), c.size, limit)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", c.name, len(got), err, len(want))
		}
	}
	if _, err := readBody(bytes.NewReader(data[:10]), int64(len(data)), limit); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a body shorter than announced: err = %v, want io.ErrUnexpectedEOF", err)
	}
	broken := errors.New("connection reset")
	if _, err := readBody(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(broken)), int64(len(data)), limit); !errors.Is(err, broken) {
		t.Errorf("a body cut by an error: err = %v, want it", err)
	}
	r := bytes.NewReader(data)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(data)
		if _, err := readBody(r, int64(len(data)), limit); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("readBody of an announced body made %v allocations, want at most 2 (one buffer)", allocs)
	}
}
