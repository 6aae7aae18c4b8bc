package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/internal/writeback"
)

// Tool names used in results.
const (
	ToolZsyncpipe = "zsyncpipe"
	ToolZsync     = "zsync"
)

// DefaultBlockSizes returns the sweep Run uses when Options.BlockSizes is
// empty: every power of two from 256 B to 1 MiB.
func DefaultBlockSizes() []int {
	var s []int
	for bs := 256; bs <= 1<<20; bs *= 2 {
		s = append(s, bs)
	}
	return s
}

// ZsyncMode says whether Run also measures zsync 0.6.2.
type ZsyncMode int

const (
	// ZsyncAuto measures zsync when zsync and zsyncmake are on PATH.
	ZsyncAuto ZsyncMode = iota
	// ZsyncRequire measures zsync and fails when it is not installed
	// (the --zsync flag).
	ZsyncRequire
	// ZsyncSkip does not run zsync (the --no-zsync flag).
	ZsyncSkip
)

// ErrOptions is wrapped by Run's errors about its options.
var ErrOptions = errors.New("bench: bad options")

// Options configures Run. Command-line flags map to fields as noted.
type Options struct {
	// Corpus is the pair of files to sync, from ParseCorpus (--corpus
	// KIND or OLD,NEW, with --seed and --size for generated kinds).
	Corpus Corpus
	// BlockSizes is the sweep, powers of two from 16 B to 1 GiB
	// (--block-sizes, parsed by ParseBlockSizes); DefaultBlockSizes when
	// empty.
	BlockSizes []int
	// Zsync says whether to measure zsync too (--zsync / --no-zsync).
	Zsync ZsyncMode
	// Binary is the program started for zsyncpipe's measured steps as
	// "Binary ChildArgs... make|sync ..." (--binary); the running program
	// (os.Executable) when empty.
	Binary string
	// ChildArgs are the arguments that select RunChild in Binary;
	// []string{ChildCommand} when nil.
	ChildArgs []string
	// Legacy makes zsyncpipe write the zsync 0.6.2 format (MD4, SHA-1)
	// instead of spec 0.8 (MD5, SHA-256).
	Legacy bool
	// NoFsync makes zsyncpipe skip flushing its result to disk before
	// renaming it (--no-fsync). By default it flushes, as its CLI does,
	// and its sync is compared with the durable floor; zsync 0.6.2 never
	// flushes.
	NoFsync bool
	// Runs repeats every timed step (and the floor) this many times and
	// keeps the fastest; 1 when zero.
	Runs int
	// StepTimeout bounds each child process (zsync 0.6.2 retries a
	// response it cannot parse forever); 10 minutes when zero.
	StepTimeout time.Duration
	// WorkDir holds control files and outputs; a temporary directory,
	// removed at the end, when empty.
	WorkDir string
	// Log, if set, receives one line per finished step.
	Log io.Writer
}

// Floor is the cost of the least work that rebuilds and verifies the target:
// reading it once while hashing it with SHA-256 (for make), copying it once
// to a new file while hashing it in the same pass (for sync), and the same
// copy made durable: writeback started as it is written, flushed to disk
// (fsync) at the end (for a sync that flushes, zsyncpipe's default). And
// the disk floor: writing the target's bytes into a new file and flushing
// it, nothing else, the fastest of the ways tried (WriteDurable,
// DiskMethods); zsync's sync time over it is the most any tool that
// leaves its result on the disk can be faster than zsync on this machine.
// Measured in-process on page-cached data.
type Floor struct {
	// Hash is the time to SHA-256 the target, CopyHash the time to copy
	// it while hashing it, Durable the time to copy, hash and flush it;
	// the MBps fields are their throughputs.
	Hash         time.Duration `json:"hash_ns"`
	HashMBps     float64       `json:"hash_mbps"`
	CopyHash     time.Duration `json:"copy_hash_ns"`
	CopyHashMBps float64       `json:"copy_hash_mbps"`
	Durable      time.Duration `json:"durable_ns"`
	DurableMBps  float64       `json:"durable_mbps"`
	// Disk is the time of WriteDurable of the target by the fastest of
	// DiskMethods, DiskMethod, in the fastest of the runs; DiskMBps its
	// throughput.
	Disk       time.Duration `json:"disk_ns"`
	DiskMethod DiskMethod    `json:"disk_method"`
	DiskMBps   float64       `json:"disk_mbps"`
}

