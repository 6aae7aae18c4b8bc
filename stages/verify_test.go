package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// chainedControl makes the control file of data with a SHA-256 hash chain.
func chainedControl(t *testing.T, data []byte, bs int) *control.File {
	t.Helper()
	f, err := BlockChecksums(context.Background(), bytes.NewReader(data), ChecksumOptions{
		Blocksize: bs, Length: int64(len(data)), SHA256: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestHashChainStates checks that the chain recorded by BlockChecksums holds
// the SHA-256 state after each span, and that it costs nothing to files
// too small for it.
func TestHashChainStates(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{9}))
	for _, n := range []int{5<<20 + 1234, 6 << 20, 40<<20 + 17} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		f := chainedControl(t, data, 4096)
		c := f.SHA256Chain
		if c == nil {
			t.Fatalf("%d bytes: no hash chain", n)
		}
		if got, want := int64(len(c.States)), c.Spans(int64(n))-1; got != want || got < 1 || got > control.MaxChainStates {
			t.Fatalf("%d bytes: %d states for %d spans", n, got, want+1)
		}
		for i, st := range c.States {
			h := sha256.New()
			h.Write(data[:int64(i+1)*c.Span])
			got, err := SHA256State(h)
			if err != nil || got != st {
				t.Fatalf("%d bytes: state %d is %x, want %x (%v)", n, i, st, got, err)
			}
		}
		var buf bytes.Buffer
		if err := control.Write(&buf, f); err != nil {
			t.Fatal(err)
		}
		back, err := control.Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if back.SHA256Chain == nil || back.SHA256Chain.Span != c.Span || len(back.SHA256Chain.States) != len(c.States) {
			t.Fatalf("%d bytes: chain did not survive Write and Read", n)
		}
	}
	small := chainedControl(t, make([]byte, 1<<20), 4096)
	if small.SHA256Chain != nil {
		t.Error("a 1 MiB file got a hash chain")
	}
}

// runVerifier writes target into a fresh output through a Patcher in a
// random block order while a PrefixVerifier follows (with 3 workers: after
// it, in bounded Steps), and returns its verdict.
func runVerifier(t *testing.T, f *control.File, target []byte, workers int) error {
	t.Helper()
	out := &memOutput{b: make([]byte, len(target))}
	pt := NewPatcher(out, &f.Header)
	v := NewPrefixVerifier(out, &f.Header, pt)
	v.workers = workers
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	steps := workers == 3
	if steps {
		done <- nil
	} else {
		go func() { done <- v.Run(ctx) }()
	}
	bs := int64(f.Blocksize)
	order := rand.New(rand.NewChaCha8([32]byte{3})).Perm(int(f.Blocks()))
	for _, i := range order {
		if err := pt.WriteBlock(Block{Index: int64(i), Data: blockOf(target, int(bs), int64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		return err
	}
	if steps {
		// As the sync's verify stage does: a bounded Step per update.
		for range 1000 {
			if err := v.Step(1 << 20); err != nil {
				return err
			}
		}
	}
	if v.Hashed() != int64(len(target)) {
		t.Errorf("hashed %d bytes of %d", v.Hashed(), len(target))
	}
	return v.Verify()
}

// TestPrefixVerifierChain checks the parallel check of a chained file:
// a good output passes with one worker and with several; a changed byte in
// any span, or a wrong state in the chain, fails with ErrMismatch.
func TestPrefixVerifierChain(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{5}))
	data := make([]byte, 9<<20+777)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	f := chainedControl(t, data, 2048)
	if f.SHA256Chain == nil || len(f.SHA256Chain.States) < 3 {
		t.Fatalf("want a chain of several spans, got %+v", f.SHA256Chain)
	}
	for _, w := range []int{1, 3} {
		if err := runVerifier(t, f, data, w); err != nil {
			t.Errorf("%d workers, good output: %v", w, err)
		}
	}
	for _, off := range []int64{0, f.SHA256Chain.Span + 5, int64(len(data)) - 1} {
		bad := bytes.Clone(data)
		bad[off] ^= 1
		if err := runVerifier(t, f, bad, 2); !errors.Is(err, ErrMismatch) {
			t.Errorf("byte %d changed: %v, want ErrMismatch", off, err)
		}
	}
	wrong := *f
	chain := *f.SHA256Chain
	chain.States = append([][32]byte(nil), chain.States...)
	chain.States[1][0] ^= 1
	wrong.SHA256Chain = &chain
	if err := runVerifier(t, &wrong, data, 2); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong chain state: %v, want ErrMismatch", err)
	}
	// Without the chain the same output is checked serially.
	serial := *f
	serial.SHA256Chain = nil
	if err := runVerifier(t, &serial, data, 2); err != nil {
		t.Errorf("serial check: %v", err)
	}
}

// memOutput is an output in memory, safe for concurrent writes to
// different blocks and reads of written ones.
type memOutput struct{ b []byte }

func (m *memOutput) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memOutput) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m.b[off:]), nil }
