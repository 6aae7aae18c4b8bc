package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/sshtest"
	"github.com/zsyncpipe/zsyncpipe/sftpsource"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"golang.org/x/crypto/ssh"
)

// BenchmarkSyncSFTPvsHTTP syncs one pair over loopback HTTP (Go's file
// server) and over SFTP (a real sshd), alternating, so that their ratio
// holds whatever else loads the machine; the metrics are the mean time of
// each and their ratio. The pair is ZSYNCPIPE_BENCH_PAIR=old,new (a ~200 MB
// tar and a modified copy in docs/network.md), or generated 512 KiB data.
// ZSYNCPIPE_BENCH_NGINX=1 serves HTTP with nginx rather than Go's file
// server; ZSYNCPIPE_BENCH_DELAY=10ms puts a proxy holding data that long
// each way in front of both servers; ZSYNCPIPE_BENCH_REQUESTS and
// ZSYNCPIPE_BENCH_CONNS set the SFTP Options.Requests and Connections.
func BenchmarkSyncSFTPvsHTTP(b *testing.B) {
	dir := b.TempDir()
	oldPath, newPath := filepath.Join(dir, "old"), filepath.Join(dir, netName)
	if pair := os.Getenv("ZSYNCPIPE_BENCH_PAIR"); pair != "" {
		o, n, ok := strings.Cut(pair, ",")
		if !ok {
			b.Fatal("ZSYNCPIPE_BENCH_PAIR wants old,new")
		}
		oldPath = o
		link(b, n, newPath)
	} else {
		old, target := netData(21)
		os.WriteFile(oldPath, old, 0o644)
		os.WriteFile(newPath, target, 0o644)
	}
	target, err := os.ReadFile(newPath)
	if err != nil {
		b.Fatal(err)
	}
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{Filename: netName, URLs: []string{netName}})
	if err != nil {
		b.Fatal(err)
	}
	web := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer web.Close()
	srv := sshtest.Start(b)
	link(b, newPath, filepath.Join(srv.Root, netName))

	webURL, sftpBase := web.URL+"/", strings.TrimSuffix(srv.URL(netName), netName)
	if os.Getenv("ZSYNCPIPE_BENCH_NGINX") != "" {
		webURL = nginxtest.Start(b, dir).Base + "/"
	}
	if d := os.Getenv("ZSYNCPIPE_BENCH_DELAY"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil {
			b.Fatal(err)
		}
		u, _ := url.Parse(webURL)
		webURL = "http://" + delayProxy(b, u.Host, delay) + "/"
		sftpBase = strings.Replace(sftpBase, srv.Addr, delayProxy(b, srv.Addr, delay), 1)
	}
	sync := func(b *testing.B, base string, pool *sftpsource.Pool) (time.Duration, *Summary) {
		out := filepath.Join(b.TempDir(), netName)
		defer os.Remove(out)
		opts := SyncOptions{Control: f, Output: out, Seeds: []string{oldPath}, BaseURL: base, NoFsync: true}
		if pool != nil {
			defer pool.Close()
			opts.Transports = Transports{"sftp": SFTPTransport(pool)}
		}
		start := time.Now()
		sum, err := Sync(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(start), sum
	}
	newPool := func() *sftpsource.Pool {
		return sftpsource.NewPool(sftpsource.Options{
			IdentityFiles: []string{srv.IdentityFile}, HostKeyCallback: ssh.FixedHostKey(srv.HostKey), NoAgent: true,
			Requests: envInt(b, "ZSYNCPIPE_BENCH_REQUESTS"), Connections: envInt(b, "ZSYNCPIPE_BENCH_CONNS"),
		})
	}
	// The two alternate, so that both see the same load.
	var th, ts time.Duration
	var sum *Summary
	n := 0
	for b.Loop() {
		d, _ := sync(b, webURL, nil)
		th += d
		d, sum = sync(b, sftpBase, newPool())
		ts += d
		n++
	}
	b.ReportMetric(th.Seconds()/float64(n), "http-s/op")
	b.ReportMetric(ts.Seconds()/float64(n), "sftp-s/op")
	b.ReportMetric(ts.Seconds()/th.Seconds(), "sftp/http")
	b.ReportMetric(float64(sum.Fetched)/(1<<20), "MiB-fetched")
}

