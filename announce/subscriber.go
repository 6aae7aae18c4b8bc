// Package announce connects zsyncpipe to Sarracenia-style announcement
// networks: a Publisher posts a v03 message for every changed file (with
// zsyncpipe's "zsync" field naming, and for small ones carrying, its
// control file), and a Subscriber receives such messages from a broker and
// brings a local directory up to date, delta-syncing each changed file with
// zsyncpipe.Sync.
//
// Delivery is at least once: a Subscriber acknowledges a message only
// after the file it announces is in place and verified, and handles
// duplicates and messages older than the local file without harm.
package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/partition"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// ErrUnsupported is returned (wrapped) for a valid message this package
// does not act on (a "separate" partition, a link leaving the directory).
var ErrUnsupported = errors.New("unsupported announcement")

// ErrMismatch is returned (wrapped) when a fetched file does not match the
// message's identity or size; the local file is left as it was.
var ErrMismatch = errors.New("file does not match its announcement")

// Action says what a Subscriber did with a message.
type Action string

// Actions of a Result.
const (
	Unchanged  Action = "unchanged"  // the local file already has that identity
	Older      Action = "older"      // a newer announcement of the file was applied
	Synced     Action = "synced"     // rebuilt with the delta pipeline
	Downloaded Action = "downloaded" // fetched whole (no control file)
	Inlined    Action = "inline"     // written from the message's content
	Renamed    Action = "renamed"    // fileOp rename of a file already at hand
	Removed    Action = "removed"    // fileOp remove
	Created    Action = "directory"  // fileOp directory
	Linked     Action = "linked"     // fileOp link or hlink
	Rejected   Action = "rejected"   // malformed, hostile or failed

	PartitionIn Action = "partition" // a partition of a partitioned file is in; the file is not complete yet
	Assembled   Action = "assembled" // the last partition is in: the whole file verified and in place
)

// Result is the outcome of one message.
type Result struct {
	// Path is the message's relPath (cleaned), empty if unreadable.
	Path string
	// Action is what was done.
	Action Action
	// Fetched is the number of bytes downloaded for the file.
	Fetched int64
	// Reused is the number of bytes taken from local data.
	Reused int64
	// Duration is the time spent on the message.
	Duration time.Duration
	// Err is set when Action is Rejected.
	Err error
}

// SubscriberOptions configure a Subscriber.
type SubscriberOptions struct {
	// Dir is the directory kept up to date; required.
	Dir string
	// Seeds are further directories that may hold older versions of the
	// announced files, at the same relative paths.
	Seeds []string
	// Workers is how many messages are worked on at once; default 4.
	Workers int
	// Limits bound what messages may announce.
	Limits v03.Limits
	// HTTP configures downloads of control files and file data.
	HTTP httpsource.Options
	// Attempts is how often a failed transfer is tried before the message
	// is rejected; default 3.
	Attempts int
	// ProbeMin: for an announcement without a zsync field of a file of at
	// least ProbeMin bytes of which an older version is at hand, a control
	// file is looked for beside the file and in the tree's .zsyncpipe
	// directory; default DefaultProbeMin, negative never.
	ProbeMin int64
	// NoFsync skips flushing files to disk before they are renamed into
	// place.
	NoFsync bool
	// Logf, if set, receives one line per problem.
	Logf func(format string, args ...any)
	// OnResult, if set, is called after each message, from the workers.
	OnResult func(Result)
}

// Subscriber applies announcements to a directory.
type Subscriber struct {
	opts   SubscriberOptions
	client *http.Client

	locks sync.Map // relPath -> *sync.Mutex: one message per file at a time

	mu     sync.Mutex
	cache  map[string]cachedIdentity // absolute path -> identity of a version
	stamps map[string]time.Time      // absolute path -> stamp of the newest announcement applied
}

// cachedIdentity remembers an identity computed for one version of a file.
type cachedIdentity struct {
	size  int64
	mtime time.Time
	id    v03.Identity
}

// NewSubscriber returns a Subscriber for opts.Dir, which is created if
// missing.
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("subscriber: no directory: %w", zsyncpipe.ErrUsage)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	opts.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.ProbeMin == 0 {
		opts.ProbeMin = DefaultProbeMin
	}
	client := opts.HTTP.Client
	if client == nil {
		// No overall timeout (files may be large), but a server that does
		// not answer does not hold a worker forever.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Minute
		client = &http.Client{Transport: tr}
	}
	return &Subscriber{opts: opts, client: client, cache: map[string]cachedIdentity{}, stamps: map[string]time.Time{}}, nil
}

