package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/cpus"
)

// DefaultBuffer is the capacity of the streams of a Pipeline whose
// Config.Buffer is zero.
const DefaultBuffer = 4

// Config configures a Pipeline. Zero values mean defaults.
type Config struct {
	// Buffer is the capacity of each stream (channel) between stages.
	// Zero or less means DefaultBuffer.
	Buffer int
	// Workers is the worker count of parallel stages that are given no
	// count of their own. Zero or less means DefaultWorkers().
	Workers int
}

// DefaultWorkers returns the number of physical CPU cores reported by
// github.com/klauspost/cpuid/v2, or runtime.NumCPU() when that is unknown,
// capped by runtime.GOMAXPROCS(0). It is at least 1.
func DefaultWorkers() int { return cpus.Cores() }

// Pipeline is a graph of stages joined by bounded streams. Build it with
// Source, Map, MapUnordered, Transform, Merge and Sink, then call Run once.
// The building functions may be called from several goroutines, but every
// stage must be added before Run is called: stages added later never run.
type Pipeline struct {
	buffer  int
	workers int

	mu      sync.Mutex
	stages  []*stage
	outputs []port  // every stream produced by a stage, to find unconsumed ones
	errs    []error // misuse found while building
	started bool
	epoch   time.Time // when Run started
}

// New returns an empty Pipeline configured by cfg.
func New(cfg Config) *Pipeline {
	p := &Pipeline{buffer: cfg.Buffer, workers: cfg.Workers}
	if p.buffer <= 0 {
		p.buffer = DefaultBuffer
	}
	if p.workers <= 0 {
		p.workers = DefaultWorkers()
	}
	return p
}

// Run starts every stage, each in its own goroutine, and waits until all
// have ended. The first error — returned by a stage function, a panic in one,
// or the cancellation of ctx — cancels the context of every stage and is
// returned: stage errors as a *StageError (`stage "name": err`), the cancellation of
// ctx as `pipeline: err`. Run returns nil when every stage ends without error.
//
// Run returns an error without running anything when the pipeline is
// misused: Run called a second time, a stream consumed by two stages or by
// none, a stream of another pipeline, or a nil stage function.
// No goroutine started by Run outlives it.
func (p *Pipeline) Run(ctx context.Context) error {
	if p == nil {
		return errors.New("pipeline: Run called on a nil *Pipeline")
	}
	if ctx == nil {
		return errors.New("pipeline: Run called with a nil context")
	}
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("pipeline: Run called more than once")
	}
	p.started = true
	errs := append([]error(nil), p.errs...)
	for _, o := range p.outputs {
		if !o.isConsumed() {
			errs = append(errs, fmt.Errorf("stage %q: output stream has no consumer", o.producer()))
		}
	}
	stages := p.stages
	epoch := time.Now()
	p.epoch = epoch
	p.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("pipeline: invalid graph: %w", errors.Join(errs...))
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &runState{parent: ctx, cancel: cancel}
	var wg sync.WaitGroup
	for _, st := range stages {
		st.fail = func(err error) { r.fail(st.name, err) }
	}
	for _, st := range stages {
		wg.Go(func() {
			st.start.Store(int64(time.Since(epoch)) + 1)
			err := st.run(context.WithValue(runCtx, stageKey{}, st), r)
			st.end.Store(int64(time.Since(epoch)) + 1)
			r.fail(st.name, err)
		})
	}
	wg.Wait()
	return r.error()
}

// StageError is the error Run returns when a stage fails: the stage's name
// and its error. Callers that show errors to people may unwrap it, as the
// name of a stage means little to them.
type StageError struct {
	Stage string
	Err   error
}

// Error returns `stage "name": err`.
func (e *StageError) Error() string { return fmt.Sprintf("stage %q: %v", e.Stage, e.Err) }

// Unwrap returns the stage's error.
func (e *StageError) Unwrap() error { return e.Err }

