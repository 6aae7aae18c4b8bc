package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/rangeserve"
)

// traffic is what the loopback server counted.
type traffic struct {
	Requests   int64 // HTTP requests answered
	Ranges     int64 // byte ranges asked for in Range headers
	RangeBytes int64 // bytes those ranges cover (clipped to the file)
	Sent       int64 // bytes written to the connections: headers and bodies
	Received   int64 // bytes read from the connections: requests
}

// sub returns t − u.
func (t traffic) sub(u traffic) traffic {
	return traffic{t.Requests - u.Requests, t.Ranges - u.Ranges, t.RangeBytes - u.RangeBytes, t.Sent - u.Sent, t.Received - u.Received}
}

// server serves one file over HTTP on a loopback port with Range support
// (http.ServeContent) and counts its traffic on the wire.
type server struct {
	URL string // URL of the file

	path string
	size int64
	mod  time.Time
	srv  *http.Server
	ln   net.Listener
	done chan error

	requests, ranges, rangeBytes, sent, received atomic.Int64
}

// startServer serves path at http://127.0.0.1:PORT/NAME.
func startServer(path, name string) (*server, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("bench server: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench server: %w", err)
	}
	s := &server{
		URL:  "http://" + ln.Addr().String() + "/" + name,
		path: path, size: fi.Size(), mod: fi.ModTime(),
		done: make(chan error, 1),
	}
	s.ln = &countingListener{Listener: ln, s: s}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+name, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	go func() { s.done <- s.srv.Serve(s.ln) }()
	return s, nil
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	n, b := countRanges(r.Header.Get("Range"), s.size)
	s.ranges.Add(n)
	s.rangeBytes.Add(b)
	f, err := os.Open(s.path)
	if err != nil {
		http.Error(w, "cannot open the file", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	rangeserve.ServeContent(w, r, "", s.mod, f)
}

// snapshot returns the counts so far.
func (s *server) snapshot() traffic {
	return traffic{s.requests.Load(), s.ranges.Load(), s.rangeBytes.Load(), s.sent.Load(), s.received.Load()}
}

// close stops the server.
func (s *server) close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("bench server: %w", err)
	}
	return nil
}

// countRanges returns the number of ranges in a Range header value and the
// bytes they cover in a file of the given size. Malformed specs count as
// one range of no bytes.
func countRanges(h string, size int64) (n, total int64) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, 0
	}
	for r := range strings.SplitSeq(spec, ",") {
		n++
		a, b, ok := strings.Cut(strings.TrimSpace(r), "-")
		if !ok {
			continue
		}
		var start, end int64
		switch {
		case a == "": // suffix: the last b bytes
			l, err := strconv.ParseInt(b, 10, 64)
			if err != nil {
				continue
			}
			start, end = max(0, size-l), size
		default:
			var err error
			if start, err = strconv.ParseInt(a, 10, 64); err != nil {
				continue
			}
			end = size
			if b != "" {
				e, err := strconv.ParseInt(b, 10, 64)
				if err != nil {
					continue
				}
				end = min(e+1, size)
			}
		}
		if end > start {
			total += end - start
		}
	}
	return n, total
}

// countingListener counts the bytes of every connection it accepts.
type countingListener struct {
	net.Listener
	s *server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, s: l.s}, nil
}

type countingConn struct {
	net.Conn
	s *server
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.received.Add(int64(n))
	return n, err
}

// Write counts p before it writes it: a client that has read the bytes
// and exited must find them counted (counted after, a snapshot taken
// then could miss them, and fewer bytes seemed sent than the ranges held).
func (c *countingConn) Write(p []byte) (int, error) {
	c.s.sent.Add(int64(len(p)))
	n, err := c.Conn.Write(p)
	c.s.sent.Add(int64(n - len(p)))
	return n, err
}