// Result holds the figures of one tool at one block size. Times are wall
// times of the tool's process, start-up included; MB/s are 10^6 bytes of the
// target per second. Ratios to the floor are time/floor time: 1 is the
// floor, 2 twice as slow.
type Result struct {
	// Tool is ToolZsyncpipe or ToolZsync; BlockSize the block size.
	Tool      string `json:"tool"`
	BlockSize int    `json:"block_size"`
	// Err is set when the tool failed at this block size; the figures are
	// then incomplete.
	Err string `json:"error,omitempty"`

	// ControlSize is the size of the control file. Make is the time to
	// make it, MakeMBps the target's bytes per second, MakeVsFloor
	// Make / Floor.Hash, MakeMaxRSS the peak resident memory in bytes.
	ControlSize int64         `json:"control_bytes"`
	Make        time.Duration `json:"make_ns"`
	MakeMBps    float64       `json:"make_mbps"`
	MakeVsFloor float64       `json:"make_vs_floor"`
	MakeMaxRSS  int64         `json:"make_max_rss_bytes"`

	// Sync is the time to rebuild the target, SyncMBps its bytes per
	// second, SyncVsFloor Sync / Floor.CopyHash — or Sync / Floor.Durable
	// for a zsyncpipe that flushes its result (the default) — SyncMaxRSS
	// the peak resident memory in bytes.
	Sync        time.Duration `json:"sync_ns"`
	SyncMBps    float64       `json:"sync_mbps"`
	SyncVsFloor float64       `json:"sync_vs_floor"`
	SyncMaxRSS  int64         `json:"sync_max_rss_bytes"`
	// SyncVsDisk is Sync / Floor.Disk: for zsync, the most a tool that
	// flushes its result could be faster than zsync here.
	SyncVsDisk float64 `json:"sync_vs_disk"`

	// Reused is the target bytes taken from the old file, Fetched those
	// downloaded (payload). zsync does not report them: for zsync,
	// Fetched is the bytes its Range headers covered and Reused the rest.
	Reused      int64   `json:"reused_bytes"`
	ReusedShare float64 `json:"reused_share"`
	Fetched     int64   `json:"fetched_bytes"`
	// Requests, Ranges and RangeBytes (the bytes the Range headers
	// covered, merged gaps included) are counted by the server.
	Requests   int64 `json:"requests"`
	Ranges     int64 `json:"ranges"`
	RangeBytes int64 `json:"range_bytes"`
	// Wire is what the server sent: response headers, bodies, multipart
	// framing. Downloaded is what the client downloads in all:
	// ControlSize + Wire.
	Wire       int64 `json:"wire_bytes"`
	Downloaded int64 `json:"downloaded_bytes"`
}

// Report is the outcome of Run.
type Report struct {
	// Corpus is the pair of files measured; OldSize and NewSize their
	// sizes.
	Corpus  Corpus `json:"corpus"`
	OldSize int64  `json:"old_bytes"`
	NewSize int64  `json:"new_bytes"`
	// Start is when the run began; GoVersion, Platform and CPUs describe
	// the machine; ZsyncVersion is zsync's version line, empty when zsync
	// was not run.
	Start        time.Time `json:"start"`
	GoVersion    string    `json:"go_version"`
	Platform     string    `json:"platform"`
	CPUs         int       `json:"cpus"`
	ZsyncVersion string    `json:"zsync_version,omitempty"`
	// LoadBefore and LoadAfter are the 1, 5 and 15 minute load averages
	// (Linux only): other work on the machine skews the times.
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
	// Runs is how many times each step ran (the fastest counts); Floor
	// is the floor's cost.
	Runs  int   `json:"runs"`
	Floor Floor `json:"floor"`
	// NoFsync is Options.NoFsync: zsyncpipe did not flush its results.
	NoFsync bool `json:"no_fsync"`
	// Results holds, per block size in sweep order, zsyncpipe's result and
	// then zsync's, when measured.
	Results []Result `json:"results"`
	// Best maps each tool to the block size at which it downloaded the
	// fewest bytes.
	Best map[string]int `json:"best_block_size"`
}

