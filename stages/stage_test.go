package stages

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
)

// TestDeltaStage checks the pipeline adapter: batches carry the target's
// data (copies that outlive the scan's buffers), done is closed when the
// stage ends, and OnBlocks is refused.
func TestDeltaStage(t *testing.T) {
	const bs = 512
	target := randData(301, 200*bs+50)
	seed := mutateSeed(target, bs, 302)
	f := makeControl(t, target, bs, seq2)
	p := pipeline.New(pipeline.Config{})
	out, m, done, err := DeltaStage(p, f, []Seed{seedOf("s", seed)}, DeltaOptions{SegmentSize: 8 * bs})
	if err != nil {
		t.Fatal(err)
	}
	var got []Block
	pipeline.Sink(p, "collect", out, func(ctx context.Context, b Batch) error {
		got = append(got, b...)
		return nil
	})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Errorf("done not closed after the run")
	}
	seen := make(map[int64]bool)
	for _, b := range got {
		for j := 0; j*bs < len(b.Data); j++ {
			i := b.Index + int64(j)
			d := b.Data[j*bs : min((j+1)*bs, len(b.Data))]
			if !bytes.Equal(d, blockOf(target, bs, i)[:len(d)]) {
				t.Errorf("block %d: data differs", i)
			}
			seen[i] = true
		}
	}
	if m.Found() < f.Blocks()/2 || int64(len(seen)) != m.Found() {
		t.Errorf("found %d of %d, delivered %d", m.Found(), f.Blocks(), len(seen))
	}

	if _, _, _, err := DeltaStage(pipeline.New(pipeline.Config{}), f, nil, DeltaOptions{OnBlocks: func(Block) error { return nil }}); err == nil {
		t.Errorf("OnBlocks accepted")
	}
}

// TestFetchStageNoSource checks that FetchStage asks for a source only when
// something is missing, and fails with ErrFetch when it gets none.
func TestFetchStageNoSource(t *testing.T) {
	const bs = 512
	target := randData(311, 10*bs)
	f := makeControl(t, target, bs, seq2)
	ready := make(chan struct{})
	close(ready)
	for _, missing := range [][]Range{nil, {{0, bs}}} {
		p := pipeline.New(pipeline.Config{})
		asked := false
		out := FetchStage(p, f, func() (RangeSource, error) { asked = true; return nil, errors.New("offline") }, ready,
			func() []Range { return missing }, FetchOptions{})
		pipeline.Sink(p, "drop", out, func(context.Context, Batch) error { return nil })
		err := p.Run(context.Background())
		if len(missing) == 0 && (err != nil || asked) {
			t.Errorf("nothing missing: err %v, source asked %v", err, asked)
		}
		if len(missing) > 0 && !errors.Is(err, ErrFetch) {
			t.Errorf("missing without source: %v", err)
		}
	}
}
