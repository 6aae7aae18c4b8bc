package httpsource

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
)

// readAllParts reads every part of body with byteranges and returns them
// as "start-end:bytes" strings, or the error that stopped it.
func readAllParts(body, boundary string) ([]string, error) {
	b := newByteranges(strings.NewReader(body), boundary)
	var got []string
	for {
		start, end, _, part, err := b.next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		// Read in small pieces too: the part ends where its range says.
		var buf bytes.Buffer
		p := make([]byte, 3)
		for {
			n, err := part.Read(p)
			buf.Write(p[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				return got, err
			}
		}
		got = append(got, strings.Join([]string{strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10), buf.String()}, ":"))
	}
}

func TestByterangesGood(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want []string
	}{
		"nginx": {
			"\r\n--00000000000000000001\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd" +
				"\r\n--00000000000000000001\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 10-14/20\r\n\r\nklmno" +
				"\r\n--00000000000000000001--\r\n",
			[]string{"0-4:abcd", "10-15:klmno"},
		},
		"LF only, preamble, padding, folded and lower-case header": {
			"a preamble\n--00000000000000000001  \ncontent-range:\n bytes 0-4/20\n\n\r\n--x" +
				"\n--00000000000000000001\nContent-Range: bytes 4-4/20\n\nZ\n--00000000000000000001--",
			[]string{"0-5:\r\n--x", "4-5:Z"},
		},
		"no parts": {"--00000000000000000001--\r\n", nil},
		"data that looks like a delimiter": {
			"--00000000000000000001\r\nContent-Range: bytes 0-27/28\r\n\r\n\r\n--00000000000000000001--\r\n" +
				"\r\n--00000000000000000001--\r\n",
			[]string{"0-28:\r\n--00000000000000000001--\r\n"},
		},
	} {
		got, err := readAllParts(tc.body, "00000000000000000001")
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, tc.want)
		}
	}
}

func TestByterangesBad(t *testing.T) {
	const head = "--B\r\nContent-Range: bytes 0-3/20\r\n\r\n"
	for name, body := range map[string]string{
		"part longer than its range":  head + "abcdE\r\n--B--\r\n",
		"part shorter than its range": head + "ab\r\n--B--\r\n",
		"part one byte short":         head + "abc\r\n--B--\r\n",
		"LF after a CRLF delimiter":   head + "abcd\n--B--\r\n",
		"body ends in a part":         head + "ab",
		"no closing delimiter":        head + "abcd",
		"junk after the boundary":     head + "abcd\r\n--Bjunk\r\n",
		"no Content-Range":            "--B\r\nContent-Type: x\r\n\r\nabcd\r\n--B--\r\n",
		"two Content-Range":           "--B\r\nContent-Range: bytes 0-3/20\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd\r\n--B--\r\n",
		"bad Content-Range":           "--B\r\nContent-Range: bytes 3-0/20\r\n\r\nabcd\r\n--B--\r\n",
		"header without colon":        "--B\r\nContent-Range bytes 0-3/20\r\n\r\nabcd\r\n--B--\r\n",
		"too many headers":            "--B\r\n" + strings.Repeat("X: y\r\n", maxPartHeaders+1) + "Content-Range: bytes 0-3/20\r\n\r\nabcd\r\n--B--\r\n",
		"line too long":               "--B\r\nX: " + strings.Repeat("y", byterangesBuffer) + "\r\nContent-Range: bytes 0-3/20\r\n\r\nabcd\r\n--B--\r\n",
		"no delimiter at all":         strings.Repeat("x\r\n", maxPreamble),
		"empty body":                  "",
	} {
		got, err := readAllParts(body, "B")
		if err == nil || err == io.EOF {
			t.Errorf("%s: no error (parts %q)", name, got)
		}
		if name == "part longer than its range" && !errors.Is(err, errFraming) {
			t.Errorf("%s: %v, want errFraming", name, err)
		}
	}
}

// TestByterangesLikeMultipart checks byteranges against mime/multipart on
// bodies written by mime/multipart.Writer (Go's net/http serves ranges
// with it).
func TestByterangesLikeMultipart(t *testing.T) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	var want []string
	for _, r := range [][2]int64{{0, 1}, {5, 9000}, {9000, 40000}, {65535, 65536}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Range", "bytes "+strconv.FormatInt(r[0], 10)+"-"+strconv.FormatInt(r[1]-1, 10)+"/65536")
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(data[r[0]:r[1]])
		want = append(want, strconv.FormatInt(r[0], 10)+"-"+strconv.FormatInt(r[1], 10)+":"+string(data[r[0]:r[1]]))
	}
	w.Close()
	got, err := readAllParts(body.String(), w.Boundary())
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d parts, %v; want %d", len(got), err, len(want))
	}
}