// ParseBlockSizes parses a comma-separated list of block sizes, each in any
// form humanize.ParseBytes accepts ("4096", "4KiB"), or a range "MIN-MAX"
// meaning every power of two in between.
func ParseBlockSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := parseBlockSize(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseBlockSize(hi); err != nil {
				return nil, err
			}
		}
		for bs := a; bs <= b; bs *= 2 {
			out = append(out, bs)
		}
	}
	return out, nil
}

func parseBlockSize(s string) (int, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("block size %q: %w", s, ErrOptions)
	}
	if n > control.MaxBlocksize || control.CheckMakeBlocksize(int64(n)) != nil {
		return 0, fmt.Errorf("block size %q is not a power of two from %d B to 1 GiB: %w", s, control.MinMakeBlocksize, ErrOptions)
	}
	return int(n), nil
}

// Run measures zsyncpipe, and zsync when asked or available, on the corpus
// at every block size of the sweep, serving missing blocks to both from a
// loopback HTTP server. A tool failing at one block size is recorded in its
// Result and the sweep goes on; Run fails on bad options, on setup errors
// and when ctx ends.
func Run(ctx context.Context, opts Options) (*Report, error) {
	r := &runner{opts: opts}
	if err := r.setup(); err != nil {
		return nil, err
	}
	defer r.cleanup()
	return r.run(ctx)
}

type runner struct {
	opts   Options
	bin    string
	args   []string
	zsync  bool
	dir    string
	tmp    bool // dir is ours to remove
	old    string
	new    string
	size   int64
	digest [32]byte
	srv    *server
	rep    *Report
}

