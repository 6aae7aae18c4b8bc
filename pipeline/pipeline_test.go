package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sourcegraph/conc/panics"
	"go.uber.org/goleak"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run runs p and fails the test if Run does not return within 10 seconds.
func run(t *testing.T, ctx context.Context, p *pipeline.Pipeline) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s (deadlock?)")
		return nil
	}
}

// count returns a Source function emitting 0..n-1.
func count(n int) func(context.Context, func(int) error) error {
	return func(_ context.Context, emit func(int) error) error {
		for i := range n {
			if err := emit(i); err != nil {
				return err
			}
		}
		return nil
	}
}

// forever is a Source function emitting 0, 1, 2, ... until cancelled.
func forever(_ context.Context, emit func(int) error) error {
	for i := 0; ; i++ {
		if err := emit(i); err != nil {
			return err
		}
	}
}

// collect returns a Sink function appending to *dst.
func collect[T any](dst *[]T) func(context.Context, T) error {
	return func(_ context.Context, v T) error {
		*dst = append(*dst, v)
		return nil
	}
}

func randomSleep(max time.Duration) {
	time.Sleep(time.Duration(rand.Int64N(int64(max))))
}

func TestMapKeepsOrder(t *testing.T) {
	for _, workers := range []int{0, 1, 8} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			const n = 1000
			p := pipeline.New(pipeline.Config{Buffer: 2, Workers: 3})
			src := pipeline.Source(p, "src", count(n))
			sq := pipeline.Map(p, "square", src, workers, func(_ context.Context, v int) (int, error) {
				randomSleep(100 * time.Microsecond)
				return v * v, nil
			})
			var got []int
			pipeline.Sink(p, "sink", sq, collect(&got))
			if err := run(t, context.Background(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(got) != n {
				t.Fatalf("got %d items, want %d", len(got), n)
			}
			for i, v := range got {
				if v != i*i {
					t.Fatalf("item %d = %d, want %d (order lost)", i, v, i*i)
				}
			}
			wantWorkers := workers
			if workers == 0 {
				wantWorkers = 3
			}
			if w := p.Stats()[1].Workers; w != wantWorkers {
				t.Errorf("Map workers = %d, want %d", w, wantWorkers)
			}
		})
	}
}

func TestMapUnorderedProcessesAll(t *testing.T) {
	const n = 1000
	p := pipeline.New(pipeline.Config{})
	src := pipeline.Source(p, "src", count(n))
	var inFlight, maxInFlight atomic.Int64
	dbl := pipeline.MapUnordered(p, "double", src, 4, func(_ context.Context, v int) (int, error) {
		cur := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
				break
			}
		}
		randomSleep(200 * time.Microsecond)
		inFlight.Add(-1)
		return 2 * v, nil
	})
	var got []int
	pipeline.Sink(p, "sink", dbl, collect(&got))
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(got) != n {
		t.Fatalf("got %d items, want %d", len(got), n)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("sorted item %d = %d, want %d", i, v, 2*i)
		}
	}
	if m := maxInFlight.Load(); m > 4 || m < 1 {
		t.Errorf("max concurrent calls = %d, want 1..4", m)
	}
	st := p.Stats()[1]
	if st.In != n || st.Out != n || st.Workers != 4 {
		t.Errorf("stats = %+v, want In=Out=%d Workers=4", st, n)
	}
}

