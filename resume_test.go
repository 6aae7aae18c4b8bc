package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// Tests of resuming an interrupted Sync from Output+".part" and its state.

// resumeData returns an old version (2 MiB) and a target made of a few
// edits of it followed by 1 MiB of new data, so that about half of the
// target must be fetched.
func resumeData(seed uint64) (old, target []byte) {
	rng := rand.New(rand.NewPCG(seed, 5))
	old = randomBytes(rng, 2<<20)
	return old, slices.Concat(mutate(rng, old, netBlocksize, 40), randomBytes(rng, 1<<20))
}

// resumeFetch makes many calls, so that a sync stopped half way has some of
// them done and some not.
func resumeFetch() stages.FetchLimits {
	return stages.FetchLimits{RangesPerCall: 4, CallBytes: 32 << 10}
}

// resumeBlockBytes returns the bytes of the given blocks of a target of the
// given length.
func resumeBlockBytes(blocks map[int64]bool, length int64) int64 {
	var n int64
	for b := range blocks {
		n += min(netBlocksize, length-b*netBlocksize)
	}
	return n
}

// resumeVerified returns the blocks that st marks verified among those
// asked of the server in log: the fetched blocks the first run kept.
func resumeVerified(t testing.TB, st *resumeState, log []faultserver.Request, length int64) map[int64]bool {
	t.Helper()
	v := make(map[int64]bool)
	for b := range netBlocksRequested(t, log, length) {
		if st.done(b) {
			v[b] = true
		}
	}
	return v
}

// resumeCheckSecondRun checks the run after an interrupted one: a
// byte-exact result that fetched none of the blocks the first run verified,
// and no more than what was missing less what the first run verified.
func resumeCheckSecondRun(t *testing.T, f *control.File, st *resumeState, missing1 int64, log1 []faultserver.Request, out string, target []byte, run func(*faultserver.Server) (*Summary, error)) {
	t.Helper()
	length := int64(len(target))
	verified := resumeVerified(t, st, log1, length)
	v1 := resumeBlockBytes(verified, length)
	if v1 == 0 || v1 >= missing1 {
		t.Fatalf("first run verified %d of the %d missing bytes: it was not stopped half way", v1, missing1)
	}
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	f.URLs = []string{srv.URL()}
	sum, err := run(srv)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	srv.Close() // for an exact BytesServed
	netCheckResult(t, out, target)
	netCheckDir(t, filepath.Dir(out), filepath.Base(out))
	t.Logf("missing %d bytes; first run verified %d fetched bytes; second run fetched %d (%d body bytes served, %d requests), reused %d",
		missing1, v1, sum.Fetched, srv.BytesServed(), srv.Requests(), sum.Reused)
	if sum.Fetched > missing1-v1 {
		t.Errorf("second run fetched %d bytes, more than the %d missing less the %d verified before", sum.Fetched, missing1, v1)
	}
	if sum.Fetched == 0 {
		t.Error("second run fetched nothing: the first one was not interrupted")
	}
	for b := range netBlocksRequested(t, srv.Log(), length) {
		if st.done(b) {
			t.Errorf("block %d fetched again though the first run had verified it", b)
		}
	}
	// Body bytes: the payload plus multipart framing, well under 200 bytes
	// per range.
	var ranges int64
	for _, r := range srv.Log() {
		ranges += int64(len(netRanges(t, r.Range)))
	}
	if served := srv.BytesServed(); served > missing1-v1+200*ranges {
		t.Errorf("server sent %d body bytes in the second run for %d missing and %d ranges", served, missing1-v1, ranges)
	}
}

