package v03

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/zsyncpipe/zsyncpipe/relpath"
)

// Limits bound what Validate accepts. The zero value uses the defaults.
type Limits struct {
	// MaxSize is the largest file size accepted; 0 means DefaultMaxSize.
	MaxSize int64
	// MaxContent is the largest inline content accepted, decoded; 0 means
	// DefaultMaxContent.
	MaxContent int64
}

// Defaults of Limits.
const (
	DefaultMaxSize    = 1 << 40 // 1 TiB
	DefaultMaxContent = 1 << 20 // 1 MiB; sr3 inlines up to 4 KiB by default
)

// digestLen is the decoded length of the digest identity methods.
var digestLen = map[string]int{SHA512: 64, MD5: 16}

// Path returns the message's relPath as a checked relative path: sr3 and
// older posters may write a leading "/", which is dropped; the rest must
// pass relpath.Check.
func (m *Message) Path() (string, error) {
	return cleanPath(m.RelPath)
}

// RenamedFrom returns the checked old path of a rename, or "" when the
// message is not a rename.
func (m *Message) RenamedFrom() (string, error) {
	if m.FileOp == nil || m.FileOp.Rename == "" {
		return "", nil
	}
	return cleanPath(m.FileOp.Rename)
}

func cleanPath(p string) (string, error) {
	p = strings.TrimLeft(p, "/")
	if err := relpath.Check(p); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return p, nil
}

// Validate checks what a subscriber relies on: pubTime, baseUrl and relPath
// present, relPath (and a rename's old path) safe below the subscriber's
// directory, size and inline content within l, a digest identity of the
// right length, inline content that matches size, a blocks field that
// describes a consistent partition (ErrBlocksMethod, ErrBlocksSize,
// ErrBlocksNumber, ErrBlocksManifest) and a zsync field with a URL. The
// error wraps ErrInvalid.
func (m *Message) Validate(l Limits) error {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxContent <= 0 {
		l.MaxContent = DefaultMaxContent
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
	}
	if m.PubTime.IsZero() {
		return bad("no pubTime")
	}
	if m.BaseURL == "" {
		return bad("no baseUrl")
	}
	if u, err := url.Parse(m.BaseURL); err != nil || u.Scheme == "" {
		return bad("baseUrl %q is not an absolute URL", m.BaseURL)
	}
	if _, err := m.Path(); err != nil {
		return fmt.Errorf("relPath: %w", err)
	}
	if m.RetrievePath != "" {
		if _, err := cleanPath(m.RetrievePath); err != nil {
			return fmt.Errorf("retrievePath: %w", err)
		}
	}
	if m.Size < -1 || m.Size > l.MaxSize {
		return bad("size %d out of range [0, %d]", m.Size, l.MaxSize)
	}
	if id := m.Identity; id != nil {
		if n, ok := digestLen[id.Method]; ok {
			b, err := base64.StdEncoding.DecodeString(id.Value)
			if err != nil || len(b) != n {
				return bad("identity %s value %.80q is not a base64 digest of %d bytes", id.Method, id.Value, n)
			}
		} else if len(id.Value) > 1024 {
			return bad("identity value of %d bytes", len(id.Value))
		}
	}
	if op := m.FileOp; op != nil {
		if _, err := m.RenamedFrom(); err != nil {
			return fmt.Errorf("fileOp rename: %w", err)
		}
		if len(op.Link) > relpath.MaxLen || len(op.HLink) > relpath.MaxLen {
			return bad("fileOp link target too long")
		}
		if op.HLink != "" {
			if _, err := cleanPath(op.HLink); err != nil {
				return fmt.Errorf("fileOp hlink: %w", err)
			}
		}
	}
	if m.Content != nil {
		if int64(len(m.Content.Value)) > 2*l.MaxContent {
			return bad("inline content larger than %d bytes", l.MaxContent)
		}
		data, err := m.Content.Bytes()
		if err != nil {
			return err
		}
		if int64(len(data)) > l.MaxContent {
			return bad("inline content of %d bytes, more than %d", len(data), l.MaxContent)
		}
		if m.Size >= 0 && int64(len(data)) != m.Size {
			return bad("inline content of %d bytes, size says %d", len(data), m.Size)
		}
	}
	if m.Blocks != nil {
		if err := m.Blocks.validate(m.Size, m.Identity, l.MaxSize); err != nil {
			return err
		}
	}
	if z := m.Zsync; z != nil {
		if z.URL == "" && len(z.Control) == 0 {
			return bad("zsync field without url or control")
		}
		if z.URL != "" {
			if _, err := url.Parse(z.URL); err != nil {
				return bad("zsync url %q: %v", z.URL, err)
			}
		}
	}
	return nil
}

// FileURL returns the URL the announced file is fetched from: baseUrl
// joined with retrievePath when set, relPath otherwise.
func (m *Message) FileURL() (*url.URL, error) {
	p := m.RetrievePath
	if p == "" {
		p = m.RelPath
	}
	return join(m.BaseURL, p)
}

// ControlURL returns the URL of the control file named by the zsync field,
// resolved against baseUrl; nil when the message has none.
func (m *Message) ControlURL() (*url.URL, error) {
	if m.Zsync == nil || m.Zsync.URL == "" {
		return nil, nil
	}
	base, err := url.Parse(m.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("baseUrl: %v: %w", err, ErrInvalid)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
		base.RawPath = ""
	}
	ref, err := url.Parse(m.Zsync.URL)
	if err != nil {
		return nil, fmt.Errorf("zsync url: %v: %w", err, ErrInvalid)
	}
	return base.ResolveReference(ref), nil
}

// join appends the slash-separated path p to base, escaping each element,
// as sr3 joins baseUrl and relPath.
func join(base, p string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("baseUrl %q: %v: %w", base, err, ErrInvalid)
	}
	p = strings.TrimLeft(p, "/")
	if u.Scheme == "file" {
		// sr3 writes file: base URLs as plain paths ("file:/srv/data").
		u.Path = strings.TrimRight(u.Path, "/") + "/" + p
		u.RawPath = ""
		return u, nil
	}
	return u.JoinPath(strings.Split(p, "/")...), nil
}