func (s *Subscriber) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// Run subscribes on conn and handles messages, Workers at a time, until ctx
// ends (returning nil) or the subscription cannot go on. A message is
// acknowledged once handled, rejected when malformed, hostile or failing
// after Attempts tries; either way the subscriber goes on.
func (s *Subscriber) Run(ctx context.Context, conn broker.Conn) error {
	in, err := conn.Subscribe(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, in)
}

// Serve handles the deliveries of a subscription made by the caller, as Run
// does, until in closes or ctx ends.
func (s *Subscriber) Serve(ctx context.Context, in <-chan *broker.Delivery) error {
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var d *broker.Delivery
				select {
				case <-ctx.Done():
					return
				case d = <-in:
				}
				if d == nil {
					return // the subscription ended
				}
				r := s.Handle(ctx, d.Body)
				if r.Action == Rejected {
					if ctx.Err() != nil {
						return // not acknowledged: the broker delivers it again
					}
					s.logf("reject %s: %v", r.Path, r.Err)
					if err := d.Reject(); err != nil {
						s.logf("reject %s: %v", r.Path, err)
					}
				} else if err := d.Ack(); err != nil {
					s.logf("ack %s: %v", r.Path, err)
				}
				if s.opts.OnResult != nil {
					s.opts.OnResult(r)
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("subscription ended")
}

// Handle applies one message body to the directory and says what it did.
// It never panics on bad input: a malformed or hostile message gives
// Action Rejected with Err wrapping v03.ErrInvalid.
func (s *Subscriber) Handle(ctx context.Context, body []byte) Result {
	start := time.Now()
	r := s.handle(ctx, body)
	r.Duration = time.Since(start)
	return r
}

func (s *Subscriber) handle(ctx context.Context, body []byte) Result {
	m, err := v03.Decode(body)
	if err != nil {
		return Result{Action: Rejected, Err: err}
	}
	rel, err := m.Path()
	if err == nil {
		err = m.Validate(s.opts.Limits)
	}
	if err != nil {
		return Result{Path: m.RelPath, Action: Rejected, Err: err}
	}
	unlock := s.lock(lockKey(m, rel))
	defer unlock()
	var r Result
	for attempt := 1; ; attempt++ {
		r, err = s.apply(ctx, m, rel)
		if err == nil || errors.Is(err, v03.ErrInvalid) || errors.Is(err, ErrUnsupported) ||
			attempt >= s.opts.Attempts || ctx.Err() != nil {
			break
		}
		s.logf("%s: %v (attempt %d of %d)", rel, err, attempt, s.opts.Attempts)
		t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	r.Path = rel
	if err != nil {
		r.Action, r.Err = Rejected, err
	}
	return r
}

// lock serializes the messages about one path.
func (s *Subscriber) lock(rel string) func() {
	v, _ := s.locks.LoadOrStore(rel, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// stamp is the time that orders the announcements of a file: pubTime, set
// once by the first publisher and kept by every pump. (File mtimes would
// compare clocks of different machines, and a file restored with an old
// mtime is still a newer version.)
func stamp(m *v03.Message) time.Time { return m.PubTime }

func (s *Subscriber) apply(ctx context.Context, m *v03.Message, rel string) (Result, error) {
	target := filepath.Join(s.opts.Dir, filepath.FromSlash(rel))
	if err := s.checkParents(rel); err != nil {
		return Result{}, err
	}
	fi, statErr := os.Lstat(target)
	exists := statErr == nil
	if exists && fi.Mode().IsRegular() && m.FileOp == nil && s.matches(target, fi, m) {
		s.applied(target, m)
		return Result{Action: Unchanged}, nil
	}
	if s.older(target, m) {
		// Never let an older announcement replace a newer file.
		return Result{Action: Older}, nil
	}
	if op := m.FileOp; op != nil {
		switch {
		case op.Remove:
			if !exists {
				return Result{Action: Removed}, nil
			}
			if op.Directory || fi.IsDir() {
				if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return Result{}, err
				}
			} else if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Result{}, err
			}
			s.forget(target)
			s.applied(target, m)
			if err := partition.New(target, partition.Options{}).Remove(); err != nil {
				s.logf("remove: %v", err)
			}
			return Result{Action: Removed}, nil
		case op.Link != "" || op.HLink != "":
			return s.link(m, rel, target)
		case op.Directory:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return Result{}, err
			}
			return Result{Action: Created}, nil
		}
		// A rename: the file at the old path is a seed, removed once the
		// new one is in place.
	}
	if m.Blocks != nil {
		return s.partitioned(ctx, m, target)
	}
	if m.Identity == nil && m.Content == nil && m.Zsync == nil && m.Size < 0 {
		return Result{}, fmt.Errorf("nothing to fetch: no identity, size, content or zsync field: %w", ErrUnsupported)
	}
	old := s.renamedFrom(m, rel)
	if old != "" {
		// A rename of a file that is the announced version: move it.
		if ofi, err := os.Stat(old); err == nil && s.matches(old, ofi, m) {
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return Result{}, err
			}
			if err := os.Rename(old, target); err != nil {
				return Result{}, err
			}
			s.forget(old)
			s.applied(target, m)
			return Result{Action: Renamed}, nil
		}
	}
	if exists && fi.Mode().IsRegular() && s.matches(target, fi, m) {
		s.finishRename(old, target)
		return Result{Action: Unchanged}, nil
	}
	var r Result
	var err error
	switch {
	case m.Content != nil:
		r, err = s.writeInline(m, target)
	case m.Zsync != nil:
		r, err = s.sync(ctx, m, rel, target, old)
	case s.worthProbing(m, rel, target, old) && s.probe(ctx, m, rel):
		r, err = s.sync(ctx, m, rel, target, old)
	default:
		r, err = s.download(ctx, m, target)
	}
	if err != nil {
		return r, err
	}
	s.applied(target, m)
	s.finishRename(old, target)
	return r, nil
}