// resumeCancelled runs a sync of target into out from the server and
// cancels it when half of the missing bytes have been fetched. It checks
// what a cancelled sync leaves and returns its summary and the state.
func resumeCancelled(t *testing.T, f *control.File, srv *faultserver.Server, out string, old []byte) (*Summary, *resumeState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	f.URLs = []string{srv.URL()}
	sum, err := Sync(runCtx, SyncOptions{
		Control: f, Output: out, HTTP: netHTTP(), Fetch: resumeFetch(), NoFsync: true,
		Progress: func(p Progress) {
			if p.Phase == "fetch" && p.Total > 0 && 2*p.Done >= p.Total {
				stop()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sync: err = %v, want context.Canceled", err)
	}
	netCheckResult(t, out, old)
	netCheckDir(t, filepath.Dir(out), netName, netName+".part", netName+".part.state")
	st, why := loadState(out+".part", f, controlID(f))
	if st == nil {
		t.Fatalf("cancelled sync left no usable state: %q", why)
	}
	return sum, st
}

func TestSyncResumeAfterCancel(t *testing.T) {
	old, target := resumeData(1)
	f := netControl(t, target, false)
	_, out := netDir(t, old)
	srv1 := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv1.Close)
	sum1, st := resumeCancelled(t, f, srv1, out, old)
	srv1.Close()
	missing1 := int64(len(target)) - sum1.Reused
	t.Logf("first run: %d body bytes served, %d requests, %d payload bytes verified", srv1.BytesServed(), srv1.Requests(), sum1.Fetched)
	resumeCheckSecondRun(t, f, st, missing1, srv1.Log(), out, target, func(srv *faultserver.Server) (*Summary, error) {
		var notes []string
		sum, err := Sync(context.Background(), SyncOptions{
			Control: f, Output: out, HTTP: netHTTP(), Fetch: resumeFetch(), NoFsync: true,
			Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) },
		})
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.HasPrefix(s, "resuming ") }) {
			t.Errorf("no note of resuming; notes: %q", notes)
		}
		return sum, err
	})
}

// A state file that belongs to another control file, or that cannot be
// read, is ignored: the sync starts afresh, using the old partial result
// only as a seed, and is still correct.
func TestSyncResumeIgnoresForeignState(t *testing.T) {
	old, target := resumeData(2)
	// Another version of the target: same length and block size, other
	// content at the end.
	other := bytes.Clone(target)
	copy(other[len(other)-4096:], bytes.Repeat([]byte("other "), 1000))
	fOther := netControl(t, other, false)
	f := netControl(t, target, false)
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	srvOther := faultserver.New(other, faultserver.Options{})
	t.Cleanup(srvOther.Close)

	t.Run("other-control", func(t *testing.T) {
		dir, out := netDir(t, old)
		resumeCancelled(t, fOther, srvOther, out, old)
		f.URLs = []string{srv.URL()}
		sum, notes := syncNoting(t, f, out)
		netCheckResult(t, out, target)
		netCheckDir(t, dir, netName)
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "belongs to another control file") }) {
			t.Errorf("no note of the foreign state; notes: %q", notes)
		}
		if !slices.Contains(sum.Seeds, out+".part.seed") {
			t.Errorf("the earlier partial result was not used as a seed: seeds %q", sum.Seeds)
		}
	})

	t.Run("unreadable", func(t *testing.T) {
		dir, out := netDir(t, old)
		if err := os.WriteFile(out+".part", target[:len(target)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out+".part.state", []byte(`{"version": 1, "done": "`), 0o644); err != nil {
			t.Fatal(err)
		}
		f.URLs = []string{srv.URL()}
		sum, notes := syncNoting(t, f, out)
		netCheckResult(t, out, target)
		netCheckDir(t, dir, netName)
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "unreadable") }) {
			t.Errorf("no note of the unreadable state; notes: %q", notes)
		}
		// The half target in the old .part served as a seed.
		if sum.Fetched >= int64(len(target))/2 {
			t.Errorf("fetched %d bytes though half of the target was in the old .part", sum.Fetched)
		}
	})

	// A state that vouches for blocks the .part no longer holds (the file
	// was damaged after the run) cannot make a wrong output: the whole-file
	// hash fails, every block is checked, and the damaged one is fetched
	// again (repair) before the result is renamed into place.
	t.Run("damaged-part", func(t *testing.T) {
		dir, out := netDir(t, old)
		_, st := resumeCancelled(t, f, srv, out, old)
		part, err := os.ReadFile(out + ".part")
		if err != nil {
			t.Fatal(err)
		}
		b := -1
		for i := f.Blocks() - 1; i >= 0; i-- {
			if st.done(i) {
				b = int(i)
				break
			}
		}
		if b < 0 {
			t.Fatal("no verified block in the state")
		}
		part[b*netBlocksize] ^= 0xff
		if err := os.WriteFile(out+".part", part, 0o644); err != nil {
			t.Fatal(err)
		}
		var notes []string
		_, err = Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: netHTTP(), NoFsync: true,
			Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }})
		if err != nil {
			t.Fatalf("sync over a damaged .part: %v", err)
		}
		want := fmt.Sprintf("%d bytes (1 ranges) failed their block checksums and are fetched again", netBlocksize)
		if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no note of the damaged block fetched again; notes: %q", notes)
		}
		netCheckResult(t, out, target)
		netCheckDir(t, dir, netName)
	})
}

