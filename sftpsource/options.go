package sftpsource

import (
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults used for zero fields of Options.
const (
	// DefaultRequests is the number of read requests kept outstanding per
	// file on each connection. Measured through an added round trip of
	// 20 ms, fetching 1,000 ranges of 16 KiB with the fetch stage's
	// defaults (8 calls of 20 ranges; BenchmarkFetchSFTPRequests,
	// docs/network.md): 26 s at 1, 1.7 s at 16, 0.69 s at 64, 0.42 s at
	// 256 (HTTP: 0.43 s), 0.40 s at 512. The fetch stage has up to 160
	// ranges in flight; 256 covers them, and holds at most 8 MiB of 32 KiB
	// buffers. OpenSSH's sftp(1) keeps 64 (-R).
	DefaultRequests = 256
	// DefaultPacketSize is the length asked for by one read request: the
	// 32 KiB that every SFTP server must accept.
	DefaultPacketSize = 32 << 10
	// DefaultConnections is the number of SSH connections opened per
	// server.
	DefaultConnections = 1
	// DefaultRetries is the number of attempts after the first one.
	DefaultRetries = 5
	// DefaultBackoff is the wait before the first retry.
	DefaultBackoff = 200 * time.Millisecond
	// MaxBackoff caps the exponential backoff between retries.
	MaxBackoff = 10 * time.Second
	// DefaultConnectTimeout bounds dialing and the SSH handshake.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultIdleTimeout is how long read requests may stay unanswered
	// before the connection is taken for dead and closed.
	DefaultIdleTimeout = 30 * time.Second
	// MaxDownloadSize is the largest file Download accepts.
	MaxDownloadSize = 256 << 20
)

// Options configures a Pool and the Sources it opens. The zero value is
// ready to use, and authenticates as OpenSSH's ssh(1) would with no
// configuration: the agent, then the default key files; the host key must
// be in ~/.ssh/known_hosts.
type Options struct {
	// User is the login name when the URL names none; the current user's
	// when empty.
	User string

	// IdentityFiles are private key files to offer (ssh -i). When empty,
	// the OpenSSH defaults that exist are used: ~/.ssh/id_rsa,
	// ~/.ssh/id_ecdsa, ~/.ssh/id_ed25519. Keys protected by a passphrase
	// cannot be used from a file: load them into the agent.
	IdentityFiles []string

	// NoAgent stops the use of the ssh agent named by SSH_AUTH_SOCK.
	NoAgent bool

	// Password, when not empty, is offered (password and
	// keyboard-interactive authentication) after the keys. A password in
	// the URL is used the same way. No password is ever asked for
	// otherwise.
	Password string

	// KnownHosts are the files of trusted host keys, in OpenSSH's
	// known_hosts format. When empty, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts (those that exist) are used. A host whose
	// key is not listed, or is listed with another key, is refused.
	KnownHosts []string

	// HostKeyCallback, when set, replaces the known_hosts check.
	HostKeyCallback ssh.HostKeyCallback

	// Requests is the number of read requests kept outstanding per file
	// on each connection; DefaultRequests when zero or negative.
	Requests int

	// PacketSize is the length of one read request; DefaultPacketSize when
	// zero or negative. Servers may answer with less (OpenSSH serves up to
	// 256 KiB); short answers are completed by further requests.
	PacketSize int

	// Connections is the number of SSH connections per server that calls
	// are spread over; DefaultConnections when zero or negative. More than
	// one helps when one connection's encryption cannot fill the link.
	Connections int

	// Retries is the number of attempts after the first one when a
	// connection fails or drops; DefaultRetries when zero, none when
	// negative. The count starts again after any attempt that delivered a
	// range.
	Retries int

	// Backoff is the wait before the first retry, doubled for each further
	// retry (with jitter) up to MaxBackoff; DefaultBackoff when zero or
	// negative.
	Backoff time.Duration

	// ConnectTimeout bounds dialing and the SSH handshake;
	// DefaultConnectTimeout when zero or negative.
	ConnectTimeout time.Duration

	// IdleTimeout is the longest read requests may go unanswered before
	// the connection is closed and the reads retried on a new one;
	// DefaultIdleTimeout when zero, no limit when negative.
	IdleTimeout time.Duration

	// Logf, if set, receives notes: key files that could not be used,
	// reconnections.
	Logf func(format string, args ...any)
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.Requests <= 0 {
		o.Requests = DefaultRequests
	}
	if o.PacketSize <= 0 {
		o.PacketSize = DefaultPacketSize
	}
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	switch {
	case o.IdleTimeout == 0:
		o.IdleTimeout = DefaultIdleTimeout
	case o.IdleTimeout < 0:
		o.IdleTimeout = 0
	}
	return o
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}
