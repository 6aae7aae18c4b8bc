package control

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless yields the same byte for ever.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestReadLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     io.Reader
		want   error
		msg    string
		before int64 // at most this many bytes are read before the error
	}{
		{"garbage without end", endless('x'), nil, "line longer than", 64 << 10},
		{"block size 1 GiB", strings.NewReader("zsync: 0.6.2\nBlocksize: 1073741824\nLength: 2147483648\n\n"), nil, "out of range", 1 << 10},
		{"block size beyond the maximum", strings.NewReader("zsync: 0.6.2\nBlocksize: 2097152\nLength: 10\n\n"), nil, "out of range 1..1048576", 1 << 10},
		{"records beyond MaxSize", io.MultiReader(strings.NewReader("zsync: 0.6.2\nBlocksize: 1\nLength: 1000000000\nHash-Lengths: 1,4,16\n\n"), endless(0)), ErrTooLarge, "larger than", 64 << 10},
		{"trailing data without end", io.MultiReader(strings.NewReader("zsync: 0.6.2\nBlocksize: 1024\nLength: 0\n\n"), endless(0)), nil, "trailing data", 64 << 10},
		{"Z-Map2 beyond MaxSize", io.MultiReader(strings.NewReader("zsync: 0.6.2\nBlocksize: 1024\nLength: 0\nZ-Map2: 100000000\n"), endless(0)), ErrTooLarge, "more than", MaxSize + 64<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := &countingReader{r: tc.in}
			_, err := Read(cr)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %q (%v)", err, tc.msg, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("err %v is not a *FormatError", err)
			}
			if cr.n > tc.before {
				t.Errorf("read %d bytes before refusing, want at most %d", cr.n, tc.before)
			}
		})
	}
}

// A header whose Safe names File-Hash promises one: without it the file is
// refused, not accepted with a warning.
func TestSafeFileHashWithoutFileHash(t *testing.T) {
	in := "zsync: 0.8.0\nSafe: File-Hash\nBlocksize: 1024\nLength: 0\nStrong-Hash-Algorithm: MD5\nHash-Lengths: 1,4,16\n\n"
	_, err := Read(strings.NewReader(in))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Name != "Safe" || !strings.Contains(err.Error(), "File-Hash, but there is none") {
		t.Fatalf("err = %v, want a Safe error", err)
	}
	withHash := strings.Replace(in, "Safe: File-Hash\n", "Safe: File-Hash\nFile-Hash: SHA-256:"+strings.Repeat("ab", 32)+"\n", 1)
	if _, err := Read(strings.NewReader(withHash)); err != nil {
		t.Fatalf("with the File-Hash: %v", err)
	}
}
