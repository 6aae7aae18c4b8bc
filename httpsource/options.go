package httpsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults used for zero fields of Options.
const (
	// DefaultMaxRanges is the number of ranges per request to start with.
	// zsync 0.6.2 asks for 20; Apache answers up to 200 (its MaxRanges),
	// nginx any number. A request costs ≈ 300 bytes of response headers
	// and closing boundary and ≈ 450 of request headers, whatever its
	// ranges: the fetch stage puts up to this many in one request when
	// it has more ranges than requests in flight (stages.FetchLimits).
	// Servers that refuse so many are met by halving (see the package
	// documentation).
	DefaultMaxRanges = 64
	// DefaultRetries is the number of attempts after the first one.
	DefaultRetries = 5
	// DefaultBackoff is the wait before the first retry.
	DefaultBackoff = 200 * time.Millisecond
	// MaxBackoff caps the exponential backoff between retries.
	MaxBackoff = 10 * time.Second
	// MaxRetryAfter caps the wait a Retry-After header may ask for.
	MaxRetryAfter = 60 * time.Second
	// DefaultConnectTimeout bounds dialing and the TLS handshake.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultIdleTimeout is how long a request may go without a byte
	// arriving (response headers or body) before it is abandoned as stalled.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxWait bounds the time a ReadRanges call spends without
	// delivering a range — stalled requests, backoff and Retry-After
	// waits together — before it gives up.
	DefaultMaxWait = 60 * time.Second
	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "zsyncpipe"
)

// Options configures a Source. The zero value is ready to use: every zero
// field takes the default named in its comment.
type Options struct {
	// Client sends the requests. When nil, a client is built with
	// ConnectTimeout, HTTP/2 enabled (ForceAttemptHTTP2), proxies from the
	// environment, and the usual redirect policy (at most 10 redirects).
	// Credentials are applied on every redirect hop of either client.
	Client *http.Client

	// MaxRanges is the number of ranges per request to start with;
	// DefaultMaxRanges when zero or negative. It is halved for the rest of
	// the Source's life when the server refuses a request for that many.
	MaxRanges int

	// MergeGap merges two requested ranges into one when the bytes between
	// them are at most MergeGap; the gap bytes are read and discarded.
	// When zero, two ranges are merged when the gap costs fewer bytes than
	// the second range would as a part of its own (PartOverhead); negative
	// disables merging.
	MergeGap int64

	// Retries is the number of attempts after the first one on transient
	// failures; DefaultRetries when zero, none when negative. The count
	// starts again after any attempt that delivered a range.
	Retries int

	// Backoff is the wait before the first retry, doubled for each further
	// retry (with jitter) up to MaxBackoff; DefaultBackoff when zero or
	// negative.
	Backoff time.Duration

	// CAFile names a PEM file of further certificate authorities that the
	// built client trusts for https, beside the system's roots (which Go
	// reads from the files named by SSL_CERT_FILE and SSL_CERT_DIR when
	// they are set). Ignored when Client is set. Certificate verification
	// is never turned off.
	CAFile string

	// ConnectTimeout bounds dialing and the TLS handshake of the built
	// client; DefaultConnectTimeout when zero. Ignored when Client is set.
	ConnectTimeout time.Duration

	// IdleTimeout is the longest a request may wait for its response headers
	// or for the next body bytes before it is abandoned and retried;
	// DefaultIdleTimeout when zero; negative disables the check.
	IdleTimeout time.Duration

	// MaxWait bounds the total time a ReadRanges call waits without
	// delivering a range (or a Download waits for its file), over all its
	// attempts: stalled requests (each
	// abandoned after IdleTimeout, or sooner when MaxWait is nearly used
	// up), backoff and Retry-After pauses. When the next pause would pass
	// it, the call gives up, saying how long it waited. DefaultMaxWait
	// when zero; negative disables the bound (Retries still applies).
	MaxWait time.Duration

	// Credentials maps a host ("example.com") or host and port
	// ("example.com:8080") to Basic authentication credentials, as zsync's
	// -A option. They are sent only to that host, including after
	// redirects. Credentials in the URL itself are treated the same way;
	// WithURLCredentials carries those of a control file's URL over to the
	// Sources of its data.
	Credentials map[string]Credentials

	// UserAgent is the User-Agent header; DefaultUserAgent when empty.
	UserAgent string
}

// WithURLCredentials returns a copy of o whose Credentials also hold the
// user and password of rawURL (an http(s) URL such as
// "https://user:pass@host/f.zsync"), keyed by its host and port: the data
// requests to that host get them too, and requests to any other host —
// after a redirect as well — do not. o is returned unchanged when rawURL
// carries no credentials.
func (o Options) WithURLCredentials(rawURL string) Options {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil || u.Host == "" {
		return o
	}
	creds := make(map[string]Credentials, len(o.Credentials)+1)
	for k, c := range o.Credentials {
		creds[k] = c
	}
	pass, _ := u.User.Password()
	creds[hostKey(u)] = Credentials{User: u.User.Username(), Password: pass}
	o.Credentials = creds
	return o
}

