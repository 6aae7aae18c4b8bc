package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
)

func TestTee(t *testing.T) {
	p := pipeline.New(pipeline.Config{Buffer: 2})
	src := pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error {
		for i := range 100 {
			if err := emit(i); err != nil {
				return err
			}
		}
		return nil
	})
	a, b := pipeline.Tee(p, "tee", src)
	var gotA, gotB []int
	pipeline.Sink(p, "a", a, func(ctx context.Context, v int) error { gotA = append(gotA, v); return nil })
	pipeline.Sink(p, "b", b, func(ctx context.Context, v int) error {
		time.Sleep(50 * time.Microsecond) // the slower consumer
		gotB = append(gotB, v)
		return nil
	})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]int{gotA, gotB} {
		if len(got) != 100 {
			t.Fatalf("got %d items, want 100", len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("item %d is %d: order lost", i, v)
			}
		}
	}
	// A Tee whose second stream nobody reads is a misuse Run reports.
	p = pipeline.New(pipeline.Config{})
	src = pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error { return emit(1) })
	a, _ = pipeline.Tee(p, "tee", src)
	pipeline.Sink(p, "a", a, func(ctx context.Context, v int) error { return nil })
	if err := p.Run(context.Background()); err == nil {
		t.Error("Run accepted a Tee output that nobody consumes")
	}
}
