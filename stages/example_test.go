package stages_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// memOutput is an in-memory io.WriterAt: the sink of the example pipeline.
// Writes may come from several goroutines and in any order.
type memOutput struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memOutput) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	return copy(m.buf[off:], p), nil
}

// Example_customPipeline assembles a sync from the stages by hand: the
// delta scan writes what it finds into an in-memory output through a
// Patcher, then the fetch stage gets what it did not find and the patch
// stage writes that too. Swap ReaderAtSource for an HTTP
// source, or memOutput for a file, to get a real client.
func Example_customPipeline() {
	ctx := context.Background()
	const bs = 1024

	// The target (64 KiB), and an old version of it: the same data with
	// 100 bytes inserted at 10 KiB (the scan finds the shifted blocks) and
	// zeros over the 3 KiB at 40 KiB of the target (fetched).
	rng := rand.New(rand.NewPCG(1, 2))
	target := make([]byte, 64<<10)
	for i := range target {
		target[i] = byte(rng.Uint32())
	}
	old := bytes.Clone(target[:10<<10])
	old = append(old, make([]byte, 100)...)
	old = append(old, target[10<<10:]...)
	copy(old[100+40<<10:], make([]byte, 3<<10))

	// The control file, as a server would publish it.
	f, err := stages.BlockChecksums(ctx, bytes.NewReader(target), stages.ChecksumOptions{Blocksize: bs, SHA256: true})
	if err != nil {
		log.Fatal(err)
	}

	// delta (writes what it finds) → plan → fetch (what is missing) → patch
	p := pipeline.New(pipeline.Config{})
	out := &memOutput{}
	pt := stages.NewPatcher(out, &f.Header)
	seeds := []stages.Seed{{Name: "old", R: bytes.NewReader(old), Size: int64(len(old))}}
	hasher, err := simd.NewHasher(f.StrongAlgorithm, simd.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer hasher.Close()
	scanned, err := stages.DeltaStage(p, f, seeds, stages.DeltaOptions{Hasher: hasher, OnBlocks: pt.WriteBlock})
	if err != nil {
		log.Fatal(err)
	}
	// The plan goes to the fetch stage and, through a tee, to us.
	plans, toUs := pipeline.Tee(p, "plans", stages.PlanStage(p, &f.Header, scanned))
	var plan *stages.Plan
	pipeline.Sink(p, "keep", toUs, func(ctx context.Context, pl *stages.Plan) error { plan = pl; return nil })
	fetched := stages.FetchStage(p, f, plans,
		func(context.Context) (source.RangeSource, error) {
			return source.ReaderAt{R: bytes.NewReader(target)}, nil
		},
		stages.FetchOptions{Hasher: hasher})
	stages.PatchStage(p, fetched, pt)
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
	if err := pt.Finish(); err != nil {
		log.Fatal(err)
	}

	fmt.Printf("blocks found locally: %d of %d\n", plan.Reused/bs, f.Blocks())
	fmt.Printf("fetched: %v (%d bytes)\n", plan.Missing, plan.MissingBytes)
	err = stages.Verify(ctx, bytes.NewReader(out.buf), &f.Header)
	fmt.Println("verify:", err, "equal:", bytes.Equal(out.buf, target))
	// Output:
	// blocks found locally: 61 of 64
	// fetched: [{40960 44032}] (3072 bytes)
	// verify: <nil> equal: true
}