func (r *runner) setup() error {
	o := &r.opts
	if o.Corpus.Old == "" || o.Corpus.New == "" {
		return fmt.Errorf("no corpus: %w", ErrOptions)
	}
	var err error
	if r.old, err = filepath.Abs(o.Corpus.Old); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if r.new, err = filepath.Abs(o.Corpus.New); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if len(o.BlockSizes) == 0 {
		o.BlockSizes = DefaultBlockSizes()
	}
	for _, bs := range o.BlockSizes {
		if err := control.CheckMakeBlocksize(int64(bs)); err != nil {
			return fmt.Errorf("%w: %w", err, ErrOptions)
		}
	}
	if o.Runs <= 0 {
		o.Runs = 1
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 10 * time.Minute
	}
	r.bin = o.Binary
	if r.bin == "" {
		if r.bin, err = os.Executable(); err != nil {
			return fmt.Errorf("bench: find own binary: %w", err)
		}
	}
	r.args = o.ChildArgs
	if r.args == nil {
		r.args = []string{ChildCommand}
	}
	switch o.Zsync {
	case ZsyncAuto, ZsyncRequire:
		_, err1 := exec.LookPath("zsync")
		_, err2 := exec.LookPath("zsyncmake")
		if err := errors.Join(err1, err2); err != nil {
			if o.Zsync == ZsyncRequire {
				return fmt.Errorf("bench: zsync asked for: %w", err)
			}
		} else {
			r.zsync = true
		}
	case ZsyncSkip:
	default:
		return fmt.Errorf("zsync mode %d: %w", o.Zsync, ErrOptions)
	}
	if o.WorkDir == "" {
		if r.dir, err = os.MkdirTemp("", "zsyncpipe-bench-"); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		r.tmp = true
	} else {
		if r.dir, err = filepath.Abs(o.WorkDir); err == nil {
			err = os.MkdirAll(r.dir, 0o755)
		}
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

func (r *runner) cleanup() {
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.srv.close(ctx)
		cancel()
	}
	if r.tmp {
		os.RemoveAll(r.dir)
	}
}

func (r *runner) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, format+"\n", args...)
	}
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	rep := &Report{
		Corpus:     r.opts.Corpus,
		Start:      time.Now(),
		GoVersion:  runtime.Version(),
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		Runs:       r.opts.Runs,
		NoFsync:    r.opts.NoFsync,
		LoadBefore: loadAvg(),
		Best:       map[string]int{},
	}
	r.rep = rep
	for _, p := range []struct {
		path string
		size *int64
	}{{r.old, &rep.OldSize}, {r.new, &rep.NewSize}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		*p.size = fi.Size()
	}
	r.size = rep.NewSize
	if r.size == 0 {
		return nil, fmt.Errorf("bench: %s is empty, which zsync cannot describe: %w", r.new, ErrOptions)
	}
	if r.zsync {
		out, _ := exec.CommandContext(ctx, "zsync", "-V").CombinedOutput()
		rep.ZsyncVersion, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	if err := r.floor(ctx); err != nil {
		return nil, err
	}
	srv, err := startServer(r.new, "new")
	if err != nil {
		return nil, err
	}
	r.srv = srv

	for _, bs := range r.opts.BlockSizes {
		dir := filepath.Join(r.dir, "bs"+strconv.Itoa(bs))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		res := r.measure(ctx, ToolZsyncpipe, bs, dir)
		rep.Results = append(rep.Results, res)
		if r.zsync {
			rep.Results = append(rep.Results, r.measure(ctx, ToolZsync, bs, dir))
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		os.RemoveAll(dir)
	}
	rep.LoadAfter = loadAvg()
	for _, res := range rep.Results {
		if res.Err != "" {
			continue
		}
		if b, ok := rep.Best[res.Tool]; !ok || res.Downloaded < r.result(res.Tool, b).Downloaded {
			rep.Best[res.Tool] = res.BlockSize
		}
	}
	return rep, nil
}

// result returns the result of tool at block size bs.
func (r *runner) result(tool string, bs int) Result {
	for _, res := range r.rep.Results {
		if res.Tool == tool && res.BlockSize == bs {
			return res
		}
	}
	return Result{}
}

// floor warms the page cache with both files, computes the target's digest
// and measures the floor.
func (r *runner) floor(ctx context.Context) error {
	buf := make([]byte, 1<<20)
	for _, p := range []string{r.old, r.new} {
		if _, err := hashFile(p, nil, buf); err != nil {
			return err
		}
	}
	f := &r.rep.Floor
	for range r.opts.Runs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		start := time.Now()
		d, err := hashFile(r.new, nil, buf)
		if err != nil {
			return err
		}
		f.Hash = fastest(f.Hash, time.Since(start))
		r.digest = d

		out := filepath.Join(r.dir, "floor.out")
		start = time.Now()
		if _, err := hashFile(r.new, func() (io.WriteCloser, error) { return os.Create(out) }, buf); err != nil {
			return err
		}
		f.CopyHash = fastest(f.CopyHash, time.Since(start))
		os.Remove(out)

		start = time.Now()
		if _, err := hashFile(r.new, func() (io.WriteCloser, error) { return createDurable(out) }, buf); err != nil {
			return err
		}
		f.Durable = fastest(f.Durable, time.Since(start))
		os.Remove(out)

		for _, m := range DiskMethods() {
			disk, err := diskFloor(ctx, r.new, out, m)
			if err != nil {
				return err
			}
			if f.Disk == 0 || disk < f.Disk {
				f.Disk, f.DiskMethod = disk, m
			}
		}
	}
	f.HashMBps = mbps(r.size, f.Hash)
	f.CopyHashMBps = mbps(r.size, f.CopyHash)
	f.DurableMBps = mbps(r.size, f.Durable)
	f.DiskMBps = mbps(r.size, f.Disk)
	r.logf("floor: sha256 %v (%.0f MB/s), copy+sha256 %v (%.0f MB/s), durable %v (%.0f MB/s), disk %v (%.0f MB/s, %s)",
		f.Hash.Round(time.Millisecond), f.HashMBps, f.CopyHash.Round(time.Millisecond), f.CopyHashMBps,
		f.Durable.Round(time.Millisecond), f.DurableMBps, f.Disk.Round(time.Millisecond), f.DiskMBps, f.DiskMethod)
	return nil
}

