package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory and
// unmounts it at the end of the test. It needs root, and a container may
// deny even root the right to mount: the test is then skipped, saying why.
// Without the mount program at all it fails on CI.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	mount, err := exec.LookPath("mount")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount is required on CI: %v", err)
		}
		t.Skipf("no mount program: %v", err)
	}
	out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs here (root, and a container allowing it, are needed): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// A full disk keeps the verified blocks for the next run, says how much
// space is needed, and leaves no temporary file; with room again, the same
// sync resumes.
func TestSyncDiskFull(t *testing.T) {
	old, target := netData(15)
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	// Room for the old output and about half of the new one.
	dir := mountTmpfs(t, "800k")
	out := filepath.Join(dir, netName)
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	f := netControl(t, target, false, srv.URL())
	_, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: netFetch(), NoFsync: true})
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "more is needed in "+dir) ||
		!strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("err = %v, want ErrNoSpace saying how much is needed", err)
	}
	if strings.Contains(err.Error(), fmt.Sprintf("(0 of %d blocks kept)", f.Blocks())) {
		t.Errorf("nothing kept: %v", err)
	}
	netCheckResult(t, out, old)
	netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	if st, why := loadState(out+".part", f, controlID(f)); st == nil {
		t.Fatalf("no usable resume state after ENOSPC: %q", why)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=4m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	var notes []string
	if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: netFetch(),
		Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }}); err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	if !strings.Contains(strings.Join(notes, "\n"), "resuming") {
		t.Errorf("did not resume: %q", notes)
	}
}