// TestSyncResumeAfterKill kills a sync running in a child process (this test
// binary, running TestSyncResumeChild) once its periodic state save shows
// fetched blocks, and resumes it in this process.
func TestSyncResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	old, target := resumeData(3)
	f := netControl(t, target, false)
	_, out := netDir(t, old)
	// Every answer pauses half way: the sync takes several seconds.
	srv1 := faultserver.New(target, faultserver.Options{Stall: 300 * time.Millisecond})
	t.Cleanup(srv1.Close)
	f.URLs = []string{srv1.URL()}
	ctlPath := filepath.Join(t.TempDir(), "target.zsync")
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ctlPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSyncResumeChild$", "-test.v")
	cmd.Env = append(os.Environ(), "ZSYNCPIPE_RESUME_CHILD="+ctlPath+"\n"+out)
	var childOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	var waitErr error
	wait := func() error { waitOnce.Do(func() { waitErr = cmd.Wait() }); return waitErr }
	t.Cleanup(func() { cmd.Process.Kill(); wait() })

	// Wait until a saved state shows 32 fetched blocks verified.
	for {
		if ctx.Err() != nil {
			t.Fatalf("no state with fetched blocks before the deadline; child output:\n%s", childOut.String())
		}
		if s, _ := loadState(out+".part", f, controlID(f)); s != nil && len(resumeVerified(t, s, srv1.Log(), int64(len(target)))) >= 32 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Two processes, one output: while the child holds it, a sync here is
	// refused at once and touches nothing (it used to set the child's
	// .part aside and write its own). After the kill below, the lock is
	// gone with the child and the next run resumes.
	if _, err := Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: netHTTP(), NoFsync: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("sync beside the child = %v, want ErrBusy", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil {
		t.Fatalf("child finished before it was killed; output:\n%s", childOut.String())
	}
	srv1.Close()
	// The state on disk after the kill, which the next run uses.
	st, why := loadState(out+".part", f, controlID(f))
	if st == nil {
		t.Fatalf("no usable state after the kill: %q", why)
	}
	netCheckResult(t, out, old)
	// The missing bytes: the target less what the old version holds, as a
	// sync without interruption finds.
	ref, _ := netDir(t, old)
	refSrv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(refSrv.Close)
	fRef := *f
	fRef.URLs = []string{refSrv.URL()}
	refSum, err := Sync(ctx, SyncOptions{Control: &fRef, Output: filepath.Join(ref, netName), HTTP: netHTTP(), NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	missing := int64(len(target)) - refSum.Reused

	resumeCheckSecondRun(t, f, st, missing, srv1.Log(), out, target, func(srv *faultserver.Server) (*Summary, error) {
		// A kill during a save may leave the temporary state file.
		os.Remove(out + ".part.state.tmp")
		return Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: resumeFetch(), NoFsync: true})
	})
}

// TestSyncResumeChild is the child process of TestSyncResumeAfterKill: it
// syncs until killed.
func TestSyncResumeChild(t *testing.T) {
	env := os.Getenv("ZSYNCPIPE_RESUME_CHILD")
	if env == "" {
		t.Skip("only run as the child of TestSyncResumeAfterKill")
	}
	ctlPath, out, _ := strings.Cut(env, "\n")
	fh, err := os.Open(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := control.Read(fh)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: httpsource.Options{IdleTimeout: 10 * time.Second}, Fetch: resumeFetch(), NoFsync: true})
	t.Logf("sync ended: %v", err)
}

// syncNoting runs a Sync of f into out and returns its summary and the
// notes it logged; it fails t if the sync fails.
func syncNoting(t *testing.T, f *control.File, out string) (*Summary, []string) {
	t.Helper()
	var notes []string
	sum, err := Sync(context.Background(), SyncOptions{
		Control: f, Output: out, HTTP: netHTTP(), NoFsync: true,
		Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum, notes
}
