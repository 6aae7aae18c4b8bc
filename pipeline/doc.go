// Package pipeline runs asynchronous pipelines of typed stages joined by
// bounded channels.
//
// # Model
//
// A [Pipeline] is built first and run once. Building adds stages, each of
// which consumes zero or more typed [Stream]s and produces at most one:
//
//   - [Source] produces items by calling emit;
//   - [Map] applies a function to every item on several workers and keeps the
//     input order; [MapUnordered] does the same but emits results as they
//     complete;
//   - [Transform] turns every input item into zero or more output items on a
//     single worker (batching, splitting, filtering, stateful steps);
//   - [Merge] fans several streams of one type into one;
//   - [Sink] consumes a stream.
//
// Every stream has exactly one consuming stage, and every stream must be
// consumed: [Pipeline.Run] rejects a graph that violates either rule, as well
// as other misuse, with an error instead of deadlocking or panicking.
//
// # Bounded streams
//
// A stream is a channel of capacity [Config.Buffer]. Emitting blocks while the
// channel is full, so a slow stage stalls the stages upstream of it: the data
// in flight is bounded by construction. A parallel stage holds at most as many
// items as it has workers (received and not yet emitted), so a producer is
// never more than Buffer+workers items ahead of the stage that consumes its
// stream.
//
// # Errors and cancellation
//
// Run starts every stage in its own goroutine and waits for all of them. The
// first failure — an error returned by a stage function, a panic in one
// (recovered with github.com/sourcegraph/conc/panics and turned into a
// *panics.ErrRecovered), or the cancellation of the context given to Run —
// cancels the context seen by every stage (with that error as its
// context.Cause) and becomes the error Run returns.
// Stage errors are wrapped as `stage "name": ...`; a cancelled parent context
// is reported as `pipeline: ...` wrapping context.Cause of that context.
// Errors that follow the first one (typically ctx.Err() returned by stages
// that were cancelled) are dropped. Emit functions return ctx.Err() once the
// run is cancelled, and stage functions are expected to return promptly when
// their context is done. Each stage closes its output stream when it ends, and
// no goroutine started by the package outlives Run.
//
// # Statistics
//
// Every stage counts the items it receives and emits, the bytes of received
// items that implement [Sizer], and the time its workers spend inside the
// stage function (Busy), blocked waiting for input (WaitIn) and blocked
// sending output to a full stream (WaitOut). [Pipeline.Stats] reports them
// during or after Run, and [FormatStats] prints them as a table marking the
// stage with the highest utilisation: in a pipeline the stage that is busy
// while the others wait is the bottleneck.
package pipeline
