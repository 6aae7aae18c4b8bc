package stages

import (
	"github.com/zsyncpipe/zsyncpipe/control"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// Plan is the blueprint of a rebuild: which target blocks come from which
// seed, and which byte ranges must be fetched.
type Plan struct {
	// Copies lists runs of target blocks found in a seed, in target order.
	Copies []Copy
	// Missing lists the byte ranges of the target with no local source:
	// maximal runs of missing blocks, the last clipped to the target's
	// length.
	Missing []source.Range
	// Reused and MissingBytes count target bytes found and missing.
	Reused, MissingBytes int64
}

// Copy is an instruction to copy Count target blocks starting at block
// Index from seed Seed, where they lie back to back from Offset on.
type Copy struct {
	Index, Count int64
	Seed         int
	Offset       int64
}

// Blueprint turns the matches of a delta scan into a plan for a target
// described by h.
func Blueprint(h *control.Header, m *Matches) *Plan {
	bs := int64(h.Blocksize)
	plan := &Plan{}
	n := h.Blocks()
	for i := int64(0); i < n; i++ {
		size := min(bs, h.Length-i*bs)
		seed, off, ok := m.Lookup(i)
		if !ok {
			plan.MissingBytes += size
			if k := len(plan.Missing) - 1; k >= 0 && plan.Missing[k].End == i*bs {
				plan.Missing[k].End += size
			} else {
				plan.Missing = append(plan.Missing, source.Range{Start: i * bs, End: i*bs + size})
			}
			continue
		}
		plan.Reused += size
		if k := len(plan.Copies) - 1; k >= 0 {
			c := &plan.Copies[k]
			if c.Index+c.Count == i && c.Seed == seed && c.Offset+c.Count*bs == off {
				c.Count++
				continue
			}
		}
		plan.Copies = append(plan.Copies, Copy{Index: i, Count: 1, Seed: seed, Offset: off})
	}
	return plan
}