// delayProxy forwards loopback connections to target, holding every piece
// of data for delay in each direction, so that a round trip costs twice
// delay more (tc netem is not in every kernel). It returns its address.
func delayProxy(b *testing.B, target string, delay time.Duration) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	pipe := func(dst, src net.Conn) {
		type chunk struct {
			data []byte
			at   time.Time
		}
		q := make(chan chunk, 4096)
		go func() {
			defer dst.Close()
			for c := range q {
				time.Sleep(time.Until(c.at))
				if _, err := dst.Write(c.data); err != nil {
					return
				}
			}
		}()
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(t, c)
			go pipe(c, t)
		}
	}()
	return l.Addr().String()
}

// link makes dst the same file as src, or a copy of it.
func link(b *testing.B, src, dst string) {
	if err := os.Link(src, dst); err == nil {
		return
	}
	data, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFetchSFTPRequests measures the fetch stage alone, over HTTP and
// over SFTP with several Options.Requests, through a proxy that adds
// ZSYNCPIPE_BENCH_DELAY (default 10ms) each way: 1,000 ranges of 16 KiB
// spread over a 64 MiB file, with the fetch stage's defaults (8 calls of 20
// ranges in flight). It chose DefaultRequests (docs/network.md).
func BenchmarkFetchSFTPRequests(b *testing.B) {
	const size, n, piece = 64 << 20, 1000, 16 << 10
	target := randomBytes(rand.New(rand.NewPCG(5, 6)), size)
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{Filename: netName})
	if err != nil {
		b.Fatal(err)
	}
	var missing []source.Range
	for i := range int64(n) {
		off := i * (size / n) / int64(f.Blocksize) * int64(f.Blocksize)
		missing = append(missing, source.Range{Start: off, End: off + piece})
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, netName), target, 0o644)
	web := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer web.Close()
	srv := sshtest.Start(b)
	link(b, filepath.Join(dir, netName), filepath.Join(srv.Root, netName))
	delay := 10 * time.Millisecond
	if d := os.Getenv("ZSYNCPIPE_BENCH_DELAY"); d != "" {
		if delay, err = time.ParseDuration(d); err != nil {
			b.Fatal(err)
		}
	}
	webAddr, sshAddr := delayProxy(b, web.Listener.Addr().String(), delay), delayProxy(b, srv.Addr, delay)

	fetch := func(b *testing.B, src source.RangeSource) {
		b.SetBytes(n * piece)
		for b.Loop() {
			err := stages.Fetch(context.Background(), f, src, missing, stages.FetchOptions{}, func(stages.Batch) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("http", func(b *testing.B) {
		s, err := httpsource.New("http://"+webAddr+"/"+netName, httpsource.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fetch(b, s)
	})
	reqs := []int{1, 4, 16, 32, 64, 128, 256}
	if rs := os.Getenv("ZSYNCPIPE_BENCH_REQUESTS"); rs != "" {
		reqs = nil
		for _, r := range strings.Split(rs, ",") {
			n, err := strconv.Atoi(r)
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, n)
		}
	}
	for _, req := range reqs {
		b.Run(fmt.Sprintf("sftp-requests-%d", req), func(b *testing.B) {
			pool := sftpsource.NewPool(sftpsource.Options{
				IdentityFiles: []string{srv.IdentityFile}, HostKeyCallback: ssh.FixedHostKey(srv.HostKey), NoAgent: true,
				Requests: req, Connections: envInt(b, "ZSYNCPIPE_BENCH_CONNS"), PacketSize: envInt(b, "ZSYNCPIPE_BENCH_PACKET"),
			})
			defer pool.Close()
			s, err := pool.Source("sftp://" + srv.User + "@" + sshAddr + filepath.Join(srv.Root, netName))
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.Stat(context.Background()); err != nil { // connected before the clock runs
				b.Fatal(err)
			}
			fetch(b, s)
		})
	}
}

// envInt returns the integer in the environment variable name, 0 if unset.
func envInt(b *testing.B, name string) int {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return n
}
