//go:build unix

package v03_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/broker"
	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

// sr3ReassemblyConf are the lines that make an sr3 subscribe rebuild
// partitioned files with sr3 3.3.1's flowcb/block_reassembly.py (which
// needs the Python module flufl.lock): downloads straight into the final
// names ("inflight None": the plugin does nothing with any other), the
// plugin's lock and manifest files never downloaded, the plugin before the
// other callbacks, and its manifest deleted once the file is complete.
var sr3ReassemblyConf = []string{
	"inflight None",
	"reject .*flufl_lock.*",
	"reject .*§block_manifest§.*",
	"callback_prepend block_reassembly",
	"block_manifest_delete on",
	"accept .*",
}

// requireReassembly checks that sr3's block_reassembly plugin can run: the
// Python of sr3's environment (in bin) imports flufl.lock.
func requireReassembly(t *testing.T, bin string) {
	t.Helper()
	python := filepath.Join(bin, "python3")
	if !fileExists(python) {
		python = "python3"
	}
	out, err := exec.Command(python, "-c", "import flufl.lock").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	testtool.Require(t, "sr3's block_reassembly needs the Python module flufl.lock (pip install flufl.lock in sr3's environment, as .ci/run does)", err)
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

// waitReassembled waits until sr3 has reported rel complete for the n-th
// time in dir, with exactly want, then checks that nothing of the
// reassembly is left beside it: no partition files, no manifest, no lock
// files.
func waitReassembled(t *testing.T, e *sr3Env, log *syncBuffer, dir, rel string, want []byte, n int) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	e.wait(log, "sr3 to reassemble "+rel, func() bool {
		got, err := os.ReadFile(path)
		return err == nil && bytes.Equal(got, want) && logged(log.String(), "downloaded ok: ", "/"+rel+" size: ") >= n
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

// logged counts the lines of sr3's log that have event and then, further
// on, path (sr3 logs paths below the subscriber's directory, and some
// without the leading slash).
func logged(log, event, path string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, event); i >= 0 && strings.Contains(l[i:]+" ", path) {
			n++
		}
	}
	return n
}

// completed counts the times sr3's block_reassembly said it completed rel
// (a line logged before it deletes its manifest and unlocks).
func completed(log, rel string) int {
	return logged(log, "completed reassembly of ", "/"+rel+" ")
}

// TestSR3Reassembly: sr3_post posts testdata/file.bin as partitions of
// 2048 bytes ("blockSize 2048"), and a real "sr3 subscribe" with its
// block_reassembly plugin (sr3ReassemblyConf) rebuilds file.bin from the
// partition files it downloads, byte for byte, when it finds all the
// partitions queued at once.
func TestSR3Reassembly(t *testing.T) {
	t.Parallel()
	ctx := brokertest.Context(t, 90*time.Second)
	e := newSR3Env(t, ctx)
	requireReassembly(t, e.bin)
	data, err := os.ReadFile("testdata/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	sub := t.TempDir()
	path := e.publish("a/b/file.bin", data)
	e.conf("subscribe", "r", append(e.subscribeConf(sub), sr3ReassemblyConf...)...)
	e.conf("post", "p", "post_broker "+e.amqpURL, "post_exchange "+e.exchange, "post_baseUrl "+e.url,
		"post_baseDir "+e.pub, "blockSize 2048")
	// All partitions queued before sr3 reads any: see
	// TestSR3ReassemblyFirstPartitionAlone for what happens otherwise.
	e.declare("subscribe", "r")
	e.post("p", path)
	// With flufl.lock, sr3_post leaves its manifest beside what it posts.
	if !fileExists(path + "§block_manifest§") {
		t.Errorf("sr3_post left no %s", path+"§block_manifest§")
	}
	log := e.start("subscribe", "r")
	waitReassembled(t, e, log, sub, "a/b/file.bin", data, 1)
}

// zsyncpipeReassembly is a real "sr3 subscribe" with block_reassembly
// (logging what it rejects, and with the configuration lines extra)
// receiving partitions published as zsyncpipe's partition publisher does.
type zsyncpipeReassembly struct {
	*sr3Env
	log  *syncBuffer
	sub  string // the subscriber's directory
	conn broker.Conn
}

func newZsyncpipeReassembly(t *testing.T, extra ...string) *zsyncpipeReassembly {
	ctx := brokertest.Context(t, 90*time.Second)
	z := &zsyncpipeReassembly{sr3Env: newSR3Env(t, ctx), sub: t.TempDir()}
	requireReassembly(t, z.bin)
	conf := append(append(z.subscribeConf(z.sub), "logReject on"), extra...)
	conf = append(conf, sr3ReassemblyConf...)
	z.conf("subscribe", "z", conf...)
	z.log = z.start("subscribe", "z")
	var err error
	z.conn, err = broker.Dial(ctx, z.amqpURL, broker.Options{Exchange: z.exchange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.conn.Close() })
	return z
}

// send publishes msgs[i] for each i of order.
func (z *zsyncpipeReassembly) send(msgs []*v03.Message, order ...int) {
	z.t.Helper()
	for _, i := range order {
		body, err := msgs[i].Encode()
		if err != nil {
			z.t.Fatal(err)
		}
		if err := z.conn.Publish(z.ctx, msgs[i].RelPath, body); err != nil {
			z.t.Fatal(err)
		}
	}
}

// waitBlock waits until sr3 has written partition n of the file into
// place, the n-th time.
func (z *zsyncpipeReassembly) waitBlock(n, times int) {
	z.t.Helper()
	z.wait(z.log, fmt.Sprintf("sr3 to write partition %d", n), func() bool {
		return strings.Count(z.log.String(), fmt.Sprintf("adding block %d by seeking", n)) >= times
	})
}

// waiting returns the partitions sr3's manifest beside rel (its
// reassembly state) is still waiting for, or nil while it cannot be read
// (absent, being rewritten).
func (z *zsyncpipeReassembly) waiting(rel string) []string {
	b, err := os.ReadFile(filepath.Join(z.sub, filepath.FromSlash(rel)) + "§block_manifest§")
	if err != nil {
		return nil
	}
	var m struct{ Waiting map[string]json.RawMessage }
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	var keys []string
	for k := range m.Waiting {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// waitWaiting waits until sr3's manifest of rel waits for exactly want.
func (z *zsyncpipeReassembly) waitWaiting(rel string, want ...string) {
	z.t.Helper()
	z.wait(z.log, fmt.Sprintf("sr3's manifest of %s to wait for partitions %v", rel, want), func() bool {
		return slices.Equal(z.waiting(rel), want)
	})
}

// testFile returns a file of n partitions of size bytes and a shorter last
// one; partition i is filled with the byte fill[i].
func testFile(size int, fill string) []byte {
	var data []byte
	for _, c := range []byte(fill) {
		data = append(data, bytes.Repeat([]byte{c}, size)...)
	}
	return append(data, "the last partition is shorter\n"...)
}

// TestSR3ReassemblyOfZsyncpipe: messages shaped as zsyncpipe's partition
// publisher sends them (partitionMessages: correct sha512 of each
// partition, unlike sr3_post's), published in reverse order, are received
// by a real "sr3 subscribe" with block_reassembly, which rebuilds the file
// byte for byte. Partitions 1 and 3 are identical, so their messages carry
// the same identity: fine with sr3 subscribe's default "nodupe_ttl 0"; see
// TestSR3ReassemblyNodupe.
func TestSR3ReassemblyOfZsyncpipe(t *testing.T) {
	t.Parallel()
	z := newZsyncpipeReassembly(t)
	data := testFile(4096, "abcb")
	const rel = "c/d/big.bin"
	z.publish(rel, data)
	msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z.send(msgs, 4, 3, 2, 1, 0)
	waitReassembled(t, z.sr3Env, z.log, z.sub, rel, data, 1)
}

// TestSR3ReassemblyUnverified: sr3 does not check a partition against its
// identity (sr3 3.3.1 computes the downloaded bytes' checksum and discards
// the comparison): partitions announced with identities of other bytes are
// reassembled all the same. Correct identities are thus accepted, and a
// zsyncpipe publisher cannot count on sr3 to catch a partition that
// changed between announcement and download.
func TestSR3ReassemblyUnverified(t *testing.T) {
	t.Parallel()
	z := newZsyncpipeReassembly(t)
	data := testFile(4096, "abc")
	const rel = "e/wrong.bin"
	z.publish(rel, data)
	msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := partitionMessages(testFile(4096, "xyz"), 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		m.Identity = wrong[i].Identity
		m.Blocks.Manifest = wrong[i].Blocks.Manifest
	}
	z.send(msgs, 3, 0, 1, 2)
	waitReassembled(t, z.sr3Env, z.log, z.sub, rel, data, 1)
}

// TestSR3ReassemblyNodupe: with duplicate suppression on ("nodupe_ttl
// 300", common on sr3 subscribers; the default of subscribe is 0), sr3
// drops a partition whose identity is that of an earlier partition of the
// same file (its key is the identity, its path the relPath, the same for
// every partition): the reassembly waits for it for ever and the file has
// a hole. sr3's own partition identities (see Blocks.SR3IdentityRange)
// hash ranges of different lengths and so do not collide; zsyncpipe's
// correct ones do whenever two partitions are identical (runs of zeros).
// A "nodupe_override" member in the message with a key per partition
// (an sr3-internal field that sr3 honours) avoids it.
func TestSR3ReassemblyNodupe(t *testing.T) {
	t.Parallel()
	data := testFile(4096, "abcb")
	const rel = "c/d/dup.bin"
	t.Run("dropped", func(t *testing.T) {
		t.Parallel()
		z := newZsyncpipeReassembly(t, "nodupe_ttl 300")
		z.publish(rel, data)
		msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		z.send(msgs, 4, 0, 1, 2, 3)
		z.wait(z.log, "sr3 to drop partition 3 as a duplicate of 1", func() bool {
			return strings.Count(z.log.String(), "nodupe check") == 1
		})
		z.waitBlock(2, 1)
		z.waitWaiting(rel, "3")
		if completed(z.log.String(), rel) > 0 {
			t.Errorf("sr3 completed %s without partition 3", rel)
		}
	})
	t.Run("nodupe_override", func(t *testing.T) {
		t.Parallel()
		z := newZsyncpipeReassembly(t, "nodupe_ttl 300")
		z.publish(rel, data)
		msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			key, err := json.Marshal(map[string]string{"key": fmt.Sprintf("%s,%s,%d", m.Identity.Method, m.Identity.Value, i)})
			if err != nil {
				t.Fatal(err)
			}
			m.Extra = map[string]json.RawMessage{"nodupe_override": key}
		}
		z.send(msgs, 4, 0, 1, 2, 3)
		waitReassembled(t, z.sr3Env, z.log, z.sub, rel, data, 1)
	})
}

// TestSR3ReassemblyChangedPartitions: a file reassembled by sr3 changes (a
// partition modified, the file grown by two partitions) and only the
// changed and new partitions are announced, as zsyncpipe's publisher does
// for growing files. sr3 writes them in place (the file then has the new
// content) but does not complete: its manifest waits for every partition
// of the new manifest, so the unchanged ones must be announced again (and
// sr3 downloads them again) before it reports the file.
func TestSR3ReassemblyChangedPartitions(t *testing.T) {
	t.Parallel()
	z := newZsyncpipeReassembly(t)
	data := testFile(4096, "abcd")
	const rel = "g/grow.bin"
	z.publish(rel, data)
	msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z.send(msgs, 4, 0, 1, 2, 3)
	waitReassembled(t, z.sr3Env, z.log, z.sub, rel, data, 1)

	grown := slices.Clone(data)
	copy(grown[4096:], bytes.Repeat([]byte{'X'}, 100))
	grown = append(grown, bytes.Repeat([]byte{'Y'}, 5000)...)
	z.publish(rel, grown)
	msgs, err = partitionMessages(grown, 4096, z.url, rel, time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z.send(msgs, 1, 4, 5)
	z.waitBlock(5, 1)
	z.waitWaiting(rel, "0", "2", "3") // the unchanged partitions
	got, err := os.ReadFile(filepath.Join(z.sub, rel))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, grown) {
		t.Errorf("after the changed partitions: %d bytes, not the new file's %d", len(got), len(grown))
	}
	if n := completed(z.log.String(), rel); n != 1 {
		t.Errorf("sr3 completed the file %d times, want once (the first version)", n)
	}
	z.send(msgs, 0, 2, 3)
	z.wait(z.log, "sr3 to complete the new version", func() bool {
		return completed(z.log.String(), rel) == 2
	})
	waitReassembled(t, z.sr3Env, z.log, z.sub, rel, grown, 2)
}

// TestSR3ReassemblyFirstPartitionAlone: sr3 compares each partition
// message with the whole local file (flow file_should_be_downloaded: same
// size, and a message mtime not newer than the file's, means "not
// newer"). Once partition 0 alone has been written, the local file has
// exactly the partition size, and every later full-size partition of the
// same version is refused ("mtime not newer": the file was just written)
// and the reassembly waits for them for ever. It happens whenever sr3
// takes partition 0 in a batch of its own, with sr3_post's partitions as
// with zsyncpipe's. Announcing the last partition first, as the other
// tests do, makes the local file its full size at once and avoids it.
func TestSR3ReassemblyFirstPartitionAlone(t *testing.T) {
	t.Parallel()
	z := newZsyncpipeReassembly(t)
	data := testFile(4096, "abcd")
	const rel = "f/first.bin"
	z.publish(rel, data)
	msgs, err := partitionMessages(data, 4096, z.url, rel, time.Now().Add(-time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	z.send(msgs, 0)
	z.waitWaiting(rel, "1", "2", "3", "4")
	z.send(msgs, 1, 2, 3, 4)
	z.wait(z.log, `sr3 to refuse partitions 1 to 3 as "mtime not newer"`, func() bool {
		return strings.Count(z.log.String(), "mtime not newer") == 3
	})
	z.waitBlock(4, 1)
	z.waitWaiting(rel, "1", "2", "3")
	if completed(z.log.String(), rel) > 0 {
		t.Errorf("sr3 completed %s without partitions 1 to 3", rel)
	}
}