func TestTransform(t *testing.T) {
	// Each n in 0..9 becomes n copies of n; odd numbers are dropped.
	p := pipeline.New(pipeline.Config{Buffer: 1})
	src := pipeline.Source(p, "src", count(10))
	rep := pipeline.Transform(p, "repeat", src, func(_ context.Context, v int, emit func(string) error) error {
		if v%2 == 1 {
			return nil
		}
		for range v {
			if err := emit(fmt.Sprint(v)); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	pipeline.Sink(p, "sink", rep, collect(&got))
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := "2 2 4 4 4 4 6 6 6 6 6 6 8 8 8 8 8 8 8 8"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("got %q, want %q", s, want)
	}
	st := p.Stats()[1]
	if st.In != 10 || st.Out != 20 {
		t.Errorf("transform In/Out = %d/%d, want 10/20", st.In, st.Out)
	}
}

func TestMerge(t *testing.T) {
	p := pipeline.New(pipeline.Config{})
	var ins []*pipeline.Stream[int]
	for s := range 3 {
		ins = append(ins, pipeline.Source(p, fmt.Sprint("src", s), func(_ context.Context, emit func(int) error) error {
			for k := range 100 {
				if err := emit(1000*s + k); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	m := pipeline.Merge(p, "merge", ins...)
	var got []int
	pipeline.Sink(p, "sink", m, collect(&got))
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want []int
	for s := range 3 {
		for k := range 100 {
			want = append(want, 1000*s+k)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("merged items differ: got %d items %v...", len(got), got[:min(len(got), 10)])
	}
	st := p.Stats()[3]
	if st.Name != "merge" || st.Workers != 3 || st.In != 300 || st.Out != 300 {
		t.Errorf("merge stats = %+v", st)
	}
}

func TestMergeNoInputs(t *testing.T) {
	p := pipeline.New(pipeline.Config{})
	m := pipeline.Merge[int](p, "merge")
	var got []int
	pipeline.Sink(p, "sink", m, collect(&got))
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("got %v, want nothing", got)
	}
}

var errBoom = errors.New("boom")

func TestFirstErrorCancelsAll(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := pipeline.New(pipeline.Config{Buffer: 2, Workers: 2})

	// Chain A: the failing one. It fails once sinkC is stuck: else the
	// error may cancel the run before sinkC was ever called.
	cStuck := make(chan struct{})
	var cOnce sync.Once
	a := pipeline.Source(p, "srcA", forever)
	a2 := pipeline.Map(p, "mapA", a, 4, func(_ context.Context, v int) (int, error) { return v, nil })
	pipeline.Sink(p, "sinkA", a2, func(_ context.Context, v int) error {
		if v == 10 {
			<-cStuck
			return errBoom
		}
		return nil
	})
	// Chain B: a sink blocked waiting for input.
	var sinkCErr, srcCErr atomic.Value
	b := pipeline.Source(p, "srcB", func(ctx context.Context, _ func(int) error) error {
		<-ctx.Done()
		return ctx.Err()
	})
	pipeline.Sink(p, "sinkB", b, func(context.Context, int) error {
		t.Error("sinkB received an item")
		return nil
	})
	// Chain C: a source blocked in emit behind a stuck sink.
	c := pipeline.Source(p, "srcC", func(ctx context.Context, emit func(int) error) error {
		err := forever(ctx, emit)
		srcCErr.Store(err)
		return err
	})
	pipeline.Sink(p, "sinkC", c, func(ctx context.Context, _ int) error {
		cOnce.Do(func() { close(cStuck) })
		<-ctx.Done()
		sinkCErr.Store(ctx.Err())
		return ctx.Err()
	})

	err := run(t, context.Background(), p)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Run = %v, want %v", err, errBoom)
	}
	if want := `stage "sinkA": boom`; err.Error() != want {
		t.Errorf("Run error = %q, want %q", err, want)
	}
	if e, _ := srcCErr.Load().(error); !errors.Is(e, context.Canceled) {
		t.Errorf("emit in blocked srcC returned %v, want context.Canceled", e)
	}
	if e, _ := sinkCErr.Load().(error); !errors.Is(e, context.Canceled) {
		t.Errorf("sinkC saw %v, want context.Canceled", e)
	}
	if got := p.Stats()[2].In; got != 11 {
		t.Errorf("sinkA received %d items, want 11 (none after the error)", got)
	}
}

func TestMapErrorCancels(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprint("ordered=", ordered), func(t *testing.T) {
			p := pipeline.New(pipeline.Config{})
			src := pipeline.Source(p, "src", forever)
			mapper := pipeline.MapUnordered[int, int]
			if ordered {
				mapper = pipeline.Map[int, int]
			}
			m := mapper(p, "fail", src, 3, func(_ context.Context, v int) (int, error) {
				if v == 100 {
					return 0, fmt.Errorf("item %d: %w", v, errBoom)
				}
				return v, nil
			})
			var got []int
			pipeline.Sink(p, "sink", m, collect(&got))
			err := run(t, context.Background(), p)
			if !errors.Is(err, errBoom) || !strings.HasPrefix(err.Error(), `stage "fail": item 100`) {
				t.Fatalf("Run = %v, want stage \"fail\" error wrapping boom", err)
			}
			if ordered {
				// Ordered output stops before the failed item: no gaps.
				for i, v := range got {
					if v != i {
						t.Fatalf("item %d = %d: gap in ordered output", i, v)
					}
				}
				if len(got) > 100 {
					t.Errorf("sink got %d items, want at most 100", len(got))
				}
			}
		})
	}
}

func TestContextCancellation(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := pipeline.New(pipeline.Config{})
		src := pipeline.Source(p, "src", forever)
		m := pipeline.Map(p, "map", src, 2, func(_ context.Context, v int) (int, error) { return v, nil })
		pipeline.Sink(p, "sink", m, func(_ context.Context, v int) error {
			if v == 20 {
				cancel()
			}
			return nil
		})
		err := run(t, ctx, p)
		if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "pipeline: ") {
			t.Fatalf("Run = %v, want pipeline: context canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		p := pipeline.New(pipeline.Config{})
		src := pipeline.Source(p, "src", forever)
		pipeline.Sink(p, "sink", src, func(context.Context, int) error { return nil })
		if err := run(t, ctx, p); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want deadline exceeded", err)
		}
	})
	t.Run("cause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("user gave up")
		cancel(cause)
		p := pipeline.New(pipeline.Config{})
		src := pipeline.Source(p, "src", forever)
		pipeline.Sink(p, "sink", src, func(context.Context, int) error { return nil })
		err := run(t, ctx, p)
		if !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want it to wrap context.Canceled and the cause", err)
		}
	})
}

