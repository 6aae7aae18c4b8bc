// Package demo runs zsyncpipe end to end on generated data, as a
// demonstration and a smoke test that needs no network and no setup.
//
// Run generates an old and a new version of a sample data set in a temporary
// directory, makes the control file of the new version with
// zsyncpipe.MakeFile, serves the new version and its control file from a
// loopback HTTP server inside the process, syncs the old version to the new
// one over HTTP with zsyncpipe.Sync (downloading the control file, then only
// the missing ranges), verifies that the result is byte-identical to the new
// version and reports each step.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
)

// DefaultSize is the size of the data set when Options.Size is zero.
const DefaultSize = 32 << 20

// maxSize bounds Options.Size: the data set is held in memory twice.
const maxSize = 4 << 30

// Options configures Run. The zero value runs the default demo.
type Options struct {
	// Size is the approximate size of the data set; 0 means DefaultSize.
	Size int64
	// Seed selects the generated data; the same seed gives the same data.
	Seed uint64
	// Blocksize is passed to zsyncpipe.MakeOptions; 0 chooses the default.
	Blocksize int
	// Legacy makes a zsync 0.6.2 control file (MD4, SHA-1).
	Legacy bool
	// Dir is where the working directory is created; "" means the
	// system's temporary directory.
	Dir string
	// Keep leaves the working directory in place instead of removing it.
	Keep bool
}

// name is the file name of the data set.
const name = "sample.bin"

// prepare checks the size of opts and makes the working directory.
// cleanup removes it or, with opts.Keep, reports where it is, after a
// label padded by pad.
func prepare(w io.Writer, opts Options, pad string) (size int64, work string, cleanup func() error, err error) {
	size = opts.Size
	if size == 0 {
		size = DefaultSize
	}
	if size < 0 || size > maxSize {
		return 0, "", nil, fmt.Errorf("%w: size %d out of range 1..%d", zsyncpipe.ErrUsage, size, int64(maxSize))
	}
	work, err = os.MkdirTemp(opts.Dir, "zsyncpipe-demo-")
	if err != nil {
		return 0, "", nil, err
	}
	cleanup = func() error {
		if opts.Keep {
			fmt.Fprintf(w, "kept"+pad+"%s\n", work)
			return nil
		}
		return os.RemoveAll(work)
	}
	return size, work, cleanup, nil
}

