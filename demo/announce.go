package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/announce"
	"github.com/zsyncpipe/zsyncpipe/broker"
)

// RunAnnounce demonstrates announcements: it starts an MQTT broker inside
// the process, a loopback web server over a publisher's directory and a
// subscriber holding the old version of a file; it writes the new version,
// announces it (a v03 message carrying the control file), and reports how
// the subscriber brought its copy up to date. Size, Seed, Dir and Keep of
// opts are used.
func RunAnnounce(ctx context.Context, w io.Writer, opts Options) (err error) {
	size, work, cleanup, err := prepare(w, opts, "       ")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cleanup(); err == nil {
			err = cerr
		}
	}()
	pubDir, subDir := filepath.Join(work, "publisher"), filepath.Join(work, "subscriber")
	rel := "data/" + name
	oldData, newData, edits := Versions(opts.Seed, int(size))
	for _, f := range []struct {
		path string
		data []byte
	}{{filepath.Join(pubDir, rel), oldData}, {filepath.Join(subDir, rel), oldData}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			return err
		}
	}

	b, err := broker.StartEmbedded("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(w, "broker     embedded MQTT v5 broker at %s\n", b.URL())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(pubDir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(w, "serve      %s at %s\n", pubDir, base)

	// The subscriber: its queue exists before anything is announced.
	subConn, err := broker.Dial(ctx, b.URL(), broker.Options{Queue: broker.QueueName("", "subscribe", "zsyncpipe", "demo")})
	if err != nil {
		return err
	}
	defer subConn.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	in, err := subConn.Subscribe(runCtx)
	if err != nil {
		return err
	}
	results := make(chan announce.Result, 1)
	sub, err := announce.NewSubscriber(announce.SubscriberOptions{Dir: subDir, OnResult: func(r announce.Result) { results <- r }})
	if err != nil {
		return err
	}
	go sub.Serve(runCtx, in)
	fmt.Fprintf(w, "subscribe  %s, holding the old version of %s (%s)\n", subDir, rel, humanize.IBytes(uint64(len(oldData))))

	// The change, announced.
	if err := os.WriteFile(filepath.Join(pubDir, rel), newData, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "change     %s is now %s: %v\n", rel, humanize.IBytes(uint64(len(newData))), edits)
	pubConn, err := broker.Dial(ctx, b.URL(), broker.Options{})
	if err != nil {
		return err
	}
	defer pubConn.Close()
	pub, err := announce.NewPublisher(announce.PublisherOptions{Dir: pubDir, BaseURL: base, Conn: pubConn})
	if err != nil {
		return err
	}
	start := time.Now()
	c, err := pub.Prepare(ctx, rel)
	if err != nil {
		return err
	}
	m, err := pub.Message(c)
	if err != nil {
		return err
	}
	body, err := m.Encode()
	if err != nil {
		return err
	}
	if err := pubConn.Publish(ctx, rel, body); err != nil {
		return err
	}
	inline := "fetched by URL"
	if len(m.Zsync.Control) > 0 {
		inline = "inline"
	}
	fmt.Fprintf(w, "announce   %s: %s v03 message, control file %s (%s)\n", rel, humanize.IBytes(uint64(len(body))), m.Zsync.URL, inline)

	select {
	case r := <-results:
		if r.Action == announce.Rejected {
			return fmt.Errorf("subscriber: %w", r.Err)
		}
		got, err := os.ReadFile(filepath.Join(subDir, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, newData) {
			return fmt.Errorf("subscriber's copy differs from the new version: %w", zsyncpipe.ErrVerify)
		}
		pct := 100 * float64(r.Fetched) / float64(max(1, len(newData)))
		fmt.Fprintf(w, "update     %s %s: fetched %s (%.1f%% of the file), reused %s, %s after the change; sha512 verified\n",
			r.Action, r.Path, humanize.IBytes(uint64(r.Fetched)), pct, humanize.IBytes(uint64(r.Reused)), seconds(time.Since(start)))
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("the subscriber received nothing in a minute")
	}
	return nil
}
