package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/announce"
	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/indexer"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

const subscribeIntro = `
subscribe keeps DIR up to date from the Sarracenia v03 announcements on the
broker at BROKER-URL (amqp://user:password@host/, mqtt://host:1883, or
"embedded"). Each announced file is delta-synced: the old version in DIR and
the files at the same path in the --seeds directories are reused, only the
missing blocks are downloaded, and the result replaces the file only once its
size and identity checksum match the announcement. A message is acknowledged
after its file is in place; a malformed or hostile message is logged and
rejected (dead-lettered with --dead-letter on AMQP) and the subscriber goes
on. It runs until interrupted, or until --max-messages messages were handled.

The queue defaults to sr3's naming, q_<user>.subscribe.zsyncpipe.<share>,
where <share> is <USER>_<host>_<hash of DIR>: subscribers on one host writing
one DIR share a queue and split its messages.`

const announceIntro = `
announce posts one v03 announcement per FILE (a path relative to DIR, or
an absolute path inside it) to the broker
at BROKER-URL, after writing the control file of each file not small enough
to travel inline to DIR/.zsyncpipe/FILE.zsync. --base-url is the URL at which
a web server serves DIR; it goes in the messages' baseUrl. With --remove it
announces that the files were removed.`

// brokerFlags are the broker settings both commands share.
type brokerFlags struct {
	exchange string
	prefix   string
}

func (b *brokerFlags) register(fs *flagSet) {
	fs.StringVar(&b.exchange, "exchange", broker.Options{}.Exchange, "topic `exchange` (AMQP) or first topic level (MQTT) (default \"xpublic\", sr3's)")
	fs.StringVar(&b.prefix, "topic-prefix", "", "topic `prefix` before the directories (default \"v03\")")
}

func (b *brokerFlags) options(e *env, verbose bool) broker.Options {
	o := broker.Options{Exchange: b.exchange, TopicPrefix: b.prefix}
	if verbose {
		o.Logf = func(format string, args ...any) { fmt.Fprintf(e.stderr, "zsyncpipe: "+format+"\n", args...) }
	}
	return o
}

func dialBroker(ctx context.Context, url string, opts broker.Options) (broker.Conn, error) {
	c, err := broker.Dial(ctx, url, opts)
	if errors.Is(err, broker.ErrURL) {
		return nil, fmt.Errorf("%w: %w", zsyncpipe.ErrUsage, err)
	}
	return c, err
}

// cmdSubscribe implements "zsyncpipe subscribe".
func cmdSubscribe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "subscribe", subscribeIntro)
	var bf brokerFlags
	bf.register(fs)
	var topics, seeds listFlag
	fs.Var(&topics, "topic", "subscribe to `pattern` only, slash-separated below the prefix, * for one level, # for any (default #); may be repeated")
	fs.Var(&seeds, "seeds", "`dir` holding older versions of the files at the same paths; may be repeated")
	queue := fs.String("queue", "", "`name` of the queue (AMQP) or shared subscription (MQTT) (default: sr3's naming, see above)")
	deadLetter := fs.String("dead-letter", "", "AMQP `exchange` rejected messages are dead-lettered to (a new queue only)")
	clientID := fs.String("client-id", "", "MQTT client `id`, naming the persistent session (default <queue>_i01)")
	workers := fs.Int("workers", 4, "`n` messages worked on at once")
	maxMsgs := fs.Int64("max-messages", 0, "exit after `n` messages (0: run until interrupted)")
	quiet := fs.Bool("q", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "also print unchanged files and broker events")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("subscribe", "want BROKER-URL and DIR, got %d arguments", len(pos))
	}
	url, dir := pos[0], pos[1]
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	opts := bf.options(e, *verbose)
	opts.Queue = *queue
	if opts.Queue == "" {
		opts.Queue = broker.QueueName(broker.User(url), "subscribe", "zsyncpipe", broker.DefaultShare(abs))
	}
	opts.Subtopics = topics
	opts.DeadLetterExchange = *deadLetter
	opts.ClientID = *clientID
	opts.Prefetch = max(broker.DefaultPrefetch, *workers)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var handled atomic.Int64
	var out sync.Mutex
	sub, err := announce.NewSubscriber(announce.SubscriberOptions{
		Dir:     abs,
		Seeds:   seeds,
		Workers: *workers,
		Logf: func(format string, args ...any) {
			out.Lock()
			defer out.Unlock()
			fmt.Fprintf(e.stderr, "zsyncpipe: "+format+"\n", args...)
		},
		OnResult: func(r announce.Result) {
			if line := resultLine(r, *verbose); line != "" && !*quiet {
				out.Lock()
				fmt.Fprintln(e.stdout, line)
				out.Unlock()
			}
			if n := handled.Add(1); *maxMsgs > 0 && n >= *maxMsgs {
				stop()
			}
		},
	})
	if err != nil {
		return err
	}
	conn, err := dialBroker(ctx, url, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !*quiet {
		fmt.Fprintf(e.stderr, "zsyncpipe: subscribed to %s, queue %s; writing to %s\n", url, opts.Queue, abs)
	}
	if err := sub.Run(runCtx, conn); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// resultLine is the line printed for one handled message.
func resultLine(r announce.Result, verbose bool) string {
	switch r.Action {
	case announce.Unchanged, announce.Older:
		if !verbose {
			return ""
		}
	case announce.Rejected:
		return "" // logged to stderr by the subscriber
	case announce.Synced, announce.Downloaded, announce.PartitionIn, announce.Assembled:
		return fmt.Sprintf("%-10s %s: fetched %s, reused %s (%v)", r.Action, r.Path,
			humanize.IBytes(uint64(r.Fetched)), humanize.IBytes(uint64(r.Reused)), r.Duration.Round(1e6))
	}
	return fmt.Sprintf("%-10s %s", r.Action, r.Path)
}

// cmdAnnounce implements "zsyncpipe announce".
func cmdAnnounce(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "announce", announceIntro)
	var bf brokerFlags
	bf.register(fs)
	baseURL := fs.String("base-url", "", "`URL` at which DIR is served (required)")
	inlineMax := sizeFlag(announce.DefaultInlineMax)
	fs.Var(&inlineMax, "inline-max", "files smaller than `size` travel in the message")
	var partitionSize sizeFlag
	fs.Var(&partitionSize, "partition-size", partitionUsage)
	partitionAll := fs.Bool("partition-all", false, partitionAllUsage)
	remove := fs.Bool("remove", false, "announce that the files were removed")
	quiet := fs.Bool("q", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "print broker events")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 3 {
		return usagef("announce", "want BROKER-URL, DIR and at least one FILE, got %d arguments", len(pos))
	}
	if *baseURL == "" {
		return usagef("announce", "--base-url is required")
	}
	url, dir := pos[0], pos[1]
	rels := make([]string, 0, len(pos)-2)
	for _, f := range pos[2:] {
		rel, err := relativeTo(dir, f)
		if err != nil {
			return usagef("announce", "%v", err)
		}
		rels = append(rels, rel)
	}
	conn, err := dialBroker(ctx, url, bf.options(e, *verbose))
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := announce.NewPublisher(announce.PublisherOptions{Dir: dir, BaseURL: *baseURL, Conn: conn, InlineMax: int64(inlineMax),
		PartitionSize: int64(partitionSize), PartitionAll: *partitionAll})
	if err != nil {
		return err
	}
	for _, rel := range rels {
		c := announce.Change{Op: announce.Remove, Path: rel}
		if !*remove {
			if c, err = p.Prepare(ctx, rel); err != nil {
				return err
			}
		}
		if err := p.Announce(ctx, c); err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(e.stdout, "announced %s\n", rel)
		}
	}
	return nil
}

