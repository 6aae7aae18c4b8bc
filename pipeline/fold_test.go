package pipeline_test

import (
	"context"
	"errors"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
)

func TestFold(t *testing.T) {
	p := pipeline.New(pipeline.Config{})
	src := pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error {
		for i := 1; i <= 100; i++ {
			if err := emit(i); err != nil {
				return err
			}
		}
		return nil
	})
	sum := 0
	total := pipeline.Fold(p, "sum", src,
		func(ctx context.Context, v int, _ func(int) error) error { sum += v; return nil },
		func(ctx context.Context, emit func(int) error) error { return emit(sum) })
	var got []int
	pipeline.Sink(p, "out", total, func(ctx context.Context, v int) error { got = append(got, v); return nil })
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != 5050 {
		t.Fatalf("Fold emitted %v, want [5050]", got)
	}

	// An error from fn stops the run, and done is not called.
	p = pipeline.New(pipeline.Config{})
	src = pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error { return emit(1) })
	boom := errors.New("boom")
	called := false
	out := pipeline.Fold(p, "fail", src,
		func(ctx context.Context, v int, _ func(int) error) error { return boom },
		func(ctx context.Context, emit func(int) error) error { called = true; return nil })
	pipeline.Sink(p, "out", out, func(ctx context.Context, v int) error { return nil })
	if err := p.Run(context.Background()); !errors.Is(err, boom) || called {
		t.Fatalf("err %v, done called %v; want boom and no done", err, called)
	}
}

// Fold's done runs only on an exhausted input, never on one cut short by
// a failing stage before it. recv may see the input's close rather than
// the cancellation that precedes it (about 1 run in 1000 did before done
// checked the context), and done then did its final work — the sync's
// verify stage hashed the rest of the file — after the failure.
func TestFoldDoneNotAfterFailure(t *testing.T) {
	boom := errors.New("boom")
	for i := range 2000 {
		p := pipeline.New(pipeline.Config{})
		src := pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error { return emit(1) })
		mid := pipeline.Transform(p, "fails", src, func(ctx context.Context, v int, emit func(int) error) error { return boom })
		called := false
		end := pipeline.Fold(p, "fold", mid, func(ctx context.Context, v int, emit func(int) error) error { return nil },
			func(ctx context.Context, emit func(int) error) error {
				called = true
				return errors.New("input ended early")
			})
		pipeline.Sink(p, "sink", end, func(ctx context.Context, v int) error { return nil })
		if err := p.Run(context.Background()); !errors.Is(err, boom) || called {
			t.Fatalf("run %d: err %v, done called %v; want boom and no done", i, err, called)
		}
	}
}
