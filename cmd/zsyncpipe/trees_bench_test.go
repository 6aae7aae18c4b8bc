package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
)

// TestMain runs zsyncpipe itself when asked to (mainEnv), so that a test
// can start it as a process of its own, as nginx is.
func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const mainEnv = "ZSYNCPIPE_TEST_RUN_MAIN"

// serveProcess starts "zsyncpipe serve --no-index dir" as a process of its
// own and returns its base URL; it is stopped with SIGTERM at the end.
func serveProcess(tb testing.TB, dir string) string {
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--no-index", "-q", dir)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("serve printed no URL: %v", err)
	}
	_, rest, _ := strings.Cut(line, " at ")
	base, _, _ := strings.Cut(rest, " ")
	return base
}

// BenchmarkRangesServeVsNginx answers many parallel multi-range requests
// (20 ranges of 2 KiB each, as a sync asks) for a 16 MiB file, from serve and
// from nginx on the same tree, both processes of their own, side by side:
//
//	go test -run '^$' -bench RangesServeVsNginx -benchtime 2000x ./cmd/zsyncpipe
func BenchmarkRangesServeVsNginx(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	servers := map[string]string{}
	servers["serve"] = serveProcess(b, dir) + "f.bin"
	servers["nginx"] = nginxtest.Start(b, dir).Base + "/f.bin"
	for _, name := range []string{"serve", "nginx"} {
		url := servers[name]
		b.Run(name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.SetParallelism(8)
			b.SetBytes(20 * 2048)
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(1, 2))
				for pb.Next() {
					var spec []string
					for range 20 {
						off := r.Int64N(int64(len(data)/2048-1)) * 2048
						spec = append(spec, fmt.Sprintf("%d-%d", off, off+2047))
					}
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusPartialContent {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
