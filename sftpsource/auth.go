package sftpsource

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrAuth is wrapped by errors that report that the server refused every
// credential offered.
var ErrAuth = errors.New("ssh authentication failed")

// ErrHostKey is wrapped by errors that report a server whose host key is
// not trusted: unknown, changed or revoked. The error names the key's
// SHA-256 fingerprint.
var ErrHostKey = errors.New("ssh host key not trusted")

// HostKeyError reports a host key that is not in the known_hosts files, or
// differs from the one listed there. It wraps ErrHostKey.
type HostKeyError struct {
	// Host is the address dialed, "host:port".
	Host string
	// Key is the key the server presented.
	Key ssh.PublicKey
	// Known lists the keys known_hosts has for the host, with the file and
	// line of each; empty when the host is unknown.
	Known []knownhosts.KnownKey
	// Revoked is set when the key is marked @revoked.
	Revoked bool
	// Files are the known_hosts files that were read.
	Files []string
}

func (e *HostKeyError) Error() string {
	fp := ssh.FingerprintSHA256(e.Key)
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s (%s %s) is marked @revoked in known_hosts", e.Host, e.Key.Type(), fp)
	case len(e.Known) == 0:
		return fmt.Sprintf("host key of %s is unknown: %s %s is not in %s; if that fingerprint is right, add the key (ssh-keyscan, or connect once with ssh) or name another file with --known-hosts",
			e.Host, e.Key.Type(), fp, strings.Join(e.Files, ", "))
	}
	var known []string
	for _, k := range e.Known {
		known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
	}
	return fmt.Sprintf("host key of %s has CHANGED: the server presents %s %s, known_hosts has %s; someone may be intercepting the connection",
		e.Host, e.Key.Type(), fp, strings.Join(known, ", "))
}

// Unwrap returns ErrHostKey.
func (e *HostKeyError) Unwrap() error { return ErrHostKey }

// hostKeys checks host keys against known_hosts files.
type hostKeys struct {
	files []string
	cb    ssh.HostKeyCallback
}

// loadHostKeys reads the known_hosts files of o, or the defaults.
func loadHostKeys(o *Options) (*hostKeys, error) {
	files := o.KnownHosts
	if len(files) == 0 {
		if home, err := os.UserHomeDir(); err == nil {
			files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
		}
		files = append(files, "/etc/ssh/ssh_known_hosts")
		var exist []string
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				exist = append(exist, f)
			}
		}
		if len(exist) == 0 {
			// Nothing is trusted: every host is refused with its
			// fingerprint.
			return &hostKeys{files: files}, nil
		}
		files = exist
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return &hostKeys{files: files, cb: cb}, nil
}

// check is the ssh.HostKeyCallback.
func (h *hostKeys) check(host string, remote net.Addr, key ssh.PublicKey) error {
	if h.cb == nil {
		return &HostKeyError{Host: host, Key: key, Files: h.files}
	}
	err := h.cb(host, remote, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return &HostKeyError{Host: host, Key: key, Known: ke.Want, Files: h.files}
	case errors.As(err, &re):
		return &HostKeyError{Host: host, Key: key, Revoked: true, Files: h.files}
	}
	return fmt.Errorf("%w: %s: %w", ErrHostKey, host, err)
}

// algorithms returns the host key algorithms to ask the server for: those
// of the keys known for host, so that a server with several host keys
// presents one that can be checked. Nil when none is known.
func (h *hostKeys) algorithms(host string) []string {
	if h.cb == nil {
		return nil
	}
	// Asking about a key that cannot match lists the known ones.
	probe, _ := ssh.NewPublicKey(ed25519.PublicKey(bytes.Repeat([]byte{0}, ed25519.PublicKeySize)))
	var ke *knownhosts.KeyError
	if err := h.cb(host, &net.TCPAddr{}, probe); !errors.As(err, &ke) {
		return nil
	}
	var algs []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algs = append(algs, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algs = append(algs, t)
		}
	}
	return algs
}

// authMethods returns the ways to authenticate, in OpenSSH's order: the
// agent's keys and the key files in one publickey method (the ssh package
// tries each method name once), then the password if one was given.
func authMethods(o *Options, password string) (methods []ssh.AuthMethod, closeAgent func(), err error) {
	var signers []ssh.Signer
	closeAgent = func() {}
	var ag agent.ExtendedAgent
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && !o.NoAgent {
		if c, err := net.Dial("unix", sock); err == nil {
			ag = agent.NewClient(c)
			closeAgent = func() { c.Close() }
		} else {
			o.logf("ssh agent at %s: %v", sock, err)
		}
	}
	files, explicit := o.IdentityFiles, true
	if len(files) == 0 {
		explicit = false
		if home, err := os.UserHomeDir(); err == nil {
			for _, n := range []string{"id_rsa", "id_ecdsa", "id_ed25519"} {
				files = append(files, filepath.Join(home, ".ssh", n))
			}
		}
	}
	for _, f := range files {
		s, err := readKey(f)
		switch {
		case err == nil:
			signers = append(signers, s)
		case !explicit && errors.Is(err, os.ErrNotExist):
		case explicit && !errors.As(err, new(*ssh.PassphraseMissingError)):
			closeAgent()
			return nil, func() {}, err
		default:
			o.logf("%v", err)
		}
	}
	if ag != nil || len(signers) > 0 {
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			var all []ssh.Signer
			if ag != nil {
				if s, err := ag.Signers(); err == nil {
					all = append(all, s...)
				}
			}
			return append(all, signers...), nil
		}))
	}
	if password != "" {
		methods = append(methods, ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	return methods, closeAgent, nil
}

// readKey reads an unencrypted private key file.
func readKey(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("identity file %s is protected by a passphrase; add it to the ssh agent (ssh-add) to use it: %w", path, err)
		}
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return s, nil
}

// currentUser returns the login name to use when neither the URL nor the
// options name one.
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}
