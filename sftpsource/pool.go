package sftpsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// errStalled reports a connection closed because reads went unanswered.
var errStalled = errors.New("sftp: read requests unanswered")

// A Pool keeps the SSH connections of a run open, so that every file read
// from a server goes over the same connection (or the same few: see
// Options.Connections). Sources opened from one Pool share its connections;
// a connection that drops is opened again on the next call that needs it.
// A Pool is safe for concurrent use.
type Pool struct {
	opts Options

	keysOnce sync.Once
	keys     *hostKeys
	keysErr  error

	mu        sync.Mutex
	endpoints map[string]*endpoint
	closed    bool
}

// NewPool returns a Pool that connects with opts. It does not connect
// until a Source or Download needs it.
func NewPool(opts Options) *Pool {
	return &Pool{opts: opts.withDefaults(), endpoints: make(map[string]*endpoint)}
}

// Close closes every connection of the pool. Sources opened from it fail
// afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	eps := p.endpoints
	p.endpoints = nil
	p.mu.Unlock()
	for _, ep := range eps {
		ep.close()
	}
	return nil
}

// target is a parsed sftp URL.
type target struct {
	user, password string
	addr           string // host:port
	path           string
	redacted       string
}

// parseURL parses sftp://[user[:password]@]host[:port]/path. The path is
// taken as given: "sftp://h/dir/f" names /dir/f, and "sftp://h/~/f" (or
// "sftp://h/./f") names f in the login directory.
func (p *Pool) parseURL(rawURL string) (*target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sftpsource: %w", err)
	}
	if u.Scheme != "sftp" {
		return nil, fmt.Errorf("sftpsource: %s: not an sftp URL", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("sftpsource: %s: no host", u.Redacted())
	}
	t := &target{user: p.opts.User, path: u.Path}
	if u.User != nil {
		t.user = u.User.Username()
		t.password, _ = u.User.Password()
	}
	if t.user == "" {
		t.user = currentUser()
	}
	if t.password == "" {
		t.password = p.opts.Password
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	switch {
	case t.path == "" || strings.HasSuffix(t.path, "/"):
		return nil, fmt.Errorf("sftpsource: %s: names no file", u.Redacted())
	case strings.HasPrefix(t.path, "/~/"):
		t.path = t.path[3:]
	case strings.HasPrefix(t.path, "/./"):
		t.path = t.path[3:]
	}
	r := *u
	r.User = nil
	if u.User != nil {
		r.User = url.User(t.user)
	}
	t.redacted = r.String()
	return t, nil
}

// endpoint returns the connections to t's server as t's user.
func (p *Pool) endpoint(t *target) (*endpoint, error) {
	key := t.user + "@" + t.addr
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("sftpsource: pool closed")
	}
	ep := p.endpoints[key]
	if ep == nil {
		ep = &endpoint{pool: p, user: t.user, password: t.password, addr: t.addr, slots: make([]*session, p.opts.Connections)}
		p.endpoints[key] = ep
	}
	return ep, nil
}

// endpoint is the set of connections to one server as one user.
type endpoint struct {
	pool           *Pool
	user, password string
	addr           string

	mu     sync.Mutex
	slots  []*session // nil: not connected
	dialMu []sync.Mutex
	next   int
	closed bool
}

// session is one SSH connection with its SFTP client.
type session struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	slot int

	once     sync.Once
	done     chan struct{}
	errMu    sync.Mutex
	err      error        // why the session ended
	active   atomic.Int64 // read requests outstanding
	progress atomic.Int64 // unix nanoseconds of the last answer
}

// pick returns the slot for the next call: each in turn.
func (ep *endpoint) pick() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	i := ep.next
	ep.next = (ep.next + 1) % len(ep.slots)
	return i
}

// session returns the live session of slot i, connecting if there is none;
// dialed reports a new connection.
func (ep *endpoint) session(ctx context.Context, i int) (s *session, dialed bool, err error) {
	ep.mu.Lock()
	if ep.dialMu == nil {
		ep.dialMu = make([]sync.Mutex, len(ep.slots))
	}
	if ep.closed {
		ep.mu.Unlock()
		return nil, false, errors.New("sftpsource: pool closed")
	}
	if s := ep.slots[i]; s != nil && s.alive() {
		ep.mu.Unlock()
		return s, false, nil
	}
	ep.mu.Unlock()

	// One dial per slot at a time; the others wait for it.
	ep.dialMu[i].Lock()
	defer ep.dialMu[i].Unlock()
	ep.mu.Lock()
	if s := ep.slots[i]; s != nil && s.alive() {
		ep.mu.Unlock()
		return s, false, nil
	}
	ep.mu.Unlock()
	s, err = ep.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	s.slot = i
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		s.close(errors.New("pool closed"))
		return nil, false, errors.New("sftpsource: pool closed")
	}
	ep.slots[i] = s
	return s, true, nil
}

