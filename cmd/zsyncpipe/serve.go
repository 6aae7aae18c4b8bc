package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/indexer"
	"github.com/zsyncpipe/zsyncpipe/rangeserve"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

const serveIntro = `
serve publishes the directory tree DIR over HTTP: it keeps DIR's index and
control files current as "index --watch" does, and serves the tree with
single and multi-range answers that zsync clients (0.6.2 included) and
"zsyncpipe mirror" need, with ETags, Last-Modified, If-Range and 304s.

It listens on the loopback interface unless --listen names another address,
and serves HTTPS with --tls-cert and --tls-key. It prints its URL on the
first line of standard output, then one line per indexing pass that changed
the tree (files indexed, generation, changes, requests served). SIGTERM or
SIGINT stops it gracefully: requests in progress may finish for 10 seconds.
Use --listen 127.0.0.1:0 for a free port.`

// shutdownGrace bounds how long serve waits for requests in progress.
const shutdownGrace = 10 * time.Second

// cmdServe implements "zsyncpipe serve".
func cmdServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve", serveIntro)
	tf := addTreeFlags(fs.FlagSet)
	af := addAnnounceFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8080", "listen on `address` (host:port)")
	cert := fs.String("tls-cert", "", "serve HTTPS with the certificate in `file` (PEM; with --tls-key)")
	key := fs.String("tls-key", "", "private key `file` of --tls-cert (PEM)")
	noIndex := fs.Bool("no-index", false, "only serve; do not index (another process keeps the index)")
	quiet := fs.Bool("q", false, "print only the URL and errors")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	dir, err := treeDir("serve", pos)
	if err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		return usagef("serve", "--tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer root.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	scheme := "http"
	if *cert != "" {
		scheme = "https"
	}
	var requests atomic.Int64
	files := rangeserve.Handler(root, rangeserve.HandlerOptions{})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			files.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         tlsConfig,
	}
	served := make(chan error, 1)
	go func() {
		if *cert != "" {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	fmt.Fprintf(e.stdout, "serving %s at %s://%s/ (index: %s)\n", dir, scheme, ln.Addr(), treeindex.IndexPath)

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var (
		watched = make(chan error, 1)
		mu      sync.Mutex
	)
	if *noIndex {
		watched <- nil
	} else {
		opts := tf.options(e.stderr)
		last := "none yet"
		opts.OnChange = func(_ context.Context, c indexer.Change) error {
			mu.Lock()
			last = fmt.Sprintf("%s at %s", changeText(c), time.Now().Format("15:04:05"))
			mu.Unlock()
			return nil
		}
		first := true
		opts.OnPass = func(res *indexer.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil || *quiet || (!res.Written && !first) {
				return
			}
			first = false
			fmt.Fprintf(e.stdout, "%s; last change: %s; %d requests served\n", passText(dir, res), last, requests.Load())
		}
		onChange, closeAnnounce, err := af.hook(ctx, e, "serve", dir, fmt.Sprintf("%s://%s/", scheme, ln.Addr()), false, opts.OnChange)
		if err != nil {
			srv.Close()
			return err
		}
		defer closeAnnounce()
		opts.OnChange = onChange
		go func() { watched <- indexer.Watch(wctx, dir, opts) }()
	}

	var err1 error
	select {
	case <-ctx.Done():
	case err1 = <-served:
		err1 = fmt.Errorf("serve: %w", err1)
	case err1 = <-watched:
		if err1 == nil && !*noIndex {
			err1 = errors.New("serve: the indexer stopped")
		}
		if *noIndex {
			select {
			case <-ctx.Done():
				err1 = nil
			case err1 = <-served:
				err1 = fmt.Errorf("serve: %w", err1)
			}
		}
	}
	stopWatch()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && err1 == nil {
		err1 = fmt.Errorf("serve: shutdown: %w", err)
	}
	if !*noIndex {
		<-watched
	}
	if !*quiet && err1 == nil {
		fmt.Fprintf(e.stdout, "stopped after %d requests\n", requests.Load())
	}
	return err1
}
