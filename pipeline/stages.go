package pipeline

import (
	"context"
	"sync"

	"github.com/sourcegraph/conc/pool"
	"github.com/sourcegraph/conc/stream"
)

// Source adds a stage that produces a stream by calling fn once. fn sends
// items with emit, which blocks while the stream is full and returns
// ctx.Err() once the run is cancelled; fn should then return that error. emit
// must not be called after fn returns. The stream is closed when fn returns.
func Source[T any](p *Pipeline, name string, fn func(ctx context.Context, emit func(T) error) error) *Stream[T] {
	out := newStream[T](p, name)
	st := p.register(name, 1, fn == nil, out)
	if st == nil {
		return out
	}
	st.run = func(ctx context.Context, _ *runState) error {
		defer out.close(st)
		emit := emitter(ctx, st, out)
		return st.call(func() error { return fn(ctx, emit) }, true)
	}
	return out
}

// Map adds a stage that calls fn on every item of in, on workers goroutines
// at once, and emits the results in the order of the input items. workers <= 0
// means the pipeline's Config.Workers. The stage holds at most workers items
// (received and not yet emitted) at a time.
func Map[T, U any](p *Pipeline, name string, in *Stream[T], workers int, fn func(ctx context.Context, v T) (U, error)) *Stream[U] {
	return mapStage(p, name, in, workers, fn, true)
}

// MapUnordered is like Map, but emits each result as soon as it is ready,
// so the output is in completion order. It suits work of uneven duration
// whose consumer does not care about order.
func MapUnordered[T, U any](p *Pipeline, name string, in *Stream[T], workers int, fn func(ctx context.Context, v T) (U, error)) *Stream[U] {
	return mapStage(p, name, in, workers, fn, false)
}

func mapStage[T, U any](p *Pipeline, name string, in *Stream[T], workers int, fn func(ctx context.Context, v T) (U, error), ordered bool) *Stream[U] {
	out := newStream[U](p, name)
	if workers <= 0 && p != nil {
		workers = p.workers
	}
	st := p.register(name, workers, fn == nil, out, in)
	if st == nil {
		return out
	}
	w := workers
	st.run = func(ctx context.Context, r *runState) error {
		defer out.close(st)
		emit := emitter(ctx, st, out)

		// A task calls fn and returns the function that emits its result
		// and frees its slot: conc's stream runs these in submission order,
		// the pool right after the task.
		var submit func(task func() func())
		var wait func()
		if ordered {
			s := stream.New().WithMaxGoroutines(w)
			submit = func(task func() func()) { s.Go(func() stream.Callback { return task() }) }
			wait = s.Wait
		} else {
			pl := pool.New().WithMaxGoroutines(w)
			submit = func(task func() func()) { pl.Go(func() { task()() }) }
			wait = pl.Wait
		}

		// slots bounds the items held by the stage to w, so that neither
		// the dispatcher nor the ordered stream's queue holds extra ones.
		slots := make(chan struct{}, w)
		done := ctx.Done()
		var err error
		for {
			select {
			case slots <- struct{}{}:
			case <-done:
				err = ctx.Err()
			}
			if err != nil {
				break
			}
			v, ok, rerr := recv(ctx, st, in, int64(w-len(slots)+1))
			if rerr != nil || !ok {
				<-slots
				err = rerr
				break
			}
			submit(func() func() {
				var u U
				ferr := st.call(func() error {
					var e error
					u, e = fn(ctx, v)
					return e
				}, false)
				// Report an error at once rather than in output order.
				r.fail(st.name, ferr)
				return func() {
					defer func() { <-slots }()
					if ferr == nil {
						r.fail(st.name, emit(u))
					}
				}
			})
		}
		wait()
		return err
	}
	return out
}

// Transform adds a stage that calls fn on every item of in, one at a time,
// and lets fn emit any number of items for it. Use it for stateful steps:
// batching, splitting, filtering. emit blocks while the output stream is full
// and returns ctx.Err() once the run is cancelled.
func Transform[T, U any](p *Pipeline, name string, in *Stream[T], fn func(ctx context.Context, v T, emit func(U) error) error) *Stream[U] {
	return transform(p, name, in, fn, nil, fn == nil)
}

