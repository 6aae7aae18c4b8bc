package rangeserve_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe/rangeserve"
)

// Example serves a directory tree and asks for two ranges of a file, as a
// zsync client does.
func Example() {
	dir, _ := os.MkdirTemp("", "tree")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "f.bin"), []byte("0123456789abcdefghij"), 0o644)
	root, err := os.OpenRoot(dir)
	if err != nil {
		panic(err)
	}
	defer root.Close()
	srv := httptest.NewServer(rangeserve.Handler(root, rangeserve.HandlerOptions{}))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/f.bin", nil)
	req.Header.Set("Range", "bytes=0-3,10-13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("ETag") != "", string(body[:2]) == "\r\n")
	// Output:
	// 206 Partial Content true true
}
