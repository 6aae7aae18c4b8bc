package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
)

// BenchmarkRangesServeVsNginx answers many parallel multi-range requests
// (20 ranges of 2 KiB each, as a sync asks) for a 16 MiB file, from serve and
// from nginx on the same tree, side by side:
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
	base, stop := startServe(b, dir, "--no-index")
	defer stop()
	servers["serve"] = base + "f.bin"
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
