package stages

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestDeltaStage checks the pipeline adapter: blocks reach OnBlocks with
// the target's data while the scan runs, and the stage emits its Matches
// once, at the end.
func TestDeltaStage(t *testing.T) {
	const bs = 512
	target := randData(301, 200*bs+50)
	seed := mutateSeed(target, bs, 302)
	f := makeControl(t, target, bs, seq2)
	p := pipeline.New(pipeline.Config{})
	var mu sync.Mutex
	seen := make(map[int64]bool)
	var bad []int64
	out, err := DeltaStage(p, f, []Seed{seedOf("s", seed)}, DeltaOptions{
		SegmentSize: 8 * bs,
		Hasher:      newHasher(t, f.StrongAlgorithm, simd.Options{}),
		OnBlocks: func(b Block) error {
			mu.Lock()
			defer mu.Unlock()
			for j := 0; j*bs < len(b.Data); j++ {
				i := b.Index + int64(j)
				d := b.Data[j*bs : min((j+1)*bs, len(b.Data))]
				if !bytes.Equal(d, blockOf(target, bs, i)[:len(d)]) {
					bad = append(bad, i)
				}
				seen[i] = true
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []*Matches
	pipeline.Sink(p, "collect", out, func(ctx context.Context, m *Matches) error {
		got = append(got, m)
		return nil
	})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("blocks with wrong data: %v", bad)
	}
	if len(got) != 1 {
		t.Fatalf("stage emitted %d Matches, want 1", len(got))
	}
	m := got[0]
	if m.Found() < f.Blocks()/2 || int64(len(seen)) != m.Found() {
		t.Errorf("found %d of %d, delivered %d", m.Found(), f.Blocks(), len(seen))
	}
	// The scan runs as its own stage, with a worker per core.
	var scan *pipeline.StageStats
	for _, st := range p.Stats() {
		if st.Name == "scan" {
			scan = &st
		}
	}
	if scan == nil || scan.Workers != pipeline.DefaultWorkers() || scan.In == 0 || scan.Busy <= 0 {
		t.Errorf("scan stage statistics: %+v", scan)
	}

	// Without a hasher the builder fails rather than leak one it made.
	p = pipeline.New(pipeline.Config{})
	if _, err := DeltaStage(p, f, nil, DeltaOptions{}); err == nil || !strings.Contains(err.Error(), "Hasher is required") {
		t.Errorf("DeltaStage without a hasher: %v", err)
	}
}

// TestFetchStageNoSource checks that FetchStage asks for a source only when
// something is missing, and fails with ErrFetch when it gets none.
func TestFetchStageNoSource(t *testing.T) {
	const bs = 512
	target := randData(311, 10*bs)
	f := makeControl(t, target, bs, seq2)
	for _, missing := range []bool{false, true} {
		p := pipeline.New(pipeline.Config{})
		// All blocks found, or all but the first.
		m := NewMatches(f.Blocks())
		for i := int64(0); i < f.Blocks(); i++ {
			if i > 0 || !missing {
				m.Set(i, 0, i*bs)
			}
		}
		in := pipeline.Source(p, "scan", func(ctx context.Context, emit func(*Matches) error) error { return emit(m) })
		asked := false
		var plan *Plan
		looked := make(chan struct{})
		toFetch, toLook := pipeline.Tee(p, "plans", PlanStage(p, &f.Header, in))
		pipeline.Sink(p, "look", toLook, func(ctx context.Context, pl *Plan) error { plan = pl; close(looked); return nil })
		// The source fails only once the plan is seen: failing at once
		// could cancel the pipeline before Tee hands the plan to "look".
		out := FetchStage(p, f, toFetch, func(ctx context.Context) (source.RangeSource, error) {
			asked = true
			select {
			case <-looked:
			case <-ctx.Done():
			}
			return nil, errors.New("offline")
		}, FetchOptions{})
		pipeline.Sink(p, "drop", out, func(context.Context, Batch) error { return nil })
		err := p.Run(context.Background())
		if !missing && (err != nil || asked) {
			t.Errorf("nothing missing: err %v, source asked %v", err, asked)
		}
		if missing && !errors.Is(err, ErrFetch) {
			t.Errorf("missing without source: %v", err)
		}
		if plan == nil || (len(plan.Missing) > 0) != missing {
			t.Errorf("missing=%v: plan %+v", missing, plan)
		}
	}
}
