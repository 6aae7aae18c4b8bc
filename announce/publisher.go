package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// Op is the kind of a Change.
type Op int

// Kinds of change.
const (
	Write  Op = iota + 1 // a file was created or changed
	Remove               // a file or directory was removed
	Rename               // a file moved from OldPath to Path
	Mkdir                // a directory was created
)

// Change is one change of a published tree, as a tree watcher reports it.
type Change struct {
	// Op is what happened.
	Op Op
	// Path is the changed file, slash-separated, relative to the tree's
	// root.
	Path string
	// OldPath is a renamed file's previous path.
	OldPath string
	// Control is the path of the file's control file relative to the
	// root, or "" when it has none (a small file, or none made).
	Control string
}

// ControlDir is the directory, below a published tree's root, that holds
// the control files: ".zsyncpipe/<path>.zsync" (the tree publisher's
// layout).
const ControlDir = ".zsyncpipe"

// ControlPath returns where the control file of rel goes in ControlDir.
func ControlPath(rel string) string { return ControlDir + "/" + rel + ".zsync" }

// Defaults of PublisherOptions.
const (
	DefaultInlineMax        = 4096     // sr3's inlineByteMax
	DefaultControlInlineMax = 32 << 10 // control files up to 32 KiB travel in the message
)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// Dir is the root of the published tree; required.
	Dir string
	// BaseURL is the URL Dir is served at, the messages' baseUrl;
	// required.
	BaseURL string
	// Conn is the broker the messages go to; required by Announce.
	Conn broker.Conn
	// InlineMax: files smaller than this travel in the message (content);
	// default DefaultInlineMax; negative disables.
	InlineMax int64
	// ControlInlineMax: control files up to this size travel in the
	// message (zsync.control); default DefaultControlInlineMax; negative
	// disables.
	ControlInlineMax int64
	// Identity is the checksum method, "sha512" (sr3's default) or "md5".
	Identity string
	// Source, if set, is the messages' source field.
	Source string
	// Now returns the publication time; default time.Now.
	Now func() time.Time
	// PartitionSize: files larger than this are announced as partitions
	// of this size, one message per partition in sr3's v03 "blocks" form,
	// and only the partitions that changed since the last announcement
	// (see PartitionMessages); 0 announces every file whole.
	PartitionSize int64
	// PartitionAll announces every partition of a file each time, not only
	// those that changed: what sr3's block_reassembly needs to complete a
	// file (it waits for every partition of the newest manifest).
	PartitionAll bool
}

// Publisher turns changes of a tree into v03 messages and posts them.
type Publisher struct {
	opts PublisherOptions
}

// NewPublisher checks opts and returns a Publisher.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if opts.Dir == "" || opts.BaseURL == "" {
		return nil, fmt.Errorf("publisher: Dir and BaseURL are required: %w", zsyncpipe.ErrUsage)
	}
	if u, err := url.Parse(opts.BaseURL); err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("publisher: base URL %q is not an absolute URL: %w", opts.BaseURL, zsyncpipe.ErrUsage)
	}
	if opts.InlineMax == 0 {
		opts.InlineMax = DefaultInlineMax
	}
	if opts.ControlInlineMax == 0 {
		opts.ControlInlineMax = DefaultControlInlineMax
	}
	if opts.Identity == "" {
		opts.Identity = v03.SHA512
	}
	if v03.NewHash(opts.Identity) == nil {
		return nil, fmt.Errorf("publisher: identity method %q: want sha512 or md5: %w", opts.Identity, zsyncpipe.ErrUsage)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Publisher{opts: opts}, nil
}

// Message builds the message announcing c. For a written file it reads
// the file (size, mtime, mode, identity; the content when small) and its
// control file (inlined when small).
func (p *Publisher) Message(c Change) (*v03.Message, error) {
	if err := relpath.Check(c.Path); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	m := &v03.Message{PubTime: p.opts.Now(), BaseURL: p.opts.BaseURL, RelPath: c.Path, Size: -1, Source: p.opts.Source}
	switch c.Op {
	case Remove:
		m.FileOp = &v03.FileOp{Remove: true}
		return m, nil
	case Mkdir:
		m.FileOp = &v03.FileOp{Directory: true}
		return m, nil
	case Rename:
		if err := relpath.Check(c.OldPath); err != nil {
			return nil, fmt.Errorf("announce: old path: %w", err)
		}
		m.FileOp = &v03.FileOp{Rename: c.OldPath}
	case Write:
	default:
		return nil, fmt.Errorf("announce: unknown change %d: %w", c.Op, zsyncpipe.ErrUsage)
	}
	path := filepath.Join(p.opts.Dir, filepath.FromSlash(c.Path))
	data, fi, id, err := p.read(path)
	if err != nil {
		return nil, fmt.Errorf("announce %s: %w", c.Path, err)
	}
	m.Size = fi.Size()
	m.MTime = fi.ModTime()
	m.Mode = fmt.Sprintf("%o", fi.Mode().Perm())
	m.Identity = &id
	if data != nil {
		m.Content = v03.NewContent(data)
		return m, nil
	}
	if c.Control != "" {
		z, err := p.zsyncField(c.Control)
		if err != nil {
			return nil, fmt.Errorf("announce %s: %w", c.Path, err)
		}
		m.Zsync = z
	}
	return m, nil
}