// older reports whether a newer announcement of path was applied already.
func (s *Subscriber) older(path string, m *v03.Message) bool {
	s.mu.Lock()
	last, ok := s.stamps[path]
	s.mu.Unlock()
	if !ok {
		last, ok = readStamp(path)
	}
	return ok && stamp(m).Before(last)
}

// applied records the stamp of the announcement of path just applied.
func (s *Subscriber) applied(path string, m *v03.Message) {
	s.mu.Lock()
	t := stamp(m)
	newer := t.After(s.stamps[path])
	if newer {
		s.stamps[path] = t
	}
	s.mu.Unlock()
	if newer {
		writeStamp(path, t)
	}
}

// Extended attributes that keep, with a placed file, what the subscriber
// knows of it across restarts: the pubTime of the announcement applied, and
// the identity computed (with the size and mtime it belongs to).
const (
	attrStamp    = "user.zsyncpipe.pubtime"
	attrIdentity = "user.zsyncpipe.identity"
)

func readStamp(path string) (time.Time, bool) {
	b := getAttr(path, attrStamp)
	if b == nil {
		return time.Time{}, false
	}
	t, err := v03.ParseTime(string(b))
	return t, err == nil
}

func writeStamp(path string, t time.Time) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		setAttr(path, attrStamp, []byte(v03.FormatTime(t)))
	}
}

// readIdentity returns the identity recorded with the file, if it was
// recorded for its present size and mtime.
func readIdentity(path string, fi fs.FileInfo) (v03.Identity, bool) {
	b := getAttr(path, attrIdentity)
	if b == nil {
		return v03.Identity{}, false
	}
	f := strings.SplitN(string(b), " ", 4)
	if len(f) != 4 || f[0] != strconv.FormatInt(fi.Size(), 10) || f[1] != strconv.FormatInt(fi.ModTime().UnixNano(), 10) {
		return v03.Identity{}, false
	}
	return v03.Identity{Method: f[2], Value: f[3]}, true
}

func writeIdentity(path string, fi fs.FileInfo, id v03.Identity) {
	if id.Method == "" || strings.Contains(id.Method, " ") {
		return
	}
	setAttr(path, attrIdentity, fmt.Appendf(nil, "%d %d %s %s", fi.Size(), fi.ModTime().UnixNano(), id.Method, id.Value))
}

