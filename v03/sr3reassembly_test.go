//go:build unix

package v03_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// sr3ReassemblyConf are the lines that make an sr3 subscribe rebuild
// partitioned files (sr3 3.3.1's flowcb/block_reassembly.py, which needs
// the Python module flufl.lock): the plugin, which it wants before the
// other callbacks, downloads straight into the final names ("inflight
// None": the plugin refuses any other), the plugin's lock and manifest
// files never downloaded, and the manifest deleted once the file is
// complete.
var sr3ReassemblyConf = []string{
	"inflight None",
	"reject .*flufl_lock.*",
	"reject .*§block_manifest§.*",
	"callback_prepend block_reassembly",
	"block_manifest_delete on",
	"accept .*",
}

// partitionMessages returns the messages zsyncpipe's partition publisher
// sends for a file of data published as relPath: one per partition of size
// bytes, in order, each with relPath the file's, Size and a sha512
// Identity of exactly the partition's bytes (not sr3's: see
// Blocks.SR3IdentityRange), and Blocks {inplace, size, number, manifest of
// every partition}.
func partitionMessages(data []byte, size int64, baseURL, relPath string, mtime, pubTime time.Time) ([]*v03.Message, error) {
	var manifest []v03.Partition
	for off := int64(0); off < int64(len(data)); off += size {
		id, err := v03.Sum(v03.SHA512, bytes.NewReader(data[off:min(off+size, int64(len(data)))]))
		if err != nil {
			return nil, err
		}
		manifest = append(manifest, v03.Partition{Size: min(size, int64(len(data))-off), Identity: id.Value})
	}
	msgs := make([]*v03.Message, len(manifest))
	for i, p := range manifest {
		msgs[i] = &v03.Message{
			PubTime:  pubTime,
			BaseURL:  baseURL,
			RelPath:  relPath,
			Size:     p.Size,
			MTime:    mtime,
			Mode:     "644",
			Identity: &v03.Identity{Method: v03.SHA512, Value: p.Identity},
			Blocks:   &v03.Blocks{Method: v03.Inplace, Size: size, Number: int64(i), Manifest: manifest},
		}
		if err := msgs[i].Validate(v03.Limits{}); err != nil {
			return nil, fmt.Errorf("partition %d: %w", i, err)
		}
	}
	return msgs, nil
}

// waitReassembled waits until sr3 has rebuilt rel in dir with exactly
// want, then checks that nothing of the reassembly is left beside it: no
// partition files, no manifest, no lock files.
func waitReassembled(t *testing.T, e *sr3Env, log *syncBuffer, dir, rel string, want []byte) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	e.wait(log, "sr3 to reassemble "+rel, func() bool {
		got, err := os.ReadFile(path)
		return err == nil && bytes.Equal(got, want) && reassemblyLogged(log.String(), rel)
	})
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Name() != filepath.Base(path) {
			t.Errorf("left beside %s: %s", rel, d.Name())
		}
	}
}

// reassemblyLogged reports whether sr3's log says it completed rel (which
// it logs as a path below the subscriber's directory, without the leading
// slash).
func reassemblyLogged(log, rel string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "completed reassembly of ") && strings.HasSuffix(strings.TrimSpace(l), "/"+rel) {
			return true
		}
	}
	return false
}

// TestSR3Reassembly: sr3_post posts testdata/file.bin as partitions of
// 2048 bytes ("blockSize 2048"), and a real "sr3 subscribe" with its
// block_reassembly plugin (sr3ReassemblyConf) rebuilds file.bin from the
// partition files it downloads, byte for byte.
func TestSR3Reassembly(t *testing.T) {
	ctx := brokertest.Context(t, 90*time.Second)
	e := newSR3Env(t, ctx)
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	path := e.publish("a/b/file.bin", data)
	e.conf("subscribe", "r", append(e.subscribeConf(sub), sr3ReassemblyConf...)...)
	e.conf("post", "p", "post_broker "+e.amqpURL, "post_exchange "+e.exchange, "post_baseUrl "+e.url,
		"post_baseDir "+e.pub, "blockSize 2048")
	log := e.start("subscribe", "r")
	e.post("p", path)
	waitReassembled(t, e, log, sub, "a/b/file.bin", data)
}

// TestSR3ReassemblyOfZsyncpipe: messages shaped as zsyncpipe's partition
// publisher sends them (partitionMessages: correct sha512 of each
// partition, unlike sr3_post's), published in reverse order, are received
// by a real "sr3 subscribe" with block_reassembly, which rebuilds the file
// byte for byte. Two partitions of the file are identical, so their
// messages carry the same identity.
func TestSR3ReassemblyOfZsyncpipe(t *testing.T) {
	ctx := brokertest.Context(t, 90*time.Second)
	e := newSR3Env(t, ctx)
	const size = 4096
	var data []byte
	for i := range 4 {
		b := bytes.Repeat([]byte{byte('a' + i)}, size)
		if i == 3 {
			b = bytes.Repeat([]byte{'b'}, size) // the same as partition 1
		}
		data = append(data, b...)
	}
	data = append(data, []byte("the last partition is shorter\n")...)
	const rel = "c/d/big.bin"
	e.publish(rel, data)
	msgs, err := partitionMessages(data, size, e.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	e.conf("subscribe", "z", append(e.subscribeConf(sub), sr3ReassemblyConf...)...)
	log := e.start("subscribe", "z")
	conn, err := broker.Dial(ctx, e.amqpURL, broker.Options{Exchange: e.exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := len(msgs) - 1; i >= 0; i-- {
		body, err := msgs[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Publish(ctx, rel, body); err != nil {
			t.Fatal(err)
		}
	}
	waitReassembled(t, e, log, sub, rel, data)
}