// read stats and hashes the file; data is its content when it is small
// enough to inline.
func (p *Publisher) read(path string) (data []byte, fi fs.FileInfo, id v03.Identity, err error) {
	// The open does not block: a FIFO (whose open would wait for a
	// writer), a device or a directory is refused at once.
	f, fi, err := osfile.OpenRegular(context.Background(), path)
	if errors.Is(err, osfile.ErrNotRegular) {
		return nil, nil, id, fmt.Errorf("%w: %w", err, zsyncpipe.ErrUsage)
	}
	if err != nil {
		return nil, nil, id, err
	}
	defer f.Close()
	if fi.Size() < p.opts.InlineMax {
		// Read through f, not by path again: the path may name another
		// file by now. One byte more than fstat said means it grew.
		data = make([]byte, fi.Size()+1)
		n, err := io.ReadFull(f, data)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, nil, id, err
		}
		if int64(n) != fi.Size() {
			return nil, nil, id, errors.New("changed while read")
		}
		data = data[:n]
		id, err = v03.Sum(p.opts.Identity, bytes.NewReader(data))
		return data, fi, id, err
	}
	id, err = v03.Sum(p.opts.Identity, f)
	return nil, fi, id, err
}

// zsyncField names the control file and inlines it when small.
func (p *Publisher) zsyncField(ctl string) (*v03.Zsync, error) {
	if err := relpath.Check(ctl); err != nil {
		return nil, fmt.Errorf("control file: %w", err)
	}
	z := &v03.Zsync{URL: escapePath(ctl)}
	path := filepath.Join(p.opts.Dir, filepath.FromSlash(ctl))
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("control file: %w", err)
	}
	if fi.Size() <= p.opts.ControlInlineMax {
		b, err := osfile.ReadRegular(context.Background(), path)
		if err != nil {
			return nil, fmt.Errorf("control file: %w", err)
		}
		z.Control = b
	}
	return z, nil
}

// Announce builds the message for c and publishes it, returning once the
// broker has taken it.
func (p *Publisher) Announce(ctx context.Context, c Change) error {
	if p.opts.Conn == nil {
		return fmt.Errorf("announce: no broker connection: %w", zsyncpipe.ErrUsage)
	}
	if p.partitioned(c) {
		msgs, save, err := p.PartitionMessages(ctx, c.Path)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := p.publish(ctx, m); err != nil {
				return err
			}
		}
		if err := save(); err != nil {
			return err
		}
		if c.Op == Rename {
			return p.publish(ctx, &v03.Message{PubTime: p.opts.Now(), BaseURL: p.opts.BaseURL, RelPath: c.OldPath,
				Size: -1, Source: p.opts.Source, FileOp: &v03.FileOp{Remove: true}})
		}
		return nil
	}
	m, err := p.Message(c)
	if err != nil {
		return err
	}
	return p.publish(ctx, m)
}

func (p *Publisher) publish(ctx context.Context, m *v03.Message) error {
	body, err := m.Encode()
	if err != nil {
		return fmt.Errorf("announce %s: %w", m.RelPath, err)
	}
	return p.opts.Conn.Publish(ctx, m.RelPath, body)
}

// OnChange is Announce with the signature of a tree watcher's callback.
func (p *Publisher) OnChange(ctx context.Context, c Change) error { return p.Announce(ctx, c) }

// Prepare makes the control file of the file rel below Dir, at
// ControlPath(rel), when the file is not small enough to travel inline,
// and returns the Change that announces it. The control file is written
// to a temporary name and renamed, so it is complete before the message
// goes out.
func (p *Publisher) Prepare(ctx context.Context, rel string) (Change, error) {
	if err := relpath.Check(rel); err != nil {
		return Change{}, fmt.Errorf("announce: %w", err)
	}
	path := filepath.Join(p.opts.Dir, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if err != nil {
		return Change{}, fmt.Errorf("announce: %w", err)
	}
	c := Change{Op: Write, Path: rel}
	if fi.Size() < p.opts.InlineMax || p.partitioned(c) {
		// Partitions get control files of their own (Announce).
		return c, nil
	}
	ctl := ControlPath(rel)
	// The file, relative to the control file: up one level per directory
	// of the control path.
	fileURL := strings.Repeat("../", strings.Count(ctl, "/")) + escapePath(rel)
	cf, err := zsyncpipe.MakeFile(ctx, path, zsyncpipe.MakeOptions{URLs: []string{fileURL}})
	if err != nil {
		return Change{}, fmt.Errorf("announce %s: %w", rel, err)
	}
	dst := filepath.Join(p.opts.Dir, filepath.FromSlash(ctl))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return Change{}, fmt.Errorf("announce: %w", err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, cf); err != nil {
		return Change{}, fmt.Errorf("announce %s: %w", rel, err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return Change{}, fmt.Errorf("announce: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return Change{}, fmt.Errorf("announce: %w", err)
	}
	c.Control = ctl
	return c, nil
}

func escapePath(rel string) string {
	elems := strings.Split(rel, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return strings.Join(elems, "/")
}
