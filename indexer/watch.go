package indexer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// debounce is how long Watch waits after an event for more events before
// it starts a pass.
const debounce = 100 * time.Millisecond

// Watch keeps the index of the tree at dir current until ctx is done: it
// runs Index at once, then again shortly after fsnotify reports a change
// anywhere in the tree (directories are watched as they appear), after
// Settle for files that were still changing, and every Rescan in case
// events were lost. Files modified less than Settle (default
// DefaultSettle) ago wait for a later pass. A failing pass is reported
// through OnPass and Warn and retried at the next event or rescan; an error
// returned by OnChange ends Watch. Watch returns nil when ctx is done.
func Watch(ctx context.Context, dir string, opts Options) error {
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	walk := opts.Walk
	if walk == nil {
		walk = WalkDir
	}
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.Add(root); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	pub := filepath.Join(root, treeindex.Dir)
	watched := map[string]bool{}
	opts.Walk = func(ctx context.Context, d string, emit func(Item) error) error {
		now := map[string]bool{}
		var (
			failed  int
			lastErr error
		)
		err := walk(ctx, d, func(it Item) error {
			if it.Info.IsDir() {
				full := filepath.Join(root, filepath.FromSlash(it.Path))
				if watched[full] {
					now[full] = true
				} else if err := w.Add(full); err != nil {
					failed, lastErr = failed+1, fmt.Errorf("watch %s: %w", it.Path, err)
				} else {
					now[full] = true
				}
			}
			return emit(it)
		})
		if failed > 0 {
			// Typically the inotify watch limit: one warning per pass.
			opts.warn(fmt.Errorf("%d directories are not watched, changes there wait for the rescan (last: %w)", failed, lastErr))
		}
		if err == nil {
			for d := range watched {
				if !now[d] {
					w.Remove(d) // gone: inotify has usually dropped it already
				}
			}
			watched = now
		}
		return err
	}

	var prev *treeindex.Index // the index in place, after the first pass
	next := time.NewTimer(0)
	defer next.Stop()
	rescan := time.NewTicker(opts.Rescan)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch: the event stream ended")
			}
			if ignored(ev.Name, pub, opts.Beside) {
				continue
			}
			next.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch: the event stream ended")
			}
			opts.warn(fmt.Errorf("watch: %w; rescanning", err))
			next.Reset(debounce)
		case <-rescan.C:
			next.Reset(0)
		case <-next.C:
			res, x, err := index(ctx, root, opts, prev)
			prev = x // nil after a failure: the next pass reads the file
			if opts.OnPass != nil {
				opts.OnPass(res, err)
			}
			var ce *changeError
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.As(err, &ce):
				return err
			case err != nil:
				opts.warn(err)
			case res.Unsettled > 0:
				next.Reset(opts.Settle / 2)
			}
		}
	}
}

// ignored reports events that the indexer's own writes cause.
func ignored(name, pub string, beside bool) bool {
	base := filepath.Base(name)
	return name == pub || strings.HasPrefix(name, pub+string(filepath.Separator)) || isTemp(base) ||
		(beside && strings.HasSuffix(base, treeindex.ControlSuffix))
}

func (o *Options) warn(err error) {
	if o.Warn != nil {
		o.Warn(err)
	}
}