// hashFile reads path once and returns its SHA-256; when create is set, it
// also writes the bytes to the file it creates, in the same pass.
func hashFile(path string, create func() (io.WriteCloser, error), buf []byte) ([32]byte, error) {
	var d [32]byte
	in, err := os.Open(path)
	if err != nil {
		return d, fmt.Errorf("bench: %w", err)
	}
	defer in.Close()
	h := sha256.New()
	var w io.Writer = h
	var out io.WriteCloser
	if create != nil {
		if out, err = create(); err != nil {
			return d, fmt.Errorf("bench: %w", err)
		}
		w = io.MultiWriter(out, h)
	}
	_, err = io.CopyBuffer(w, in, buf)
	if out != nil {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return d, fmt.Errorf("bench: hash %s: %w", path, err)
	}
	h.Sum(d[:0])
	return d, nil
}

// durableFile is a file whose writeback starts while it is written and
// which is flushed to disk when closed: the durable floor's output.
type durableFile struct {
	*os.File
	wb *writeback.Every
}

func createDurable(path string) (io.WriteCloser, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &durableFile{File: f, wb: writeback.NewEvery(f, 8<<20)}, nil
}

func (d *durableFile) Write(p []byte) (int, error) {
	n, err := d.File.Write(p)
	d.wb.Wrote(int64(n))
	return n, err
}