// Merge adds a stage that forwards the items of all ins to one stream, in
// the order they arrive. It has one worker per input.
func Merge[T any](p *Pipeline, name string, ins ...*Stream[T]) *Stream[T] {
	out := newStream[T](p, name)
	ports := make([]port, len(ins))
	for i, in := range ins {
		ports[i] = in
	}
	st := p.register(name, len(ins), false, out, ports...)
	if st == nil {
		return out
	}
	st.run = func(ctx context.Context, r *runState) error {
		defer out.close(st)
		emit := emitter(ctx, st, out)
		var wg sync.WaitGroup
		for _, in := range ins {
			wg.Go(func() {
				for {
					v, ok, err := recv(ctx, st, in, 1)
					if err == nil && ok {
						err = emit(v)
					}
					if err != nil || !ok {
						r.fail(st.name, err)
						return
					}
				}
			})
		}
		wg.Wait()
		return nil
	}
	return out
}

// Sink adds a stage that calls fn on every item of in, one at a time.
func Sink[T any](p *Pipeline, name string, in *Stream[T], fn func(ctx context.Context, v T) error) {
	st := p.register(name, 1, fn == nil, nil, in)
	if st == nil {
		return
	}
	st.run = func(ctx context.Context, _ *runState) error {
		for {
			v, ok, err := recv(ctx, st, in, 1)
			if err != nil || !ok {
				return err
			}
			if err := st.call(func() error { return fn(ctx, v) }, false); err != nil {
				return err
			}
		}
	}
}

// Tee adds a stage that sends every item of in to both returned streams, in
// order: two consumers see the same items, each at its own pace within the
// streams' buffers. A slow consumer holds the other back once its stream is
// full. Items are shared, not copied.
func Tee[T any](p *Pipeline, name string, in *Stream[T]) (*Stream[T], *Stream[T]) {
	a := newStream[T](p, name)
	b := newStream[T](p, name)
	st := p.register(name, 1, false, a, in)
	if st == nil {
		return a, b
	}
	p.mu.Lock()
	p.outputs = append(p.outputs, b)
	p.mu.Unlock()
	st.run = func(ctx context.Context, _ *runState) error {
		defer b.close(st)
		defer a.close(st)
		emitA, emitB := emitter(ctx, st, a), emitter(ctx, st, b)
		for {
			v, ok, err := recv(ctx, st, in, 1)
			if err != nil || !ok {
				return err
			}
			if err := emitA(v); err != nil {
				return err
			}
			if err := emitB(v); err != nil {
				return err
			}
		}
	}
	return a, b
}

// Fold adds a stage that calls fn on every item of in, one at a time, and,
// once in is exhausted, calls done; both may emit any number of items.
// done is not called when the run was cancelled (by a failing stage or by
// the caller): in was then cut short, not exhausted. It is Transform with
// a last word: a reduction (fn accumulates, done emits the result), or a
// stage that passes items on and reports when everything before it has
// finished. It has one worker.
func Fold[T, U any](p *Pipeline, name string, in *Stream[T], fn func(ctx context.Context, v T, emit func(U) error) error, done func(ctx context.Context, emit func(U) error) error) *Stream[U] {
	return transform(p, name, in, fn, done, fn == nil || done == nil)
}

// transform is Transform, and Fold when done is not nil.
func transform[T, U any](p *Pipeline, name string, in *Stream[T], fn func(ctx context.Context, v T, emit func(U) error) error, done func(ctx context.Context, emit func(U) error) error, nilFn bool) *Stream[U] {
	out := newStream[U](p, name)
	st := p.register(name, 1, nilFn, out, in)
	if st == nil {
		return out
	}
	st.run = func(ctx context.Context, _ *runState) error {
		defer out.close(st)
		emit := emitter(ctx, st, out)
		for {
			v, ok, err := recv(ctx, st, in, 1)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := st.call(func() error { return fn(ctx, v, emit) }, true); err != nil {
				return err
			}
		}
		if done == nil {
			return nil
		}
		// A stage before this one failed (or the run was cancelled):
		// the run is cancelled before its output closes, and recv may
		// still report the close rather than the cancellation. The input
		// is cut short, not exhausted: done must not run on it.
		if err := ctx.Err(); err != nil {
			return err
		}
		return st.call(func() error { return done(ctx, emit) }, true)
	}
	return out
}
