// Package sshtest starts a real OpenSSH server for tests: sshd on a free
// loopback port, with a temporary host key, one authorized client key, the
// sftp subsystem and a temporary directory to serve.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is a running sshd.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Root is a temporary directory for the test's files.
	Root string
	// User is the login name: the user running the test.
	User string
	// IdentityFile is the private key that the server accepts.
	IdentityFile string
	// KnownHosts is a known_hosts file listing the server's host key.
	KnownHosts string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey

	cmd *exec.Cmd
	log *bytes.Buffer
}

// Config changes the server's configuration.
type Config struct {
	// SFTP is the sftp subsystem's command; "internal-sftp" when empty.
	// "internal-sftp -P open" answers every open with "permission denied".
	SFTP string
}

// Start starts sshd for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartConfig(t, Config{})
}

// StartConfig starts sshd with cfg for the test and stops it when the test
// ends.
func StartConfig(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.SFTP == "" {
		cfg.SFTP = "internal-sftp"
	}
	bin := testtool.Look(t, "sshd", "openssh-server")
	dir := t.TempDir()
	s := &Server{Root: filepath.Join(dir, "root")}
	must(t, os.Mkdir(s.Root, 0o755))
	u, err := user.Current()
	must(t, err)
	s.User = u.Username

	hostPriv := writeKey(t, filepath.Join(dir, "host_ed25519"))
	s.HostKey = hostPriv.PublicKey()
	s.IdentityFile = filepath.Join(dir, "id_ed25519")
	client := writeKey(t, s.IdentityFile)
	must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(client.PublicKey()), 0o600))
	if os.Geteuid() == 0 {
		// sshd wants its privilege separation directory.
		must(t, os.MkdirAll("/run/sshd", 0o755))
	}

	var lastErr error
	for range 3 { // the free port may be taken before sshd binds it
		if lastErr = s.try(t, bin, dir, cfg); lastErr == nil {
			s.KnownHosts = filepath.Join(dir, "known_hosts")
			must(t, os.WriteFile(s.KnownHosts, []byte(knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n"), 0o600))
			return s
		}
	}
	t.Fatalf("sshd: %v", lastErr)
	return nil
}

func (s *Server) try(t testing.TB, bin, dir string, cfg Config) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "sshd_config")
	must(t, os.WriteFile(conf, []byte(strings.Join([]string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel ERROR",
		"Subsystem sftp " + cfg.SFTP,
		"",
	}, "\n")), 0o600))
	log := &bytes.Buffer{}
	cmd := exec.Command(bin, "-D", "-e", "-f", conf)
	cmd.Stderr = log
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		return err
	}
	// Wait until it accepts connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) || processGone(cmd.Process.Pid) {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("sshd did not start on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Addr, s.cmd, s.log = addr, cmd, log
	t.Cleanup(func() {
		s.KillConnections()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return nil
}

// processGone reports whether pid has exited (or is a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// URL returns the sftp URL of path, relative to Root.
func (s *Server) URL(path string) string {
	return "sftp://" + s.User + "@" + s.Addr + filepath.ToSlash(filepath.Join(s.Root, path))
}

// Log returns what sshd printed so far.
func (s *Server) Log() string { return s.log.String() }

// KillConnections kills the processes sshd forked for its connections (the
// listener stays), as a dropped connection would end them. It returns the
// number of processes killed.
func (s *Server) KillConnections() int { return s.signalConnections(syscall.SIGKILL) }

// StallConnections stops (SIGSTOP) the processes sshd forked for its
// connections: the connections stay open, and nothing is answered. New
// connections are served. It returns the number of processes stopped.
func (s *Server) StallConnections() int { return s.signalConnections(syscall.SIGSTOP) }

func (s *Server) signalConnections(sig syscall.Signal) int {
	n := 0
	for _, pid := range descendants(s.cmd.Process.Pid) {
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}

// descendants returns the process ids below pid, from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// WriteKey writes a new ed25519 private key in OpenSSH format to path and
// returns its signer.
func WriteKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	return writeKey(t, path)
}

func writeKey(t testing.TB, path string) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(t, err)
	must(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
	s, err := ssh.NewSignerFromKey(priv)
	must(t, err)
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