func (d *durableFile) Close() error {
	err := d.wb.Close()
	if serr := osfile.Sync(d.File); err == nil {
		err = serr
	}
	if cerr := d.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// measure makes and syncs with one tool at one block size, Runs times.
func (r *runner) measure(ctx context.Context, tool string, bs int, dir string) Result {
	res := Result{Tool: tool, BlockSize: bs}
	ctl := filepath.Join(dir, tool+".zsync")
	syncDir := filepath.Join(dir, tool)
	bsArg := strconv.Itoa(bs)
	fail := func(step string, err error) Result {
		res.Err = fmt.Sprintf("%s: %v", step, err)
		r.logf("%s at %s: %s", tool, humanize.IBytes(uint64(bs)), res.Err)
		return res
	}
	for range r.opts.Runs {
		// Make.
		var name string
		var args []string
		if tool == ToolZsyncpipe {
			name = r.bin
			args = append(append(args, r.args...), "make", "-b", bsArg, "-u", r.srv.URL, "-o", ctl)
			if r.opts.Legacy {
				args = append(args, "-legacy")
			}
			args = append(args, r.new)
		} else {
			name = "zsyncmake"
			args = []string{"-b", bsArg, "-u", r.srv.URL, "-o", ctl, r.new}
		}
		p, err := r.runProc(ctx, dir, name, args...)
		if err != nil {
			return fail("make", err)
		}
		if res.Make == 0 || p.wall < res.Make {
			res.Make = p.wall
		}
		res.MakeMaxRSS = p.maxRSS
		fi, err := os.Stat(ctl)
		if err != nil {
			return fail("make", err)
		}
		res.ControlSize = fi.Size()

		// Sync into a fresh directory.
		if err := os.RemoveAll(syncDir); err != nil {
			return fail("sync", err)
		}
		if err := os.MkdirAll(syncDir, 0o755); err != nil {
			return fail("sync", err)
		}
		out := filepath.Join(syncDir, "out")
		if tool == ToolZsyncpipe {
			args = append(append([]string(nil), r.args...), "sync", "-i", r.old, "-o", out)
			if !r.opts.NoFsync {
				args = append(args, "-fsync")
			}
			args = append(args, ctl)
		} else {
			name = "zsync"
			args = []string{"-q", "-i", r.old, "-o", "out", ctl}
		}
		before := r.srv.snapshot()
		p, err = r.runProc(ctx, syncDir, name, args...)
		tr := r.srv.snapshot().sub(before)
		if err != nil {
			return fail("sync", err)
		}
		d, err := hashFile(out, nil, make([]byte, 1<<20))
		if err != nil {
			return fail("verify", err)
		}
		if d != r.digest {
			return fail("verify", errors.New("the output differs from the new file"))
		}
		if res.Sync == 0 || p.wall < res.Sync {
			res.Sync = p.wall
		}
		res.SyncMaxRSS = p.maxRSS
		res.Requests, res.Ranges, res.RangeBytes, res.Wire = tr.Requests, tr.Ranges, tr.RangeBytes, tr.Sent
		res.Fetched = tr.RangeBytes
		res.Reused = max(0, r.size-tr.RangeBytes)
		if tool == ToolZsyncpipe {
			var c childResult
			if err := json.Unmarshal(p.stdout, &c); err != nil {
				return fail("sync", fmt.Errorf("child output %q: %w", p.stdout, err))
			}
			res.Reused, res.Fetched = c.Reused, c.Fetched
		}
		os.RemoveAll(syncDir)
	}
	res.Downloaded = res.ControlSize + res.Wire
	res.ReusedShare = float64(res.Reused) / float64(r.size)
	res.MakeMBps = mbps(r.size, res.Make)
	res.SyncMBps = mbps(r.size, res.Sync)
	res.MakeVsFloor = ratio(res.Make, r.rep.Floor.Hash)
	res.SyncVsFloor = ratio(res.Sync, r.rep.Floor.CopyHash)
	if tool == ToolZsyncpipe && !r.opts.NoFsync {
		res.SyncVsFloor = ratio(res.Sync, r.rep.Floor.Durable)
	}
	res.SyncVsDisk = ratio(res.Sync, r.rep.Floor.Disk)
	r.logf("%-9s %7s: control %s, make %v (%.0f MB/s, %s), sync %v (%.0f MB/s, %s), reused %.1f%%, downloaded %s",
		tool, humanize.IBytes(uint64(bs)), humanize.IBytes(uint64(res.ControlSize)),
		res.Make.Round(time.Millisecond), res.MakeMBps, humanize.IBytes(uint64(res.MakeMaxRSS)),
		res.Sync.Round(time.Millisecond), res.SyncMBps, humanize.IBytes(uint64(res.SyncMaxRSS)),
		100*res.ReusedShare, humanize.IBytes(uint64(res.Downloaded)))
	return res
}

// proc is the outcome of one child process.
type proc struct {
	wall   time.Duration
	maxRSS int64 // bytes; 0 when the platform does not say
	stdout []byte
}

// runProc runs name with args in dir and measures it.
func (r *runner) runProc(ctx context.Context, dir, name string, args ...string) (proc, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.StepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	p := proc{wall: time.Since(start), stdout: stdout.Bytes()}
	if cmd.ProcessState != nil {
		p.maxRSS = maxRSS(cmd.ProcessState)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = "…" + msg[len(msg)-500:]
		}
		return p, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return p, nil
}

// loadAvg returns the load averages from /proc/loadavg, or zeros.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 3 {
			break
		}
		l[i], _ = strconv.ParseFloat(f, 64)
	}
	return l
}

func fastest(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
