package main

import (
	"fmt"
	"io"
	"os"

	"github.com/zsyncpipe/zsyncpipe/sftpsource"
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
	fs.Var(&f.identities, "identity", "sftp: private `key` file to log in with, as ssh -i (default: the ssh agent, then ~/.ssh/id_*); may be repeated")
	fs.Var(&f.knownHosts, "known-hosts", "sftp: known_hosts `file` of trusted host keys (default ~/.ssh/known_hosts); may be repeated")
	f.password = fs.Bool("ssh-password", false, "sftp: also log in with the password in $SSHPASS (never otherwise)")
	f.requests = fs.Int("sftp-requests", sftpsource.DefaultRequests, "`n` sftp read requests in flight per file and connection")
	f.connections = fs.Int("ssh-connections", sftpsource.DefaultConnections, "`n` SSH connections per sftp server")
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
