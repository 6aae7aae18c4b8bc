package zsyncpipe

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// bytesPair returns an old version and a new one shaped like consecutive
// releases of a tar of binaries: most data unchanged but shifted by
// inserted and deleted stretches, some stretches new, and clusters of
// in-place edits a block or two apart (a binary where many addresses
// changed), between which single unchanged blocks lie.
func bytesPair(seed uint64, size, bs int) (old, cur []byte) {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	old = randomBytes(rng, size)
	cur = bytes.Clone(old)
	for range 12 { // clusters: one byte changed in every second or third block
		at := rng.IntN(len(cur)/bs-40) * bs
		for k := 0; k < 30; k += 2 + rng.IntN(2) {
			cur[at+k*bs+rng.IntN(bs)] ^= 0x5a
		}
	}
	for range 8 { // shifts and new data
		pos := rng.IntN(len(cur))
		switch rng.IntN(3) {
		case 0:
			cur = append(cur[:pos:pos], append(randomBytes(rng, 1+rng.IntN(3*bs)), cur[pos:]...)...)
		case 1:
			cur = append(cur[:pos:pos], cur[min(len(cur), pos+1+rng.IntN(2*bs)):]...)
		case 2:
			end := min(len(cur), pos+rng.IntN(8*bs))
			copy(cur[pos:end], randomBytes(rng, end-pos))
		}
	}
	return old, cur
}

// TestBytesNoMoreThanZsync rebuilds generated pairs through nginx with the
// zsync 0.6.2 client (control file by zsyncmake) and with Sync (control
// file by MakeFile, the default format), and counts what nginx sent for
// each — control file, headers, multipart framing, payload — as
// bench/realpair.sh does on real release pairs. zsyncpipe must download no
// more than zsync: its control file is larger (SHA-256, Hash-Chain) and its
// parallel scan may choose other alignments than zsync's serial one, which
// the plan must make up for (seedscan.Extend, fuller requests).
func TestBytesNoMoreThanZsync(t *testing.T) {
	zsync := testtool.Look(t, "zsync", "zsync")
	zsyncmake := testtool.Look(t, "zsyncmake", "zsync")
	const bs = 4096
	for _, seed := range []uint64{1, 2, 3} {
		old, target := bytesPair(seed, 12<<20, bs)
		root := t.TempDir()
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "new.bin"), target, 0o644); err != nil {
			t.Fatal(err)
		}
		// One server for each client: their logs cannot mix.
		srv, zsrv := nginxtest.Start(t, root), nginxtest.Start(t, root)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		cmd := exec.CommandContext(ctx, zsyncmake, "-b", "4096", "-u", zsrv.Base+"/new.bin", "-o", "zm.zsync", "new.bin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsyncmake: %v\n%s", err, out)
		}
		cwd := t.TempDir()
		if err := os.WriteFile(filepath.Join(cwd, "old.bin"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.CommandContext(ctx, zsync, "-q", "-i", "old.bin", "-o", "out.bin", zsrv.Base+"/zm.zsync")
		cmd.Dir = cwd
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsync: %v\n%s", err, out)
		}
		netCheckResult(t, filepath.Join(cwd, "out.bin"), target)

		f, err := MakeFile(ctx, filepath.Join(root, "new.bin"), MakeOptions{Blocksize: bs})
		if err != nil {
			t.Fatal(err)
		}
		nginxWriteControl(t, filepath.Join(root, "zsp.zsync"), f)
		sum := nginxSync(t, srv.Base+"/zsp.zsync", old, target)
		// nginx logs a request once its last byte is sent: wait for ours
		// (zsync's are logged by now).
		var ours []string
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			ours = srv.AccessLines(t, "/new.bin")
			if int64(len(ours)) >= sum.Requests || time.Now().After(deadline) {
				break
			}
		}
		oursBytes := nginxtest.BytesSent(t, srv.AccessLines(t, "/zsp.zsync")) + nginxtest.BytesSent(t, ours)
		zsyncData := zsrv.AccessLines(t, "/new.bin")
		zsyncBytes := nginxtest.BytesSent(t, zsrv.AccessLines(t, "/zm.zsync")) + nginxtest.BytesSent(t, zsyncData)
		t.Logf("seed %d: zsync %d bytes in %d requests; zsyncpipe %d bytes in %d requests (%d ranges, %d fetched)",
			seed, zsyncBytes, len(zsyncData)+1, oursBytes, len(ours)+1, sum.Ranges, sum.Fetched)
		if oursBytes > zsyncBytes {
			t.Errorf("seed %d: zsyncpipe downloaded %d bytes, zsync 0.6.2 %d", seed, oursBytes, zsyncBytes)
		}
		// zsync sends its requests one after the other; ours go up to
		// DefaultConcurrency at a time: no more rounds of them.
		if rounds := (len(ours) + stages.DefaultConcurrency - 1) / stages.DefaultConcurrency; rounds > len(zsyncData) {
			t.Errorf("seed %d: zsyncpipe made %d range requests (%d rounds), zsync 0.6.2 %d", seed, len(ours), rounds, len(zsyncData))
		}
	}
}