func TestPanicBecomesError(t *testing.T) {
	identity := func(_ context.Context, v int) (int, error) { return v, nil }
	panicky := func(_ context.Context, v int) (int, error) {
		if v == 3 {
			panic(errBoom)
		}
		return v, nil
	}
	ignore := func(context.Context, int) error { return nil }
	cases := []struct {
		stage string
		build func(p *pipeline.Pipeline)
	}{
		{"src", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", func(context.Context, func(int) error) error { panic(errBoom) })
			pipeline.Sink(p, "sink", s, ignore)
		}},
		{"map", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", forever)
			pipeline.Sink(p, "sink", pipeline.Map(p, "map", s, 2, panicky), ignore)
		}},
		{"unordered", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", forever)
			pipeline.Sink(p, "sink", pipeline.MapUnordered(p, "unordered", s, 2, panicky), ignore)
		}},
		{"transform", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", forever)
			tr := pipeline.Transform(p, "transform", s, func(ctx context.Context, v int, emit func(int) error) error {
				_, err := panicky(ctx, v)
				return err
			})
			pipeline.Sink(p, "sink", tr, ignore)
		}},
		{"sink", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", forever)
			m := pipeline.Map(p, "map", s, 2, identity)
			pipeline.Sink(p, "sink", m, func(ctx context.Context, v int) error {
				_, err := panicky(ctx, v)
				return err
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.stage, func(t *testing.T) {
			p := pipeline.New(pipeline.Config{})
			c.build(p)
			err := run(t, context.Background(), p)
			var rec *panics.ErrRecovered
			if !errors.As(err, &rec) {
				t.Fatalf("Run = %v, want a *panics.ErrRecovered", err)
			}
			if !errors.Is(err, errBoom) {
				t.Errorf("error does not unwrap to the panic value: %v", err)
			}
			if want := fmt.Sprintf("stage %q: panic: boom", c.stage); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestBoundedSlowSink(t *testing.T) {
	for _, cfg := range []int{0, 1, 3} {
		t.Run(fmt.Sprint("buffer=", cfg), func(t *testing.T) {
			const n = 40
			buffer := int64(cfg)
			if cfg == 0 {
				buffer = pipeline.DefaultBuffer
			}
			p := pipeline.New(pipeline.Config{Buffer: cfg})
			var emitted, done, maxAhead atomic.Int64
			src := pipeline.Source(p, "src", func(_ context.Context, emit func(int) error) error {
				for i := range n {
					if err := emit(i); err != nil {
						return err
					}
					ahead := emitted.Add(1) - done.Load()
					if ahead > maxAhead.Load() {
						maxAhead.Store(ahead)
					}
				}
				return nil
			})
			pipeline.Sink(p, "slow", src, func(context.Context, int) error {
				time.Sleep(time.Millisecond)
				done.Add(1)
				return nil
			})
			if err := run(t, context.Background(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// The channel holds Buffer items and the sink's one worker one more.
			if m := maxAhead.Load(); m > buffer+1 || m < buffer {
				t.Errorf("source was at most %d items ahead of the sink, want %d..%d", m, buffer, buffer+1)
			}
			if done.Load() != n {
				t.Errorf("sink handled %d items, want %d", done.Load(), n)
			}
		})
	}
}

func TestBoundedSlowMap(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprint("ordered=", ordered), func(t *testing.T) {
			const buffer, workers, n = 2, 3, 60
			p := pipeline.New(pipeline.Config{Buffer: buffer})
			var emitted, finished, maxAhead atomic.Int64
			src := pipeline.Source(p, "src", func(_ context.Context, emit func(int) error) error {
				for i := range n {
					if err := emit(i); err != nil {
						return err
					}
					ahead := emitted.Add(1) - finished.Load()
					if ahead > maxAhead.Load() {
						maxAhead.Store(ahead)
					}
				}
				return nil
			})
			mapper := pipeline.MapUnordered[int, int]
			if ordered {
				mapper = pipeline.Map[int, int]
			}
			m := mapper(p, "slow", src, workers, func(_ context.Context, v int) (int, error) {
				time.Sleep(time.Millisecond)
				finished.Add(1)
				return v, nil
			})
			pipeline.Sink(p, "sink", m, func(context.Context, int) error { return nil })
			if err := run(t, context.Background(), p); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if m := maxAhead.Load(); m > buffer+workers || m < buffer {
				t.Errorf("source was at most %d items ahead of the slow stage, want %d..%d", m, buffer, buffer+workers)
			}
		})
	}
}

// blob is an item that reports its size.
type blob []byte

func (b blob) Size() int64 { return int64(len(b)) }

func TestStats(t *testing.T) {
	const n, size = 50, 100
	p := pipeline.New(pipeline.Config{Buffer: 2})
	src := pipeline.Source(p, "read", func(_ context.Context, emit func(blob) error) error {
		for range n {
			if err := emit(make(blob, size)); err != nil {
				return err
			}
		}
		return nil
	})
	m := pipeline.Map(p, "hash", src, 2, func(_ context.Context, b blob) (blob, error) { return b, nil })
	var mid []pipeline.StageStats
	pipeline.Sink(p, "write", m, func(_ context.Context, b blob) error {
		if mid == nil {
			mid = p.Stats() // a snapshot during Run
		}
		time.Sleep(2 * time.Millisecond)
		return nil
	})
	if s := p.Stats(); len(s) != 3 || s[0].Wall != 0 || s[0].Out != 0 {
		t.Errorf("Stats before Run = %+v, want 3 empty stages", s)
	}
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(mid) != 3 || mid[2].Wall <= 0 {
		t.Errorf("Stats during Run = %+v, want running stages", mid)
	}
	stats := p.Stats()
	names := []string{stats[0].Name, stats[1].Name, stats[2].Name}
	if !slices.Equal(names, []string{"read", "hash", "write"}) {
		t.Fatalf("stage names = %v", names)
	}
	read, hash, write := stats[0], stats[1], stats[2]
	if read.In != 0 || read.Out != n || read.Workers != 1 {
		t.Errorf("read = %+v", read)
	}
	if hash.In != n || hash.Out != n || hash.Bytes != n*size || hash.Workers != 2 {
		t.Errorf("hash = %+v", hash)
	}
	if write.In != n || write.Out != 0 || write.Bytes != n*size {
		t.Errorf("write = %+v", write)
	}
	if write.Busy < n*2*time.Millisecond || write.Busy > write.Wall {
		t.Errorf("write Busy = %v, want >= %v and <= Wall %v", write.Busy, n*2*time.Millisecond, write.Wall)
	}
	if read.WaitOut <= 0 || hash.WaitOut <= 0 {
		t.Errorf("upstream stages never blocked on output: read %v, hash %v", read.WaitOut, hash.WaitOut)
	}
	if u := write.Utilization(); u < 0.5 || u > 1.01 {
		t.Errorf("write utilisation = %.2f, want about 1", u)
	}
	if i := pipeline.Bottleneck(stats); i != 2 {
		t.Errorf("Bottleneck = %d, want 2 (write); stats %+v", i, stats)
	}
	for _, s := range stats[:2] {
		if s.Utilization() >= write.Utilization() {
			t.Errorf("%s utilisation %.2f >= slow write's %.2f", s.Name, s.Utilization(), write.Utilization())
		}
	}

	var buf bytes.Buffer
	if err := pipeline.FormatStats(&buf, stats); err != nil {
		t.Fatalf("FormatStats: %v", err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("FormatStats wrote %d lines, want 4:\n%s", len(lines), buf.String())
	}
	if !strings.HasPrefix(lines[0], "STAGE") || !strings.HasSuffix(lines[0], "BOTTLENECK") {
		t.Errorf("bad header %q", lines[0])
	}
	for i, line := range lines[1:] {
		if !strings.HasPrefix(line, names[i]) {
			t.Errorf("line %q does not start with %q", line, names[i])
		}
		if marked := strings.HasSuffix(line, "*"); marked != (i == 2) {
			t.Errorf("line %q: bottleneck marked = %v", line, marked)
		}
	}
	if !strings.Contains(lines[2], "4.9 KiB") || !strings.Contains(lines[3], "4.9 KiB") {
		t.Errorf("bytes not shown in IEC units:\n%s", buf.String())
	}
	// Columns are aligned: every line as long as the header up to UTIL.
	col := len([]rune(lines[0][:strings.Index(lines[0], "UTIL")])) + len("UTIL")
	for _, line := range lines[1:] {
		if r := []rune(line); len(r) < col || r[col-1] != '%' {
			t.Errorf("misaligned line %q (UTIL ends at %d)\n%s", line, col, buf.String())
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errBoom }

func TestFormatStatsError(t *testing.T) {
	err := pipeline.FormatStats(failWriter{}, []pipeline.StageStats{{Name: "x"}})
	if !errors.Is(err, errBoom) {
		t.Errorf("FormatStats = %v, want wrapped write error", err)
	}
}

func TestMisuse(t *testing.T) {
	ignore := func(context.Context, int) error { return nil }
	cases := []struct {
		name  string
		build func(p *pipeline.Pipeline)
		want  string
	}{
		{"consumed twice", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", count(3))
			pipeline.Sink(p, "a", s, ignore)
			pipeline.Sink(p, "b", s, ignore)
		}, `stage "b": stream from stage "src" is already consumed by stage "a"`},
		{"not consumed", func(p *pipeline.Pipeline) {
			pipeline.Source(p, "src", count(3))
		}, `stage "src": output stream has no consumer`},
		{"nil stream", func(p *pipeline.Pipeline) {
			pipeline.Sink(p, "sink", nil, ignore)
		}, `stage "sink": input 0 is nil or belongs to another pipeline`},
		{"foreign stream", func(p *pipeline.Pipeline) {
			other := pipeline.New(pipeline.Config{})
			pipeline.Sink(p, "sink", pipeline.Source(other, "src", count(3)), ignore)
		}, `stage "sink": input 0 is nil or belongs to another pipeline`},
		{"nil function", func(p *pipeline.Pipeline) {
			s := pipeline.Source(p, "src", count(3))
			pipeline.Sink(p, "sink", pipeline.Map[int, int](p, "map", s, 0, nil), ignore)
		}, `stage "map": nil function`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := pipeline.New(pipeline.Config{})
			c.build(p)
			err := run(t, context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, c.want)
			}
		})
	}

	t.Run("run twice", func(t *testing.T) {
		p := pipeline.New(pipeline.Config{})
		var got []int
		pipeline.Sink(p, "sink", pipeline.Source(p, "src", count(3)), collect(&got))
		if err := run(t, context.Background(), p); err != nil {
			t.Fatalf("first Run: %v", err)
		}
		if err := run(t, context.Background(), p); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Fatalf("second Run = %v, want an error", err)
		}
		if len(got) != 3 {
			t.Errorf("sink got %v", got)
		}
	})
	t.Run("nil pipeline and context", func(t *testing.T) {
		var p *pipeline.Pipeline
		s := pipeline.Source(p, "src", count(3))
		pipeline.Sink(p, "sink", s, ignore)
		if err := p.Run(context.Background()); err == nil {
			t.Error("Run on nil pipeline succeeded")
		}
		if p.Stats() != nil {
			t.Error("Stats on nil pipeline not nil")
		}
		var ctx context.Context
		if err := pipeline.New(pipeline.Config{}).Run(ctx); err == nil {
			t.Error("Run with nil context succeeded")
		}
	})
	t.Run("emit after return", func(t *testing.T) {
		p := pipeline.New(pipeline.Config{})
		var saved func(int) error
		s := pipeline.Source(p, "src", func(_ context.Context, emit func(int) error) error {
			saved = emit
			return nil
		})
		pipeline.Sink(p, "sink", s, ignore)
		if err := run(t, context.Background(), p); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := saved(1); !errors.Is(err, pipeline.ErrEmitAfterReturn) {
			t.Errorf("late emit = %v, want ErrEmitAfterReturn", err)
		}
	})
	t.Run("stage added after Run", func(t *testing.T) {
		p := pipeline.New(pipeline.Config{})
		if err := run(t, context.Background(), p); err != nil {
			t.Fatalf("Run of empty pipeline: %v", err)
		}
		s := pipeline.Source(p, "late", count(3))
		pipeline.Sink(p, "late sink", s, ignore)
		if n := len(p.Stats()); n != 0 {
			t.Errorf("late stages were added: %d stages", n)
		}
	})
}

func TestDefaultWorkers(t *testing.T) {
	n := pipeline.DefaultWorkers()
	if n < 1 || n > runtime.GOMAXPROCS(0) || n > runtime.NumCPU() {
		t.Errorf("DefaultWorkers() = %d, want 1..min(GOMAXPROCS, NumCPU)", n)
	}
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	if n := pipeline.DefaultWorkers(); n != 1 {
		t.Errorf("DefaultWorkers() with GOMAXPROCS=1 = %d, want 1", n)
	}
}

func TestManyStagesConcurrentBuild(t *testing.T) {
	// Building from several goroutines is safe; the graph then runs.
	p := pipeline.New(pipeline.Config{})
	var wg sync.WaitGroup
	var total atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			s := pipeline.Source(p, fmt.Sprint("src", i), count(100))
			pipeline.Sink(p, fmt.Sprint("sink", i), s, func(_ context.Context, v int) error {
				total.Add(int64(v))
				return nil
			})
		})
	}
	wg.Wait()
	if err := run(t, context.Background(), p); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := total.Load(); got != 8*4950 {
		t.Errorf("total = %d, want %d", got, 8*4950)
	}
}