// relativeTo returns FILE as a slash-separated path relative to dir: an
// absolute FILE must lie inside dir, any other is taken as relative to dir.
func relativeTo(dir, f string) (string, error) {
	if !filepath.IsAbs(f) {
		return filepath.ToSlash(filepath.Clean(f)), nil
	}
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(ad, f)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%s is not inside %s", f, dir)
	}
	return filepath.ToSlash(rel), nil
}

// announceFlags are the flags of index and serve that announce changes.
type announceFlags struct {
	brokerFlags
	url           string
	baseURL       string
	partitionSize sizeFlag
	partitionAll  bool
}

// partitionAllUsage is the help of --partition-all.
const partitionAllUsage = "announce every partition of a changed file, not only the changed ones (sr3's block_reassembly needs them all)"

// partitionUsage is the help of --partition-size.
const partitionUsage = "announce files larger than `size` as partitions of that size, one message each (sr3's v03 blocks), and only changed partitions again"

func addAnnounceFlags(fs *flagSet) *announceFlags {
	a := &announceFlags{}
	fs.StringVar(&a.url, "announce", "", "announce every change as a Sarracenia v03 message on the broker at `URL` (amqp://, mqtt://, embedded)")
	fs.StringVar(&a.baseURL, "base-url", "", "with --announce: the `URL` DIR is served at, for the messages' baseUrl (serve: its own URL)")
	fs.Var(&a.partitionSize, "partition-size", "with --announce: "+partitionUsage)
	fs.BoolVar(&a.partitionAll, "partition-all", false, "with --partition-size: "+partitionAllUsage)
	a.brokerFlags.register(fs)
	return a
}

// hook connects to the broker and returns an OnChange for the indexer that
// calls next (when not nil) and then announces the change; close
// disconnects. Without --announce it returns next.
func (a *announceFlags) hook(ctx context.Context, e *env, cmd, dir, defaultBase string, verbose bool,
	next func(context.Context, indexer.Change) error) (func(context.Context, indexer.Change) error, func(), error) {
	if a.url == "" {
		return next, func() {}, nil
	}
	base := a.baseURL
	if base == "" {
		base = defaultBase
	}
	if base == "" {
		return nil, nil, usagef(cmd, "--announce needs --base-url, the URL at which DIR is served")
	}
	conn, err := dialBroker(ctx, a.url, a.options(e, verbose))
	if err != nil {
		return nil, nil, err
	}
	p, err := announce.NewPublisher(announce.PublisherOptions{Dir: dir, BaseURL: base, Conn: conn,
		PartitionSize: int64(a.partitionSize), PartitionAll: a.partitionAll})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	on := func(ctx context.Context, c indexer.Change) error {
		if next != nil {
			if err := next(ctx, c); err != nil {
				return err
			}
		}
		ac, ok := announceChange(c)
		if !ok {
			return nil
		}
		return p.Announce(ctx, ac)
	}
	return on, func() { conn.Close() }, nil
}

// announceChange turns an indexer change into the change a Publisher
// announces; symbolic links are not announced.
func announceChange(c indexer.Change) (announce.Change, bool) {
	ac := announce.Change{Path: c.Path, OldPath: c.OldPath, Control: c.Entry.Control}
	switch {
	case c.Op == indexer.Removed:
		ac.Op = announce.Remove
	case c.Entry.Type == treeindex.Directory:
		ac.Op = announce.Mkdir
	case c.Entry.Type != treeindex.File:
		return ac, false
	case c.Op == indexer.Renamed:
		ac.Op = announce.Rename
	default:
		ac.Op = announce.Write
	}
	return ac, true
}
