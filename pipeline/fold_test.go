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
