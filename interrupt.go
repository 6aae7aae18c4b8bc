package zsyncpipe

import (
	"context"
	"fmt"
)

// interrupted turns err, the failure of a sync whose context was cancelled,
// into one wrapping ErrInterrupted and the context's cause that says how to
// go on and how many verified blocks the partial result keeps; other errors
// are returned as they are.
func (j *syncJob) interrupted(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	var kept int64
	if j.w != nil && j.pt != nil { // the new partial result was kept
		for i := int64(0); i < j.f.Blocks(); i++ {
			if j.pt.Done(i) {
				kept++
			}
		}
	}
	return &interruptedError{
		msg:   fmt.Sprintf("sync %s: %v; run the same command again to resume (%d of %d blocks kept)", j.out, ErrInterrupted, kept, j.f.Blocks()),
		cause: context.Cause(ctx),
	}
}

// interruptedError is ErrInterrupted with its message and the context's
// cause (context.Canceled, or the caller's own).
type interruptedError struct {
	msg   string
	cause error
}

func (e *interruptedError) Error() string   { return e.msg }
func (e *interruptedError) Unwrap() []error { return []error{ErrInterrupted, e.cause} }
