package pipeline

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/sourcegraph/conc/panics"
)

// ErrEmitAfterReturn is returned by an emit function called after the stage
// function it was given to has returned.
var ErrEmitAfterReturn = errors.New("pipeline: emit called after the stage function returned")

// Sizer is implemented by items that know their size in bytes. Stages add
// the sizes of the items they receive to StageStats.Bytes.
type Sizer interface {
	Size() int64
}

// Stream is a typed bounded channel from one stage to the next. A stream
// has exactly one consumer stage. Streams are created by the stage-building
// functions of a Pipeline and are only used as their arguments.
type Stream[T any] struct {
	p        *Pipeline
	from     string // name of the producing stage
	ch       chan T
	size     sizeMode
	consumer string // guarded by p.mu; "" until consumed
	used     bool   // guarded by p.mu
}

func newStream[T any](p *Pipeline, from string) *Stream[T] {
	buf := DefaultBuffer
	if p != nil {
		buf = p.buffer
	}
	return &Stream[T]{p: p, from: from, ch: make(chan T, buf), size: sizeModeOf[T]()}
}

// port is the untyped view of a stream used while building the graph.
type port interface {
	owner() *Pipeline
	producer() string
	consume(by string) (prev string, ok bool) // caller holds p.mu
	isConsumed() bool                         // caller holds p.mu
}

func (s *Stream[T]) owner() *Pipeline {
	if s == nil {
		return nil
	}
	return s.p
}

func (s *Stream[T]) producer() string { return s.from }

func (s *Stream[T]) consume(by string) (string, bool) {
	if s.used {
		return s.consumer, false
	}
	s.used, s.consumer = true, by
	return "", true
}

func (s *Stream[T]) isConsumed() bool { return s.used }

// close closes the stream; st is its producing stage.
func (s *Stream[T]) close(st *stage) {
	st.closed.Store(true)
	close(s.ch)
}

// recv receives the next item of in for stage st. It returns ok == false at
// the end of the stream, and ctx.Err() once ctx is done. idle is the number of
// the stage's workers idle while it waits, by which the wait is multiplied in
// the WaitIn statistic.
func recv[T any](ctx context.Context, st *stage, in *Stream[T], idle int64) (v T, ok bool, err error) {
	done := ctx.Done()
	select {
	case <-done:
		return v, false, ctx.Err()
	default:
	}
	select {
	case v, ok = <-in.ch:
	default:
		t0 := time.Now()
		select {
		case v, ok = <-in.ch:
		case <-done:
			err = ctx.Err()
		}
		st.waitIn.Add(int64(time.Since(t0)) * idle)
		if err != nil {
			return v, false, err
		}
	}
	if ok {
		st.in.Add(1)
		if in.size != sizeNever {
			st.bytes.Add(sizeOf(in.size, v))
		}
	}
	return v, ok, nil
}

// emitter returns the emit function of stage st, which sends to out. It
// blocks while out is full and returns ctx.Err() once ctx is done.
func emitter[T any](ctx context.Context, st *stage, out *Stream[T]) func(T) error {
	done := ctx.Done()
	return func(v T) error {
		if st.closed.Load() {
			return ErrEmitAfterReturn
		}
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		select {
		case out.ch <- v:
		default:
			t0 := time.Now()
			var err error
			select {
			case out.ch <- v:
			case <-done:
				err = ctx.Err()
			}
			st.waitOut.Add(int64(time.Since(t0)))
			if err != nil {
				return err
			}
		}
		st.out.Add(1)
		return nil
	}
}

// protect calls f and turns a panic into a *panics.ErrRecovered error.
func protect(f func() error) error {
	var err error
	var c panics.Catcher
	c.Try(func() { err = f() })
	if r := c.Recovered(); r != nil {
		return r.AsError()
	}
	return err
}

// sizeMode says whether the items of a stream may implement Sizer.
type sizeMode uint8

const (
	sizeNever   sizeMode = iota // the item type cannot implement Sizer
	sizeStatic                  // the item type implements Sizer
	sizeDynamic                 // the item type is an interface: check each item
)

var sizerType = reflect.TypeFor[Sizer]()

func sizeModeOf[T any]() sizeMode {
	t := reflect.TypeFor[T]()
	switch {
	case t.Implements(sizerType):
		return sizeStatic
	case t.Kind() == reflect.Interface:
		return sizeDynamic
	}
	return sizeNever
}

// sizeOf returns the size of v if it implements Sizer, else 0. A panicking
// Size method (say, on a nil pointer) counts as 0.
func sizeOf[T any](mode sizeMode, v T) (n int64) {
	if mode == sizeNever {
		return 0
	}
	defer func() {
		if recover() != nil {
			n = 0
		}
	}()
	if s, ok := any(v).(Sizer); ok {
		return s.Size()
	}
	return 0
}
