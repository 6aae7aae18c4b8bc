package httpsource

import (
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

// TestFirstRequestAlone checks that concurrent calls wait for the first
// response, so that every request after it carries If-Range: a file that
// changes on the server is detected on all of them.
func TestFirstRequestAlone(t *testing.T) {
	data := testData(1 << 20)
	srv := newServer(t, data, faultserver.Options{})
	s := newSource(t, srv.URL(), Options{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range 8 {
		wg.Go(func() {
			_, errs[g] = fetch(s, data, spaced(int64(g)*100000, 4096, 4096, 4))
		})
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", g, err)
		}
	}
	without := 0
	log := srv.Log()
	for _, r := range log {
		if r.IfRange == "" {
			without++
		}
	}
	if len(log) != 8 || without != 1 {
		t.Errorf("%d requests, %d without If-Range; want 8 and 1 (the first)", len(log), without)
	}
}