// checkParents refuses a path whose parent directories inside Dir include
// a symbolic link: writing through it could leave Dir.
func (s *Subscriber) checkParents(rel string) error {
	p := s.opts.Dir
	elems := strings.Split(rel, "/")
	for _, e := range elems[:len(elems)-1] {
		p = filepath.Join(p, e)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: parent %s is not a directory: %w", rel, p, v03.ErrInvalid)
		}
	}
	return nil
}

// renamedFrom returns the local path of a rename's old file, if it exists.
// sr3 watch writes the poster's absolute path there, so when the path as
// given is not a local file, its last elements (as many as relPath has)
// are tried.
func (s *Subscriber) renamedFrom(m *v03.Message, rel string) string {
	if m.FileOp == nil || m.FileOp.Rename == "" {
		return ""
	}
	old, err := m.RenamedFrom()
	if err != nil {
		return ""
	}
	cands := []string{old}
	oe, ne := strings.Split(old, "/"), strings.Split(rel, "/")
	if len(oe) > len(ne) {
		cands = append(cands, strings.Join(oe[len(oe)-len(ne):], "/"))
	}
	for _, c := range cands {
		if c == rel || s.checkParents(c) != nil {
			continue
		}
		p := filepath.Join(s.opts.Dir, filepath.FromSlash(c))
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func (s *Subscriber) finishRename(old, target string) {
	if old == "" || old == target {
		return
	}
	if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logf("rename: remove %s: %v", old, err)
	}
	s.forget(old)
}

// link makes a symbolic link whose target stays inside Dir, or a hard link
// to a file inside Dir.
func (s *Subscriber) link(m *v03.Message, rel, target string) (Result, error) {
	op := m.FileOp
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return Result{}, err
	}
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".zsyncpipe-link")
	os.Remove(tmp)
	if op.HLink != "" {
		src, err := relpath.Join(s.opts.Dir, strings.TrimLeft(op.HLink, "/"))
		if err != nil {
			return Result{}, fmt.Errorf("hlink: %w", v03.ErrInvalid)
		}
		if err := os.Link(src, tmp); err != nil {
			return Result{}, err
		}
	} else {
		t := op.Link
		inside := !filepath.IsAbs(t) && !strings.Contains(t, "\x00")
		if inside {
			dest := filepath.Join(filepath.Dir(target), filepath.FromSlash(t))
			r, err := filepath.Rel(s.opts.Dir, dest)
			inside = err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
		}
		if !inside {
			return Result{}, fmt.Errorf("symbolic link to %q leaves the directory: %w", t, ErrUnsupported)
		}
		if err := os.Symlink(t, tmp); err != nil {
			return Result{}, err
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return Result{}, err
	}
	return Result{Action: Linked}, nil
}

// matches reports whether the local file is the announced version: same
// size and the same identity (sha512 and md5 computed, and cached per
// size and mtime; "arbitrary" compared with the value recorded when the
// file was placed; "random" never).
func (s *Subscriber) matches(path string, fi fs.FileInfo, m *v03.Message) bool {
	if m.Size >= 0 && fi.Size() != m.Size {
		return false
	}
	id := m.Identity
	if id == nil || id.Method == v03.Random {
		return false
	}
	s.mu.Lock()
	c, ok := s.cache[path]
	s.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) && c.id.Method == id.Method {
		return c.id.Value == id.Value
	}
	if got, ok := readIdentity(path, fi); ok && got.Method == id.Method {
		s.remember(path, fi, got)
		return got == *id
	}
	if v03.NewHash(id.Method) == nil {
		return false
	}
	// The open does not block: a FIFO put at path since the Lstat is
	// refused at once instead of waiting for a writer.
	f, _, err := osfile.OpenRegular(context.Background(), path)
	if err != nil {
		return false
	}
	defer f.Close()
	got, err := v03.Sum(id.Method, f)
	if err != nil {
		return false
	}
	s.remember(path, fi, got)
	writeIdentity(path, fi, got)
	return got == *id
}

func (s *Subscriber) remember(path string, fi fs.FileInfo, id v03.Identity) {
	s.mu.Lock()
	s.cache[path] = cachedIdentity{size: fi.Size(), mtime: fi.ModTime(), id: id}
	s.mu.Unlock()
}