// dial opens an SSH connection and an SFTP session on it.
func (ep *endpoint) dial(ctx context.Context) (*session, error) {
	o := &ep.pool.opts
	ep.pool.keysOnce.Do(func() {
		if o.HostKeyCallback == nil {
			ep.pool.keys, ep.pool.keysErr = loadHostKeys(o)
		}
	})
	if ep.pool.keysErr != nil {
		return nil, &permanentError{fmt.Errorf("sftpsource: %w", ep.pool.keysErr)}
	}
	methods, closeAgent, err := authMethods(o, ep.password)
	if err != nil {
		return nil, &permanentError{fmt.Errorf("sftpsource: %w", err)}
	}
	defer closeAgent() // the agent is needed only for the handshake
	cfg := &ssh.ClientConfig{
		User:            ep.user,
		Auth:            methods,
		HostKeyCallback: o.HostKeyCallback,
		Timeout:         o.ConnectTimeout,
		ClientVersion:   "SSH-2.0-zsyncpipe",
	}
	if cfg.HostKeyCallback == nil {
		cfg.HostKeyCallback = ep.pool.keys.check
		cfg.HostKeyAlgorithms = ep.pool.keys.algorithms(ep.addr)
	}
	dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", ep.addr)
	if err != nil {
		return nil, fmt.Errorf("sftpsource: connect to %s: %w", ep.addr, err)
	}
	// The handshake has no context: a deadline bounds it, and a cancelled
	// context closes the connection.
	nc.SetDeadline(time.Now().Add(o.ConnectTimeout))
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(nc, ep.addr, cfg)
	stop()
	if err != nil {
		nc.Close()
		return nil, classifyDial(ep, err)
	}
	nc.SetDeadline(time.Time{})
	client := ssh.NewClient(conn, chans, reqs)
	sc, err := sftp.NewClient(client, sftp.MaxPacketUnchecked(o.PacketSize), sftp.UseConcurrentReads(true))
	if err != nil {
		client.Close()
		return nil, &permanentError{fmt.Errorf("sftpsource: start sftp on %s@%s (is the sftp subsystem enabled?): %w", ep.user, ep.addr, err)}
	}
	s := &session{ssh: client, sftp: sc, done: make(chan struct{})}
	s.progress.Store(time.Now().UnixNano())
	go func() {
		// The SSH connection ending ends the session.
		err := client.Wait()
		if err == nil {
			err = errors.New("connection closed")
		}
		s.close(fmt.Errorf("sftpsource: connection to %s: %w", ep.addr, err))
	}()
	if o.IdleTimeout > 0 {
		go s.watch(o.IdleTimeout)
	}
	return s, nil
}

// classifyDial turns a handshake failure into a clear error.
func classifyDial(ep *endpoint, err error) error {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk), errors.Is(err, ErrHostKey):
		return &permanentError{fmt.Errorf("sftpsource: %w", err)}
	case strings.Contains(err.Error(), "unable to authenticate"):
		return &permanentError{fmt.Errorf("sftpsource: %s@%s: %w (tried the ssh agent, the identity files and a password only if one was given): %w", ep.user, ep.addr, ErrAuth, err)}
	}
	return fmt.Errorf("sftpsource: ssh handshake with %s: %w", ep.addr, err)
}

// alive reports whether the session has not ended.
func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// close ends the session for the reason err; the first reason is kept.
func (s *session) close(err error) {
	s.once.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.done)
		// The connection first: closing the SFTP session writes to it,
		// which blocks for good when the server has stopped reading.
		s.ssh.Close()
		s.sftp.Close()
	})
}

// reason returns why the session ended, or nil.
func (s *session) reason() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// watch closes the session when read requests stay unanswered for idle.
func (s *session) watch(idle time.Duration) {
	t := time.NewTicker(max(idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if s.active.Load() > 0 && time.Since(time.Unix(0, s.progress.Load())) > idle {
				s.close(fmt.Errorf("%w for %v", errStalled, idle))
				return
			}
		}
	}
}

// begin and end bracket one read request, for the stall watchdog.
func (s *session) begin() {
	if s.active.Add(1) == 1 {
		s.progress.Store(time.Now().UnixNano())
	}
}

func (s *session) end() {
	s.progress.Store(time.Now().UnixNano())
	s.active.Add(-1)
}

// drop closes slot i's session if it is still s, after a failure on it.
func (ep *endpoint) drop(s *session, err error) {
	s.close(err)
	ep.mu.Lock()
	if s.slot < len(ep.slots) && ep.slots[s.slot] == s {
		ep.slots[s.slot] = nil
	}
	ep.mu.Unlock()
}

func (ep *endpoint) close() {
	ep.mu.Lock()
	ep.closed = true
	slots := append([]*session(nil), ep.slots...)
	ep.mu.Unlock()
	for _, s := range slots {
		if s != nil {
			s.close(errors.New("pool closed"))
		}
	}
}

// permanentError marks a failure that retrying cannot mend.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