// Run runs the demonstration and writes its report to w. It returns an
// error wrapping zsyncpipe.ErrVerify if the rebuilt file differs from the new
// version.
func Run(ctx context.Context, w io.Writer, opts Options) (err error) {
	size, work, cleanup, err := prepare(w, opts, "      ")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); err == nil {
			err = cerr
		}
	}()
	server := filepath.Join(work, "server")
	client := filepath.Join(work, "client")
	for _, d := range []string{server, client} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	target := filepath.Join(server, name)
	ctlPath := target + ".zsync"
	output := filepath.Join(client, name)

	// Data.
	start := time.Now()
	oldData, newData, edits := Versions(opts.Seed, int(size))
	if err := os.WriteFile(target, newData, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(output, oldData, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "data      old version %s, new version %s (seed %d, generated in %s)\n",
		humanize.IBytes(uint64(len(oldData))), humanize.IBytes(uint64(len(newData))), opts.Seed, since(start))
	fmt.Fprintf(w, "          edits: %v\n", edits)

	// Make.
	start = time.Now()
	f, err := zsyncpipe.MakeFile(ctx, target, zsyncpipe.MakeOptions{
		Blocksize: opts.Blocksize,
		Legacy:    opts.Legacy,
	})
	if err != nil {
		return fmt.Errorf("make: %w", err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	if err := os.WriteFile(ctlPath, buf.Bytes(), 0o644); err != nil {
		return err
	}
	d := time.Since(start)
	hl := f.HashLengths
	fmt.Fprintf(w, "make      %s: %d blocks of %s, %v block hashes, Hash-Lengths %d,%d,%d, control file %s, in %s, %s\n",
		filepath.Base(ctlPath), f.Blocks(), humanize.IBytes(uint64(f.Blocksize)), f.StrongAlgorithm,
		hl.SeqMatches, hl.RsumBytes, hl.StrongBytes, humanize.IBytes(uint64(buf.Len())),
		seconds(d), rate(int64(len(newData)), d))

	// Serve the server directory on loopback, as a web server would.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(server)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	ctlURL := "http://" + ln.Addr().String() + "/" + filepath.Base(ctlPath)
	fmt.Fprintf(w, "serve     %s\n", ctlURL)

	// Sync over HTTP: the control file first, then the missing ranges.
	start = time.Now()
	ctl, err := zsyncpipe.LoadControl(ctx, ctlURL, zsyncpipe.LoadOptions{})
	if err != nil {
		return err
	}
	sum, err := zsyncpipe.Sync(ctx, zsyncpipe.SyncOptions{
		Control: ctl.File,
		Output:  output,
		BaseURL: ctl.BaseURL,
	})
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if sum.Duration <= 0 {
		sum.Duration = time.Since(start)
	}
	ranges := ""
	if sum.Ranges > 0 {
		ranges = fmt.Sprintf(" in %d ranges, %d requests, %s protocol overhead", sum.Ranges, sum.Requests, humanize.IBytes(uint64(sum.Overhead)))
	}
	fmt.Fprintf(w, "sync      %s: %s (%s reused from local data, %s fetched%s) in %s, %s\n",
		name, humanize.IBytes(uint64(sum.Length)), humanize.IBytes(uint64(sum.Reused)),
		humanize.IBytes(uint64(sum.Fetched)), ranges, seconds(sum.Duration), rate(sum.Length, sum.Duration))
	if sum.Length > 0 {
		fmt.Fprintf(w, "          downloaded %.1f%% of the file\n", 100*float64(sum.Fetched)/float64(sum.Length))
	}
	if len(sum.Stages) > 0 {
		fmt.Fprintf(w, "          sync pipeline stages (* marks the bottleneck):\n")
		if err := pipeline.FormatStats(&indent{w: w, prefix: "          "}, sum.Stages); err != nil {
			return err
		}
	}

	// Verify, independently of the library's own check.
	got, err := os.ReadFile(output)
	if err != nil {
		return err
	}
	if i, ok := firstDiff(got, newData); !ok {
		return fmt.Errorf("%w: %s differs from the new version at byte %d (lengths %d and %d)",
			zsyncpipe.ErrVerify, output, i, len(got), len(newData))
	}
	fmt.Fprintf(w, "verify    output is byte-identical to the new version, SHA-256 %x\n", sha256.Sum256(got))
	return nil
}

// firstDiff returns the offset of the first difference of a and b and
// false, or 0 and true when they are equal.
func firstDiff(a, b []byte) (int, bool) {
	n := min(len(a), len(b))
	for i := 0; i < n; i += 64 << 10 {
		j := min(i+64<<10, n)
		if !bytes.Equal(a[i:j], b[i:j]) {
			for k := i; k < j; k++ {
				if a[k] != b[k] {
					return k, false
				}
			}
		}
	}
	if len(a) != len(b) {
		return n, false
	}
	return 0, true
}

func since(t time.Time) string { return seconds(time.Since(t)) }

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// rate formats n bytes in d as a throughput, e.g. "725 MB/s".
func rate(n int64, d time.Duration) string {
	if d <= 0 || n <= 0 {
		return "- MB/s"
	}
	return humanize.Bytes(uint64(float64(n)/d.Seconds())) + "/s"
}

// indent prefixes every line written through it.
type indent struct {
	w      io.Writer
	prefix string
	mid    bool // in the middle of a line
}

func (in *indent) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if !in.mid {
			if _, err := io.WriteString(in.w, in.prefix); err != nil {
				return n, err
			}
			in.mid = true
		}
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line = p[:i+1]
			in.mid = false
		}
		m, err := in.w.Write(line)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(line):]
	}
	return n, nil
}