func ExampleNew() {
	p := pipeline.New(pipeline.Config{Buffer: 2, Workers: 4})

	words := pipeline.Source(p, "words", func(ctx context.Context, emit func(string) error) error {
		for _, w := range strings.Fields("the quick brown fox jumps") {
			if err := emit(w); err != nil {
				return err
			}
		}
		return nil
	})
	// Four workers at once; Map keeps the input order.
	upper := pipeline.Map(p, "upper", words, 0, func(ctx context.Context, w string) (string, error) {
		return strings.ToUpper(w), nil
	})
	pipeline.Sink(p, "print", upper, func(ctx context.Context, w string) error {
		fmt.Println(w)
		return nil
	})

	if err := p.Run(context.Background()); err != nil {
		fmt.Println("error:", err)
	}
	for _, s := range p.Stats() {
		fmt.Printf("%s: %d in, %d out\n", s.Name, s.In, s.Out)
	}
	// Output:
	// THE
	// QUICK
	// BROWN
	// FOX
	// JUMPS
	// words: 0 in, 5 out
	// upper: 5 in, 5 out
	// print: 5 in, 0 out
}

// BenchmarkMap measures the per-item overhead of a Map stage: each op is
// one item through Source → Map (trivial fn) → Sink.
func BenchmarkMap(b *testing.B) {
	for _, ordered := range []bool{true, false} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("ordered=%v/workers=%d", ordered, workers), func(b *testing.B) {
				mapper := pipeline.MapUnordered[int, int]
				if ordered {
					mapper = pipeline.Map[int, int]
				}
				p := pipeline.New(pipeline.Config{Buffer: 64})
				src := pipeline.Source(p, "src", count(b.N))
				m := mapper(p, "map", src, workers, func(_ context.Context, v int) (int, error) { return v + 1, nil })
				var sum int
				pipeline.Sink(p, "sink", m, func(_ context.Context, v int) error {
					sum += v
					return nil
				})
				b.ReportAllocs()
				b.ResetTimer()
				if err := p.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkTransform is the baseline: one item through
// Source → Transform → Sink, no worker pool.
func BenchmarkTransform(b *testing.B) {
	p := pipeline.New(pipeline.Config{Buffer: 64})
	src := pipeline.Source(p, "src", count(b.N))
	tr := pipeline.Transform(p, "inc", src, func(_ context.Context, v int, emit func(int) error) error { return emit(v + 1) })
	pipeline.Sink(p, "sink", tr, func(context.Context, int) error { return nil })
	b.ReportAllocs()
	b.ResetTimer()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// TestWait checks that time a stage spends in Wait counts as waiting for
// input, not as busy.
func TestWait(t *testing.T) {
	p := pipeline.New(pipeline.Config{})
	src := pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error {
		pipeline.Wait(ctx, func() { time.Sleep(50 * time.Millisecond) })
		return emit(1)
	})
	pipeline.Sink(p, "sink", src, func(context.Context, int) error { return nil })
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()[0]
	if st.WaitIn < 50*time.Millisecond || st.Busy >= 25*time.Millisecond {
		t.Errorf("src: busy %v, waiting for input %v; want the 50 ms sleep as waiting", st.Busy, st.WaitIn)
	}
	pipeline.Wait(context.Background(), func() {}) // outside a stage: just calls
}

// TestFirstErrorBeforeClose checks that a stage's error is recorded, and
// the run cancelled, before the stage's output stream closes: a consumer
// that sees the stream end must not be able to finish, or fail with an
// error of its own, as if its input were complete.
func TestFirstErrorBeforeClose(t *testing.T) {
	boom := errors.New("boom")
	for range 50 {
		p := pipeline.New(pipeline.Config{})
		src := pipeline.Source(p, "src", func(ctx context.Context, emit func(int) error) error { return emit(1) })
		mid := pipeline.Transform(p, "fails", src, func(ctx context.Context, v int, emit func(int) error) error { return boom })
		var uncancelled atomic.Bool
		end := pipeline.Fold(p, "incomplete", mid, func(ctx context.Context, v int, emit func(int) error) error { return nil },
			func(ctx context.Context, emit func(int) error) error {
				if ctx.Err() == nil {
					uncancelled.Store(true)
				}
				return errors.New("input ended early")
			})
		pipeline.Sink(p, "sink", end, func(ctx context.Context, v int) error { return nil })
		err := p.Run(context.Background())
		if uncancelled.Load() {
			t.Fatal("the consumer saw its input end before the run was cancelled")
		}
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the failing stage's error", err)
		}
	}
}