func (s *Subscriber) forget(path string) {
	s.mu.Lock()
	delete(s.cache, path)
	s.mu.Unlock()
}

// tempPath is where a new version is built before it replaces target.
func tempPath(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".zsyncpipe-new")
}

// place verifies the file at tmp against the message (size, identity),
// gives it the message's mode and mtime, and renames it over target.
func (s *Subscriber) place(m *v03.Message, tmp, target string) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if m.Size >= 0 && fi.Size() != m.Size {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%d bytes, announced %d: %w", fi.Size(), m.Size, ErrMismatch)
	}
	var id v03.Identity
	if m.Identity != nil && v03.NewHash(m.Identity.Method) != nil {
		id, err = v03.Sum(m.Identity.Method, f)
		if err != nil {
			f.Close()
			return err
		}
		if id != *m.Identity {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("%s %s, announced %s: %w", id.Method, id.Value, m.Identity.Value, ErrMismatch)
		}
	} else if m.Identity != nil {
		id = *m.Identity
	}
	f.Close()
	if err := setModeTime(m, tmp); err != nil {
		return err
	}
	if m.Identity != nil {
		if fi, err := os.Stat(tmp); err == nil {
			writeIdentity(tmp, fi, id)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	if m.Identity != nil {
		if fi, err := os.Stat(target); err == nil {
			s.remember(target, fi, id)
		}
	}
	return nil
}

// setModeTime gives the file at path the message's mode and mtime.
func setModeTime(m *v03.Message, path string) error {
	if m.Mode != "" {
		if mode, err := strconv.ParseUint(m.Mode, 8, 32); err == nil {
			_ = os.Chmod(path, fs.FileMode(mode)&0o777)
		}
	}
	if !m.MTime.IsZero() {
		if err := os.Chtimes(path, time.Time{}, m.MTime); err != nil {
			return err
		}
	}
	return nil
}

// writeInline writes the message's content.
func (s *Subscriber) writeInline(m *v03.Message, target string) (Result, error) {
	data, err := m.Content.Bytes()
	if err != nil {
		return Result{}, err
	}
	tmp, err := s.create(target)
	if err != nil {
		return Result{}, err
	}
	if err := s.finishWrite(tmp, bytes.NewReader(data)); err != nil {
		return Result{}, err
	}
	if err := s.place(m, tmp.Name(), target); err != nil {
		return Result{}, err
	}
	return Result{Action: Inlined}, nil
}

func (s *Subscriber) create(target string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return nil, err
	}
	return os.Create(tempPath(target))
}

