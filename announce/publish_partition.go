package announce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/atomicfile"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/partition"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// partitioned reports whether c announces a file larger than the
// partition size.
func (p *Publisher) partitioned(c Change) bool {
	if p.opts.PartitionSize <= 0 || (c.Op != Write && c.Op != Rename) || relpath.Check(c.Path) != nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(p.opts.Dir, filepath.FromSlash(c.Path)))
	return err == nil && fi.Mode().IsRegular() && fi.Size() > p.opts.PartitionSize
}

// ManifestPath returns where the publisher keeps the manifest last
// announced for rel, in ControlDir.
func ManifestPath(rel string) string { return ControlDir + "/" + rel + ".manifest" }

// PartitionControlPath returns where the control file of partition n of
// rel, in partitions of size bytes, goes in ControlDir.
func PartitionControlPath(rel string, size int64, n int) string {
	return ControlDir + "/" + rel + ".p" + strconv.FormatInt(size, 10) + "." + strconv.Itoa(n) + ".zsync"
}

// PartitionMessages builds the messages announcing the file rel in
// partitions of PartitionSize bytes, the last partition first: one per
// partition that differs from the manifest announced last (all of them
// the first time, or with PartitionAll), each with
// the manifest of the whole file in sr3's v03 "blocks" field, the
// partition's size and identity, and the partition's control file (made
// now, in ControlDir, matched in the partition's own small blocks). A
// file that grows thus announces its new partitions and its last one,
// re-announced as it fills. save records the manifest as announced: call
// it once every message is out.
func (p *Publisher) PartitionMessages(ctx context.Context, rel string) (msgs []*v03.Message, save func() error, err error) {
	if err := relpath.Check(rel); err != nil {
		return nil, nil, fmt.Errorf("announce: %w", err)
	}
	if p.opts.PartitionSize <= 0 {
		return nil, nil, fmt.Errorf("announce: no partition size: %w", zsyncpipe.ErrUsage)
	}
	fpath := filepath.Join(p.opts.Dir, filepath.FromSlash(rel))
	// The open does not block: a FIFO (whose open would wait for a
	// writer), a device or a directory is refused at once.
	f, fi, err := osfile.OpenRegular(ctx, fpath)
	if errors.Is(err, osfile.ErrNotRegular) {
		return nil, nil, fmt.Errorf("announce: %w: %w", err, zsyncpipe.ErrUsage)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("announce: %w", err)
	}
	defer f.Close()
	// What the file holds now: a file that is still growing is announced
	// up to the length it had when looked at.
	length := fi.Size()
	man, err := partition.Make(f, length, p.opts.PartitionSize, p.opts.Identity)
	if err != nil {
		return nil, nil, fmt.Errorf("announce %s: %w", rel, err)
	}
	prev := p.lastManifest(rel)
	var parts []v03.Partition
	for _, part := range man.Parts {
		parts = append(parts, v03.Partition{Size: part.Size, Identity: part.Identity})
	}
	now := p.opts.Now()
	// Last partition first: an sr3 subscriber that wrote partition 0
	// alone takes the later full-size ones for its own (docs/announce.md,
	// "sr3 reassembly"); with the last one first the file has its size at
	// once.
	for i := len(man.Parts) - 1; i >= 0; i-- {
		part := man.Parts[i]
		if prev != nil && !p.opts.PartitionAll && prev.Same(man, i) {
			continue
		}
		z, err := p.partitionControl(ctx, f, rel, man, i, fi)
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, &v03.Message{
			PubTime: now, BaseURL: p.opts.BaseURL, RelPath: rel, Source: p.opts.Source,
			Size: part.Size, MTime: fi.ModTime(), Mode: fmt.Sprintf("%o", fi.Mode().Perm()),
			Identity: &v03.Identity{Method: man.Method, Value: part.Identity},
			Blocks:   &v03.Blocks{Method: v03.Inplace, Size: man.Size, Number: int64(i), Manifest: parts},
			Zsync:    z,
		})
	}
	save = func() error {
		b, err := json.Marshal(man)
		if err != nil {
			return err
		}
		dst := filepath.Join(p.opts.Dir, filepath.FromSlash(ManifestPath(rel)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("announce: %w", err)
		}
		if err := atomicfile.WriteBytes(dst, 0o644, b); err != nil {
			return fmt.Errorf("announce %s: save manifest: %w", rel, err)
		}
		return nil
	}
	return msgs, save, nil
}

// lastManifest returns the manifest last announced for rel, nil when
// there is none of the present partition size and method.
func (p *Publisher) lastManifest(rel string) *partition.Manifest {
	b, err := osfile.ReadRegular(context.Background(), filepath.Join(p.opts.Dir, filepath.FromSlash(ManifestPath(rel))))
	if err != nil {
		return nil
	}
	var m partition.Manifest
	if json.Unmarshal(b, &m) != nil || m.Size != p.opts.PartitionSize || m.Method != p.opts.Identity {
		return nil
	}
	return &m
}

// partitionControl makes the control file of partition n and returns the
// zsync field that names it (and carries it, when small).
func (p *Publisher) partitionControl(ctx context.Context, f *os.File, rel string, man *partition.Manifest, n int, fi os.FileInfo) (*v03.Zsync, error) {
	size := man.Parts[n].Size
	cf, err := zsyncpipe.Make(ctx, io.NewSectionReader(f, man.Offset(n), size), zsyncpipe.MakeOptions{
		Filename: path.Base(rel),
		Length:   size,
		MTime:    fi.ModTime(),
		URLs:     []string{strings.Repeat("../", strings.Count(ControlPath(rel), "/")) + escapePath(rel)},
	})
	if err != nil {
		return nil, fmt.Errorf("announce %s partition %d: %w", rel, n, err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, cf); err != nil {
		return nil, fmt.Errorf("announce %s: %w", rel, err)
	}
	ctl := PartitionControlPath(rel, man.Size, n)
	dst := filepath.Join(p.opts.Dir, filepath.FromSlash(ctl))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	if err := atomicfile.WriteBytes(dst, 0o644, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("announce %s: %w", rel, err)
	}
	z := &v03.Zsync{URL: escapePath(ctl)}
	if int64(buf.Len()) <= p.opts.ControlInlineMax {
		z.Control = buf.Bytes()
	}
	return z, nil
}
