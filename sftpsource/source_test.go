package sftpsource

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/sshtest"
	"github.com/zsyncpipe/zsyncpipe/source"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testOptions authenticates with the server's key only.
func testOptions(srv *sshtest.Server) Options {
	return Options{
		IdentityFiles: []string{srv.IdentityFile},
		KnownHosts:    []string{srv.KnownHosts},
		NoAgent:       true,
		Backoff:       10 * time.Millisecond,
	}
}

func randomFile(t *testing.T, path string, n int, seed uint64) []byte {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// collect reads ranges and returns their bytes, concatenated. A range
// delivered again (after a failure) replaces what came before.
func collect(t *testing.T, s *Source, ranges []source.Range, each func(i int)) ([]byte, error) {
	t.Helper()
	got := map[source.Range][]byte{}
	i := 0
	err := s.ReadRanges(context.Background(), ranges, func(r source.Range, data io.Reader) error {
		b, err := io.ReadAll(data)
		if err != nil {
			return err
		}
		if int64(len(b)) != r.Len() {
			t.Errorf("range %v: %d bytes", r, len(b))
		}
		got[r] = b
		if each != nil {
			each(i)
		}
		i++
		return nil
	})
	var all []byte
	for _, r := range ranges {
		all = append(all, got[r]...)
	}
	return all, err
}

func want(data []byte, ranges []source.Range) []byte {
	var b []byte
	for _, r := range ranges {
		b = append(b, data[r.Start:r.End]...)
	}
	return b
}

func TestReadRanges(t *testing.T) {
	srv := sshtest.Start(t)
	data := randomFile(t, filepath.Join(srv.Root, "f"), 3<<20+123, 1)
	opts := testOptions(srv)
	opts.Requests = 4 // fewer tokens than pieces: the window slides
	s, err := New(srv.URL("f"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ranges := []source.Range{{Start: 0, End: 1}, {Start: 5, End: 4096}, {Start: 4096, End: 200 << 10}, {Start: 1 << 20, End: 1<<20 + 32<<10}, {Start: 2 << 20, End: int64(len(data))}}
	var wg sync.WaitGroup
	for range 4 { // concurrent calls share the file's handle
		wg.Go(func() {
			got, err := collect(t, s, ranges, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, want(data, ranges)) {
				t.Error("data differs")
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Ranges != 4*int64(len(ranges)) || st.Retries != 0 || st.Overhead != st.Requests*requestOverhead || st.Requests < st.Ranges {
		t.Errorf("stats %+v", st)
	}
	// A callback that reads nothing still gets the next range right.
	var second []byte
	err = s.ReadRanges(context.Background(), ranges[:2], func(r source.Range, data io.Reader) error {
		if r == ranges[1] {
			second, _ = io.ReadAll(data)
		}
		return nil
	})
	if err != nil || !bytes.Equal(second, data[5:4096]) {
		t.Fatalf("skipping a range: %v", err)
	}
	// The callback's error comes back as is.
	boom := errors.New("boom")
	if err := s.ReadRanges(context.Background(), ranges, func(source.Range, io.Reader) error { return boom }); err != boom {
		t.Fatalf("callback error: %v", err)
	}
	if err := s.ReadRanges(context.Background(), []source.Range{{Start: 10, End: 5}}, nil); err == nil {
		t.Fatal("empty range accepted")
	}
}

func TestPoolSharesConnection(t *testing.T) {
	srv := sshtest.Start(t)
	a := randomFile(t, filepath.Join(srv.Root, "a"), 100<<10, 2)
	b := randomFile(t, filepath.Join(srv.Root, "b"), 100<<10, 3)
	p := NewPool(testOptions(srv))
	defer p.Close()
	sa, _ := p.Source(srv.URL("a"))
	sb, _ := p.Source(srv.URL("b"))
	r := []source.Range{{Start: 0, End: 100 << 10}}
	for _, c := range []struct {
		s    *Source
		data []byte
	}{{sa, a}, {sb, b}} {
		got, err := collect(t, c.s, r, nil)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("%s: %v", c.s, err)
		}
	}
	if len(p.endpoints) != 1 {
		t.Fatalf("%d endpoints", len(p.endpoints))
	}
	var sess []*session
	for _, s := range []*Source{sa, sb} {
		for k := range s.handles {
			sess = append(sess, k)
		}
	}
	if len(sess) != 2 || sess[0] != sess[1] {
		t.Fatalf("files did not share one connection: %v", sess)
	}
}

func TestDroppedConnectionRecovers(t *testing.T) {
	srv := sshtest.Start(t)
	data := randomFile(t, filepath.Join(srv.Root, "f"), 8<<20, 4)
	opts := testOptions(srv)
	opts.Requests = 8 // a small window: each kill finds reads outstanding
	var notes []string
	var mu sync.Mutex
	opts.Logf = func(f string, a ...any) { mu.Lock(); notes = append(notes, f); mu.Unlock() }
	s, err := New(srv.URL("f"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ranges []source.Range
	for off := int64(0); off < int64(len(data)); off += 256 << 10 {
		ranges = append(ranges, source.Range{Start: off, End: off + 200<<10})
	}
	killed := 0
	got, err := collect(t, s, ranges, func(i int) {
		if i == 3 || i == 20 { // twice, mid-transfer
			killed += srv.KillConnections()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no sshd process was killed")
	}
	if !bytes.Equal(got, want(data, ranges)) {
		t.Fatal("data differs after reconnecting")
	}
	if st := s.Stats(); st.Reconnects < 2 || st.Retries < 2 {
		t.Fatalf("stats %+v: want 2 reconnections", st)
	}
}

// TestReadEOFClassified checks how an end of file from a read request is
// taken. pkg/sftp returns io.EOF both for the server's SSH_FX_EOF (a read
// past the end of a file cut short) and when the request could not be
// written because the connection had just dropped; only the first means
// the file changed.
func TestReadEOFClassified(t *testing.T) {
	srv := sshtest.Start(t)
	path := filepath.Join(srv.Root, "f")
	randomFile(t, path, 1<<20, 10)
	s, err := New(srv.URL("f"), testOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	open := func() (*session, *handle) {
		t.Helper()
		if _, err := collect(t, s, []source.Range{{Start: 0, End: 10}}, nil); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for sess, h := range s.handles {
			if sess.alive() {
				return sess, h
			}
		}
		t.Fatal("no live session")
		return nil, nil
	}

	// The connection dropped: a retry on a new one, not ErrChanged.
	sess, h := open()
	if srv.KillConnections() == 0 {
		t.Fatal("no sshd process was killed")
	}
	err = s.readError(sess, h, io.EOF)
	var pe *permanentError
	if errors.Is(err, ErrChanged) || errors.As(err, &pe) {
		t.Fatalf("end of file on a dropped connection taken as final: %v", err)
	}
	if sess.alive() {
		t.Fatal("the dropped connection was kept")
	}

	// The file was cut short: final, and says so.
	sess, h = open()
	if err := os.Truncate(path, 500); err != nil {
		t.Fatal(err)
	}
	if err = s.readError(sess, h, io.EOF); !errors.Is(err, ErrChanged) || !errors.As(err, &pe) {
		t.Fatalf("end of file of a file cut short: want a final ErrChanged, got %v", err)
	}
}

func TestHostKeyRefused(t *testing.T) {
	srv := sshtest.Start(t)
	randomFile(t, filepath.Join(srv.Root, "f"), 10, 5)
	fp := ssh.FingerprintSHA256(srv.HostKey)
	dir := t.TempDir()

	unknown := filepath.Join(dir, "empty")
	os.WriteFile(unknown, nil, 0o600)
	other := sshtest.WriteKey(t, filepath.Join(dir, "other")).PublicKey()
	changed := filepath.Join(dir, "changed")
	os.WriteFile(changed, []byte(knownhosts.Line([]string{srv.Addr}, other)+"\n"), 0o600)

	for _, c := range []struct {
		name, file, says string
	}{{"unknown", unknown, "unknown"}, {"changed", changed, "CHANGED"}} {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(srv)
			opts.KnownHosts = []string{c.file}
			opts.Retries = -1
			s, _ := New(srv.URL("f"), opts)
			defer s.Close()
			_, err := collect(t, s, []source.Range{{Start: 0, End: 10}}, nil)
			var hk *HostKeyError
			if !errors.Is(err, ErrHostKey) || !errors.As(err, &hk) {
				t.Fatalf("want a host key error, got %v", err)
			}
			if !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("message lacks the fingerprint %s or %q: %v", fp, c.says, err)
			}
			if st := s.Stats(); st.Retries != 0 {
				t.Fatalf("retried a refused host key: %+v", st)
			}
		})
	}
}

func TestAuthRefused(t *testing.T) {
	srv := sshtest.Start(t)
	randomFile(t, filepath.Join(srv.Root, "f"), 10, 6)
	opts := testOptions(srv)
	opts.IdentityFiles = []string{filepath.Join(t.TempDir(), "wrong")}
	sshtest.WriteKey(t, opts.IdentityFiles[0])
	s, _ := New(srv.URL("f"), opts)
	defer s.Close()
	_, err := collect(t, s, []source.Range{{Start: 0, End: 10}}, nil)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("want ErrAuth, got %v", err)
	}
	if st := s.Stats(); st.Retries != 0 {
		t.Fatalf("retried a refused login: %+v", st)
	}
	// A missing identity file named explicitly is an error of its own.
	opts.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	s2, _ := New(srv.URL("f"), opts)
	defer s2.Close()
	if _, err := collect(t, s2, []source.Range{{Start: 0, End: 10}}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing identity file: %v", err)
	}
}

func TestRemoteErrors(t *testing.T) {
	srv := sshtest.Start(t)
	s, _ := New(srv.URL("missing"), testOptions(srv))
	defer s.Close()
	_, err := collect(t, s, []source.Range{{Start: 0, End: 10}}, nil)
	if !errors.Is(err, fs.ErrNotExist) || s.Stats().Retries != 0 {
		t.Fatalf("want ErrNotExist without retries, got %v", err)
	}

	denied := sshtest.StartConfig(t, sshtest.Config{SFTP: "internal-sftp -P open"})
	randomFile(t, filepath.Join(denied.Root, "f"), 10, 7)
	s2, _ := New(denied.URL("f"), testOptions(denied))
	defer s2.Close()
	if _, err := collect(t, s2, []source.Range{{Start: 0, End: 10}}, nil); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("want ErrPermission, got %v", err)
	}
}

func TestChangedFileDetected(t *testing.T) {
	srv := sshtest.Start(t)
	path := filepath.Join(srv.Root, "f")
	data := randomFile(t, path, 1<<20, 8)
	s, _ := New(srv.URL("f"), testOptions(srv))
	defer s.Close()
	r := []source.Range{{Start: 0, End: 1000}}
	if got, err := collect(t, s, r, nil); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatal(err)
	}
	// Same size, new mtime: a rewritten file.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, s, r, nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("want ErrChanged, got %v", err)
	}
	// A file cut short under a new source: the read past its end says so.
	s2, _ := New(srv.URL("f"), testOptions(srv))
	defer s2.Close()
	if _, _, err := s2.Stat(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.Truncate(path, 500)
	if _, err := collect(t, s2, r, nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("want ErrChanged after truncation, got %v", err)
	}
}

func TestDownload(t *testing.T) {
	srv := sshtest.Start(t)
	path := filepath.Join(srv.Root, "c.zsync")
	data := randomFile(t, path, 70<<10, 9)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(path, old, old)
	p := NewPool(testOptions(srv))
	defer p.Close()
	f, err := p.Download(context.Background(), srv.URL("c.zsync"), time.Time{})
	if err != nil || !bytes.Equal(f.Body, data) || !f.ModTime.Equal(old) {
		t.Fatalf("download: %v", err)
	}
	f, err = p.Download(context.Background(), srv.URL("c.zsync"), old)
	if err != nil || !f.NotModified || f.Body != nil {
		t.Fatalf("not modified: %+v %v", f, err)
	}
	if _, err := p.Download(context.Background(), srv.URL("nope"), time.Time{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	p := NewPool(Options{User: "def"})
	for _, c := range []struct{ in, user, addr, path string }{
		{"sftp://h/srv/f", "def", "h:22", "/srv/f"},
		{"sftp://u@h:2222/srv/f", "u", "h:2222", "/srv/f"},
		{"sftp://u:pw@[::1]/~/f", "u", "[::1]:22", "f"},
	} {
		tg, err := p.parseURL(c.in)
		if err != nil || tg.user != c.user || tg.addr != c.addr || tg.path != c.path {
			t.Errorf("%s: %+v %v", c.in, tg, err)
		}
		if strings.Contains(tg.redacted, "pw") {
			t.Errorf("%s: password in %s", c.in, tg.redacted)
		}
	}
	for _, bad := range []string{"http://h/f", "sftp:///f", "sftp://h/", "sftp://h"} {
		if _, err := p.parseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestDefaults logs in as ssh(1) would without options: with the agent at
// SSH_AUTH_SOCK, or with ~/.ssh/id_ed25519, and the host key from
// ~/.ssh/known_hosts.
func TestDefaults(t *testing.T) {
	srv := sshtest.Start(t)
	data := randomFile(t, filepath.Join(srv.Root, "f"), 1000, 10)
	home := t.TempDir()
	t.Setenv("HOME", home)
	os.Mkdir(filepath.Join(home, ".ssh"), 0o700)
	kh, err := os.ReadFile(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), kh, 0o600)
	key, err := os.ReadFile(srv.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, opts Options) error {
		s, _ := New(srv.URL("f"), opts)
		defer s.Close()
		got, err := collect(t, s, []source.Range{{Start: 0, End: 1000}}, nil)
		if err == nil && !bytes.Equal(got, data) {
			t.Fatal("data differs")
		}
		return err
	}

	t.Run("agent", func(t *testing.T) {
		raw, err := ssh.ParseRawPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(t.TempDir(), "agent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { agent.ServeAgent(keyring, c); c.Close() }()
			}
		}()
		t.Setenv("SSH_AUTH_SOCK", sock)
		if err := read(t, Options{Retries: -1}); err != nil {
			t.Fatalf("with the agent: %v", err)
		}
		if err := read(t, Options{Retries: -1, NoAgent: true}); !errors.Is(err, ErrAuth) {
			t.Fatalf("NoAgent and no key file: want ErrAuth, got %v", err)
		}
	})
	t.Run("default key file", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), key, 0o600)
		defer os.Remove(filepath.Join(home, ".ssh", "id_ed25519"))
		if err := read(t, Options{Retries: -1}); err != nil {
			t.Fatalf("with ~/.ssh/id_ed25519: %v", err)
		}
	})
}

// TestStalledConnection stops sshd's connection processes mid-transfer:
// the watchdog closes the silent connection after IdleTimeout and the reads
// go on over a new one; and a cancelled call returns soon even while its
// requests go unanswered.
func TestStalledConnection(t *testing.T) {
	srv := sshtest.Start(t)
	data := randomFile(t, filepath.Join(srv.Root, "f"), 4<<20, 11)
	ranges := []source.Range{{Start: 0, End: 1 << 20}, {Start: 2 << 20, End: 4 << 20}}

	opts := testOptions(srv)
	opts.Requests = 4
	opts.IdleTimeout = 300 * time.Millisecond
	s, _ := New(srv.URL("f"), opts)
	defer s.Close()
	stalled := 0
	got, err := collect(t, s, ranges, func(i int) {
		if i == 0 {
			stalled = srv.StallConnections()
		}
	})
	if err != nil || !bytes.Equal(got, want(data, ranges)) {
		t.Fatalf("after a stall: %v", err)
	}
	if stalled == 0 || s.Stats().Connects < 2 {
		t.Fatalf("stalled %d processes; stats %+v", stalled, s.Stats())
	}

	opts.IdleTimeout = -1 // no watchdog: only the cancellation ends it
	s2, _ := New(srv.URL("f"), opts)
	defer s2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	err = s2.ReadRanges(ctx, ranges, func(r source.Range, data io.Reader) error {
		srv.StallConnections()
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := io.Copy(io.Discard, data)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if d := time.Since(start); d > abandonAfter+5*time.Second {
		t.Fatalf("a cancelled call took %v", d)
	}
}