// Credentials are a user name and password for Basic authentication.
type Credentials struct {
	User, Password string
}

// ParseCredentials parses the argument of zsync's -A option,
// "host=user:password", where host may carry a port. The password may
// contain ':'.
func ParseCredentials(s string) (host string, c Credentials, err error) {
	host, userpass, ok := strings.Cut(s, "=")
	if !ok || host == "" {
		return "", Credentials{}, fmt.Errorf("httpsource: credentials %q: want host=user:password", s)
	}
	user, pass, ok := strings.Cut(userpass, ":")
	if !ok {
		return "", Credentials{}, fmt.Errorf("httpsource: credentials for %q: want user:password after '='", host)
	}
	return host, Credentials{User: user, Password: pass}, nil
}

// settings are Options with defaults applied.
type settings struct {
	client      *http.Client
	maxRanges   int
	mergeGap    int64
	retries     int
	backoff     time.Duration
	idleTimeout time.Duration // 0: none
	maxWait     time.Duration // 0: none
	creds       map[string]Credentials
	userAgent   string
}

func (o *Options) settings(u *url.URL) (settings, error) {
	st := settings{
		maxRanges:   o.MaxRanges,
		mergeGap:    o.MergeGap,
		retries:     o.Retries,
		backoff:     o.Backoff,
		idleTimeout: o.IdleTimeout,
		userAgent:   o.UserAgent,
		creds:       make(map[string]Credentials),
	}
	if st.maxRanges <= 0 {
		st.maxRanges = DefaultMaxRanges
	}
	switch {
	case st.retries == 0:
		st.retries = DefaultRetries
	case st.retries < 0:
		st.retries = 0
	}
	if st.backoff <= 0 {
		st.backoff = DefaultBackoff
	}
	switch {
	case st.idleTimeout == 0:
		st.idleTimeout = DefaultIdleTimeout
	case st.idleTimeout < 0:
		st.idleTimeout = 0
	}
	switch {
	case o.MaxWait == 0:
		st.maxWait = DefaultMaxWait
	case o.MaxWait > 0:
		st.maxWait = o.MaxWait
	}
	if st.userAgent == "" {
		st.userAgent = DefaultUserAgent
	}
	for k, c := range o.Credentials {
		st.creds[normalizeHost(k)] = c
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		st.creds[hostKey(u)] = Credentials{User: u.User.Username(), Password: pass}
		u.User = nil
	}
	base := o.Client
	if base == nil {
		ct := o.ConnectTimeout
		if ct <= 0 {
			ct = DefaultConnectTimeout
		}
		roots, err := loadRoots(o.CAFile)
		if err != nil {
			return settings{}, err
		}
		base = newClient(ct, roots)
	}
	c := *base // shallow copy: shares the Transport, gets our CheckRedirect
	c.CheckRedirect = st.checkRedirect(base.CheckRedirect)
	st.client = &c
	return st, nil
}

// loadRoots returns the system's certificate pool with the certificates of
// the PEM file caFile added; nil (the system's pool) when caFile is empty.
func loadRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("httpsource: CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("httpsource: CA file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

func newClient(connectTimeout time.Duration, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	var tlsConfig *tls.Config
	if roots != nil {
		tlsConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:       tlsConfig,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16, // several ReadRanges run at once
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connectTimeout,
		ExpectContinueTimeout: time.Second,
	}}
}

// redirectError marks an error of the redirect policy: not transient.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

func (st *settings) checkRedirect(orig func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if orig != nil {
			if err := orig(req, via); err != nil {
				if err == http.ErrUseLastResponse {
					return err
				}
				return &redirectError{err}
			}
		} else if len(via) >= 10 {
			return &redirectError{errors.New("stopped after 10 redirects")}
		}
		req.Header.Del("Authorization")
		st.authorize(req)
		return nil
	}
}

// authorize sets the Basic credentials configured for req's host, if any.
func (st *settings) authorize(req *http.Request) {
	if c, ok := st.creds[hostKey(req.URL)]; ok {
		req.SetBasicAuth(c.User, c.Password)
		return
	}
	if c, ok := st.creds[strings.ToLower(req.URL.Hostname())]; ok {
		req.SetBasicAuth(c.User, c.Password)
	}
}

// hostKey returns "host:port" of u, lower case, with the scheme's default
// port filled in.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// normalizeHost lower-cases a Credentials key and writes "host:port" the
// way hostKey does.
func normalizeHost(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	if h, p, err := net.SplitHostPort(k); err == nil {
		return net.JoinHostPort(h, p)
	}
	return strings.Trim(k, "[]")
}
