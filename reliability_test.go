package zsyncpipe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

// A control file fetched over HTTP may not send the client to local files:
// an absolute path resolves against the server, as a browser would resolve
// it, and a file: URL is refused.
func TestRemoteControlURLsStayRemote(t *testing.T) {
	old, target := netData(11)
	local := filepath.Join(t.TempDir(), "copy-of-target")
	if err := os.WriteFile(local, target, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := faultserver.New(target, faultserver.Options{Path: filepath.ToSlash(local)})
	t.Cleanup(srv.Close)
	base := srv.BaseURL() + "/pub/" + netName + ".zsync"

	t.Run("absolute path", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, local)
		if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: base, HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
			t.Fatal(err)
		}
		netCheckResult(t, out, target)
		netCheckDir(t, dir, netName)
		if srv.Requests() == 0 {
			t.Errorf("the local file %s was read instead of the server's path", local)
		}
	})
	t.Run("file URL", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, "file://"+filepath.ToSlash(local))
		_, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: base, HTTP: netHTTP(), Fetch: netFetch()})
		if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "local") {
			t.Fatalf("err = %v, want ErrFetch refusing a local file", err)
		}
		netCheckResult(t, out, old)
		netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	})
	// A control file read from the local disk may name local files.
	t.Run("local control file", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, "file://"+filepath.ToSlash(local))
		if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: filepath.Join(dir, "x.zsync"), HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
			t.Fatal(err)
		}
		netCheckResult(t, out, target)
	})
}
