package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
)

// ChildCommand is the first argument with which Run starts zsyncpipe's
// child processes: "BINARY bench-child make|sync ...". A program used as
// Options.Binary must pass the arguments after it to RunChild.
const ChildCommand = "bench-child"

// ErrChildUsage is wrapped by RunChild's errors about its arguments.
var ErrChildUsage = errors.New("bench child: bad arguments")

// childResult is what a child prints, as JSON, on success.
type childResult struct {
	// Duration is the time of the work proper, without process start-up.
	Duration time.Duration `json:"duration"`
	// Sync only: the summary and the HTTP source's counts.
	Reused   int64 `json:"reused"`
	Fetched  int64 `json:"fetched"`
	Requests int64 `json:"requests"`
	Ranges   int64 `json:"ranges"`
	Body     int64 `json:"body"`
	Headers  int64 `json:"headers"`
}

// RunChild runs one measured step in a child process and prints its result
// as one JSON object to stdout. args are the arguments after ChildCommand:
//
//	make [-legacy] [-cpuprofile F] [-memprofile F] -b BLOCKSIZE -u URL -o OUT.zsync FILE
//	sync [-fsync] [-cpuprofile F] [-memprofile F] -i SEED -o OUT CONTROL
//	disk [-method hints|flushes|plain] -o OUT FILE
//
// -cpuprofile writes a CPU profile of the step, -memprofile its
// allocations (for go tool pprof).
// make writes the control file of FILE; sync rebuilds the target of CONTROL
// from SEED, fetching missing blocks over HTTP from the control file's first
// URL. disk measures the disk floor: it writes FILE's bytes into OUT and
// flushes it (WriteDurable, by one of DiskMethods), then removes OUT.
func RunChild(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("want make, sync or disk: %w", ErrChildUsage)
	}
	fs := flag.NewFlagSet(ChildCommand+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var res childResult
	var run func() error
	switch args[0] {
	case "make":
		bs := fs.Int("b", 0, "block size")
		url := fs.String("u", "", "URL")
		out := fs.String("o", "", "output")
		legacy := fs.Bool("legacy", false, "zsync 0.6.2 format")
		run = func() error {
			if fs.NArg() != 1 || *out == "" {
				return fmt.Errorf("make wants -o and one FILE: %w", ErrChildUsage)
			}
			return childMake(ctx, fs.Arg(0), *out, *url, *bs, *legacy)
		}
	case "sync":
		seed := fs.String("i", "", "seed")
		out := fs.String("o", "", "output")
		fsync := fs.Bool("fsync", false, "flush the result")
		run = func() error {
			if fs.NArg() != 1 || *out == "" || *seed == "" {
				return fmt.Errorf("sync wants -i, -o and one CONTROL: %w", ErrChildUsage)
			}
			return childSync(ctx, fs.Arg(0), *seed, *out, !*fsync, &res)
		}
	case "disk":
		out := fs.String("o", "", "output")
		method := fs.String("method", string(DiskHints), "how to write and flush")
		run = func() error {
			if fs.NArg() != 1 || *out == "" {
				return fmt.Errorf("disk wants -o and one FILE: %w", ErrChildUsage)
			}
			if !slices.Contains(DiskMethods(), DiskMethod(*method)) {
				return fmt.Errorf("disk: no method %q (%v): %w", *method, DiskMethods(), ErrChildUsage)
			}
			_, err := diskFloor(ctx, fs.Arg(0), *out, DiskMethod(*method))
			return err
		}
	default:
		return fmt.Errorf("unknown step %q: %w", args[0], ErrChildUsage)
	}
	profile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations) to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %w", ErrChildUsage, err)
	}
	if *profile != "" {
		pf, err := os.Create(*profile)
		if err != nil {
			return fmt.Errorf("bench child: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("bench child: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		// The zsyncpipe command turns sampling off; this is its default.
		runtime.MemProfileRate = 512 << 10
	}
	start := time.Now()
	if err := run(); err != nil {
		return err
	}
	res.Duration = time.Since(start)
	if *memProfile != "" {
		mf, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("bench child: %w", err)
		}
		defer mf.Close()
		if err := pprof.Lookup("allocs").WriteTo(mf, 0); err != nil {
			return fmt.Errorf("bench child: %w", err)
		}
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	return nil
}

// childMake writes the control file of path to out.
func childMake(ctx context.Context, path, out, url string, bs int, legacy bool) error {
	opts := zsyncpipe.MakeOptions{Blocksize: bs, Legacy: legacy}
	if url != "" {
		opts.URLs = []string{url}
	}
	f, err := zsyncpipe.MakeFile(ctx, path, opts)
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	w, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	err = control.Write(bw, f)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench child: write %s: %w", out, err)
	}
	return nil
}

// childSync rebuilds out from seed and the control file's first URL.
func childSync(ctx context.Context, ctlPath, seed, out string, noFsync bool, res *childResult) error {
	in, err := os.Open(ctlPath)
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	f, err := control.Read(bufio.NewReaderSize(in, 1<<20))
	in.Close()
	if err != nil {
		return fmt.Errorf("bench child: %s: %w", ctlPath, err)
	}
	if len(f.URLs) == 0 {
		return fmt.Errorf("bench child: %s lists no URL: %w", ctlPath, ErrChildUsage)
	}
	src, err := httpsource.New(f.URLs[0], httpsource.Options{})
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	defer src.CloseIdleConnections()
	sum, err := zsyncpipe.Sync(ctx, zsyncpipe.SyncOptions{
		Control: f,
		Output:  out,
		Seeds:   []string{seed},
		Source:  src,
		NoFsync: noFsync,
	})
	if err != nil {
		return fmt.Errorf("bench child: %w", err)
	}
	st := src.Stats()
	res.Reused, res.Fetched = sum.Reused, sum.Fetched
	res.Requests, res.Ranges = st.Requests, st.Ranges
	res.Body, res.Headers = st.BodyBytes, st.HeaderBytes
	return nil
}
