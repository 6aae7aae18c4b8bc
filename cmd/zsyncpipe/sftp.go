package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/sftpsource"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// sshFlags are the flags of the sftp:// transport.
type sshFlags struct {
	identities, knownHosts listFlag
	password               *bool
	requests, connections  *int
}

// addSSHFlags adds the sftp flags to fs.
func addSSHFlags(fs *flagSet) *sshFlags {
	f := &sshFlags{}
	fs.Var(&f.identities, "identity", "sftp: private key `file` to log in with, as ssh -i (default: the ssh agent, then ~/.ssh/id_*); may be repeated")
	fs.Var(&f.knownHosts, "known-hosts", "sftp: known_hosts `file` of trusted host keys (default ~/.ssh/known_hosts); may be repeated")
	f.password = fs.Bool("ssh-password", false, "sftp: also log in with the password in $SSHPASS (never otherwise)")
	f.requests = fs.Int("sftp-requests", sftpsource.DefaultRequests, "sftp: read requests in flight per file and connection")
	f.connections = fs.Int("ssh-connections", sftpsource.DefaultConnections, "sftp: SSH connections per server")
	return f
}

// pool returns the connection pool that every sftp:// URL of the run uses.
// It connects only when a URL needs it.
func (f *sshFlags) pool(retries int, verbose bool, stderr io.Writer) (*sftpsource.Pool, error) {
	if *f.requests < 1 || *f.connections < 1 {
		return nil, usagef("sync", "--sftp-requests and --ssh-connections must be at least 1")
	}
	o := sftpsource.Options{
		IdentityFiles: f.identities,
		KnownHosts:    f.knownHosts,
		Requests:      *f.requests,
		Connections:   *f.connections,
		Retries:       retries,
	}
	if *f.password {
		o.Password = os.Getenv("SSHPASS")
		if o.Password == "" {
			return nil, usagef("sync", "--ssh-password: $SSHPASS is empty")
		}
	}
	if verbose {
		o.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, "zsyncpipe: "+format+"\n", args...) }
	}
	return sftpsource.NewPool(o), nil
}

// openSFTP returns the SyncOptions.OpenURL that serves sftp:// URLs from
// pool.
func openSFTP(pool *sftpsource.Pool) func(u *url.URL) (stages.RangeSource, error) {
	return func(u *url.URL) (stages.RangeSource, error) {
		if u.Scheme != "sftp" {
			return nil, fmt.Errorf("URL %s: scheme %q is not supported", u.Redacted(), u.Scheme)
		}
		s, err := pool.Source(u.String())
		if err != nil {
			return nil, err
		}
		return sftpStats{s}, nil
	}
}

// sftpStats reports an sftp source's traffic in the summary.
type sftpStats struct{ *sftpsource.Source }

// Stats implements the statistics interface of zsyncpipe.Sync.
func (s sftpStats) Stats() zsyncpipe.SourceStats {
	st := s.Source.Stats()
	return zsyncpipe.SourceStats{Requests: st.Requests, Ranges: st.Ranges}
}

// download fetches a whole control file over http(s) or sftp.
func download(ctx context.Context, arg string, opts httpsource.Options, pool *sftpsource.Pool, since time.Time) (*httpsource.File, error) {
	u, err := url.Parse(arg)
	if err != nil || u.Scheme != "sftp" {
		return httpsource.Download(ctx, arg, opts, since)
	}
	f, err := pool.Download(ctx, arg, since)
	if err != nil {
		return nil, err
	}
	return &httpsource.File{Body: f.Body, FinalURL: u, LastModified: f.ModTime, NotModified: f.NotModified}, nil
}