// runState records the first error of a run and cancels it.
type runState struct {
	parent context.Context
	cancel context.CancelCauseFunc

	mu  sync.Mutex
	err error
}

// fail records err, raised by the stage called name, unless an error was
// recorded before, and cancels the run. A nil err is ignored.
func (r *runState) fail(name string, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	if perr := r.parent.Err(); perr != nil &&
		(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The stage only reports that the caller cancelled the run.
		if cause := context.Cause(r.parent); cause != nil && cause != perr {
			r.err = fmt.Errorf("pipeline: %w: %w", perr, cause)
		} else {
			r.err = fmt.Errorf("pipeline: %w", perr)
		}
	} else {
		r.err = &StageError{Stage: name, Err: err}
	}
	r.cancel(r.err)
}

func (r *runState) error() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// register adds a stage with the given worker count to p and marks its
// inputs consumed. It returns nil
// when the stage must not be added (nil pipeline, or Run already called).
// Misuse is recorded in p.errs and reported by Run.
func (p *Pipeline) register(name string, workers int, nilFn bool, out port, ins ...port) *stage {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return nil
	}
	st := &stage{name: name, workers: workers}
	if nilFn {
		p.errs = append(p.errs, fmt.Errorf("stage %q: nil function", name))
	}
	for i, in := range ins {
		if in.owner() != p {
			p.errs = append(p.errs, fmt.Errorf("stage %q: input %d is nil or belongs to another pipeline", name, i))
			continue
		}
		if prev, ok := in.consume(name); !ok {
			p.errs = append(p.errs, fmt.Errorf("stage %q: stream from stage %q is already consumed by stage %q",
				name, in.producer(), prev))
		}
	}
	if out != nil {
		p.outputs = append(p.outputs, out)
	}
	p.stages = append(p.stages, st)
	return st
}

// stageKey is the context key under which a stage function's context
// holds its stage, for Wait.
type stageKey struct{}

// Wait calls wait, which blocks until a stage function can go on — for a
// signal that does not come through the stage's input stream — and counts
// the time as the stage waiting for input rather than busy. Called with a
// context that no stage function received, it just calls wait. (In a stage
// with several workers the busy time of the others may be counted short
// while one waits.)
func Wait(ctx context.Context, wait func()) {
	st, _ := ctx.Value(stageKey{}).(*stage)
	t0 := time.Now()
	wait()
	if st != nil {
		d := int64(time.Since(t0))
		st.waited.Add(d)
		st.waitIn.Add(d)
	}
}

// stage is the untyped part of a stage: its name, its run function and its
// counters.
type stage struct {
	name    string
	workers int
	run     func(ctx context.Context, r *runState) error
	// fail records an error of the stage in the run as soon as its
	// function returns it: before the stage's outputs close, so that a
	// consumer that finishes early on the closed stream cannot report an
	// error of its own first.
	fail func(error)

	in, out, bytes        atomic.Int64
	busy, waitIn, waitOut atomic.Int64 // nanoseconds
	waited                atomic.Int64 // nanoseconds in Wait, also in waitIn
	start, end            atomic.Int64 // nanoseconds since epoch, plus 1; 0 = not yet
	closed                atomic.Bool  // output stream closed
}

// call runs f, turning a panic into an error, and adds its duration to the
// busy time. When excludeEmit is set (f emits and is the only emitter of the
// stage), the time f spent blocked in emit is not counted as busy.
func (st *stage) call(f func() error, excludeEmit bool) error {
	var w0 int64
	if excludeEmit {
		w0 = st.waitOut.Load()
	}
	waited := st.waited.Load()
	t0 := time.Now()
	err := protect(f)
	if err != nil && st.fail != nil {
		st.fail(err)
	}
	d := int64(time.Since(t0)) - (st.waited.Load() - waited)
	if excludeEmit {
		d -= st.waitOut.Load() - w0
	}
	st.busy.Add(max(d, 0))
	return err
}