// finishWrite copies r into f, flushes and closes it; on error f is
// removed.
func (s *Subscriber) finishWrite(f *os.File, r io.Reader) error {
	_, err := io.Copy(f, r)
	if err == nil && !s.opts.NoFsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// download fetches the whole file from baseUrl+relPath.
func (s *Subscriber) download(ctx context.Context, m *v03.Message, target string) (Result, error) {
	u, err := m.FileURL()
	if err != nil {
		return Result{}, err
	}
	body, err := s.open(ctx, u.String())
	if err != nil {
		return Result{}, err
	}
	defer body.Close()
	tmp, err := s.create(target)
	if err != nil {
		return Result{}, err
	}
	limit := s.opts.Limits.MaxSize
	if limit <= 0 {
		limit = v03.DefaultMaxSize
	}
	if m.Size >= 0 {
		limit = m.Size
	}
	cr := &countReader{r: io.LimitReader(body, limit+1)}
	if err := s.finishWrite(tmp, cr); err != nil {
		return Result{}, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	if err := s.place(m, tmp.Name(), target); err != nil {
		return Result{}, err
	}
	return Result{Action: Downloaded, Fetched: cr.n}, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// open returns the body at rawURL: http(s) with a GET, file: from disk.
func (s *Subscriber) open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	if p, ok := strings.CutPrefix(rawURL, "file:"); ok {
		p = strings.TrimPrefix(p, "//")
		f, _, err := osfile.OpenRegular(ctx, filepath.FromSlash(p))
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", req.URL.Redacted(), resp.Status)
	}
	return resp.Body, nil
}

// controlFile returns the message's control file: inline, or fetched.
func (s *Subscriber) controlFile(ctx context.Context, m *v03.Message) (*control.File, int64, error) {
	raw := m.Zsync.Control
	var fetched int64
	if len(raw) == 0 {
		u, err := m.ControlURL()
		if err != nil {
			return nil, 0, err
		}
		if u.Scheme == "file" {
			// Only a regular file: a FIFO there is refused at once.
			raw, err = osfile.ReadRegular(ctx, filepath.FromSlash(u.Path))
		} else {
			var f *httpsource.File
			f, err = httpsource.Download(ctx, u.String(), s.opts.HTTP, time.Time{})
			if f != nil {
				raw = f.Body
			}
		}
		if err != nil {
			return nil, 0, fmt.Errorf("control file: %w", err)
		}
		fetched = int64(len(raw))
	}
	cf, err := control.Read(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("control file: %w", err)
	}
	return cf, fetched, nil
}

// sync rebuilds the file with the delta pipeline, from the old version,
// a renamed file and the seed directories, fetching the rest from
// baseUrl+relPath.
func (s *Subscriber) sync(ctx context.Context, m *v03.Message, rel, target, old string) (Result, error) {
	cf, fetched, err := s.controlFile(ctx, m)
	if err != nil {
		return Result{}, err
	}
	if m.Size >= 0 && cf.Length != m.Size {
		return Result{}, fmt.Errorf("control file for %d bytes, announced %d: %w", cf.Length, m.Size, ErrMismatch)
	}
	u, err := m.FileURL()
	if err != nil {
		return Result{}, err
	}
	// The message's URL is the authority; the control file's own URLs
	// may be relative to where it was made.
	cf.URLs = nil
	var seeds []string
	for _, p := range append([]string{target, old}, s.seedPaths(rel)...) {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			seeds = append(seeds, p)
		}
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return Result{}, err
	}
	tmp := tempPath(target)
	sum, err := zsyncpipe.Sync(ctx, zsyncpipe.SyncOptions{
		Control:    cf,
		Output:     tmp,
		Seeds:      seeds,
		MirrorURLs: []string{u.String()},
		HTTP:       s.opts.HTTP,
		NoFsync:    s.opts.NoFsync,
		Workers:    1,
		Logf:       s.opts.Logf,
	})
	if err != nil {
		return Result{}, fmt.Errorf("sync: %w", err)
	}
	if err := s.place(m, tmp, target); err != nil {
		return Result{}, err
	}
	return Result{Action: Synced, Fetched: sum.Fetched + fetched, Reused: sum.Reused}, nil
}

// DefaultProbeMin is the default of SubscriberOptions.ProbeMin.
const DefaultProbeMin = 64 << 10

// worthProbing reports whether a message without a zsync field announces
// a file large enough, with local data to reuse, for a control file to
// be looked for.
func (s *Subscriber) worthProbing(m *v03.Message, rel, target, old string) bool {
	if s.opts.ProbeMin < 0 || m.Size < max(s.opts.ProbeMin, 1) {
		return false
	}
	for _, p := range append([]string{target, old}, s.seedPaths(rel)...) {
		if fi, err := os.Stat(p); p != "" && err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// probe looks for a control file of an announced file that came without a
// zsync field (posted by sr3, say) where zsyncpipe's publishers put them:
// beside the file (<file URL>.zsync), then in the tree's control
// directory (<baseUrl>/.zsyncpipe/<relPath>.zsync). When one is found
// whose length is the announced size, it is set as the message's zsync
// field.
func (s *Subscriber) probe(ctx context.Context, m *v03.Message, rel string) bool {
	fu, err := m.FileURL()
	if err != nil {
		return false
	}
	for _, ref := range []string{fu.String() + ".zsync", escapePath(ControlPath(rel))} {
		m.Zsync = &v03.Zsync{URL: ref}
		cf, _, err := s.controlFile(ctx, m)
		if err == nil && cf.Length == m.Size {
			raw := new(bytes.Buffer)
			if control.Write(raw, cf) == nil {
				m.Zsync.Control = raw.Bytes()
			}
			return true
		}
	}
	m.Zsync = nil
	return false
}

// seedPaths returns rel below each seed directory.
func (s *Subscriber) seedPaths(rel string) []string {
	out := make([]string, 0, len(s.opts.Seeds))
	for _, d := range s.opts.Seeds {
		out = append(out, filepath.Join(d, filepath.FromSlash(rel)))
	}
	return out
}
