package zsyncpipe

import (
	"slices"
	"testing"
)

// TestMergeSpans checks how scanDropper joins the stretches the scan is
// done with: touching and overlapping ones become one, others stay apart.
func TestMergeSpans(t *testing.T) {
	var all []span
	steps := []struct {
		add, holds span
		all        []span
	}{
		{span{10, 20}, span{10, 20}, []span{{10, 20}}},
		{span{30, 40}, span{30, 40}, []span{{10, 20}, {30, 40}}},
		{span{0, 5}, span{0, 5}, []span{{0, 5}, {10, 20}, {30, 40}}},
		{span{20, 30}, span{10, 40}, []span{{0, 5}, {10, 40}}},
		{span{50, 60}, span{50, 60}, []span{{0, 5}, {10, 40}, {50, 60}}},
		{span{3, 52}, span{0, 60}, []span{{0, 60}}},
		{span{60, 61}, span{0, 61}, []span{{0, 61}}},
	}
	for _, st := range steps {
		var holds span
		all, holds = merge(all, st.add)
		if holds != st.holds || !slices.Equal(all, st.all) {
			t.Fatalf("adding %v: %v holding it in %v, want %v in %v", st.add, holds, all, st.holds, st.all)
		}
	}
}

// TestScanDropperMargins checks what scanDropper drops as the scan
// reports segments: a stretch without finds keeps its margin cached where
// the file goes on with data not known to hold nothing (the segment
// before reads into it, Extend reads next to what was found), and drops it
// once the neighbour holds nothing too; a file's ends need no margin.
func TestScanDropperMargins(t *testing.T) {
	const mib, margin = 1 << 20, 256 << 10
	type drop struct {
		path   string
		off, n int64
	}
	var got []drop
	d := newScanDropper(margin)
	d.drop = func(p string, off, n int64) { got = append(got, drop{p, off, n}) }
	d.add(0, "a", 10*mib)
	d.add(2, "b", 3*mib)
	steps := []struct {
		seed       int
		start, end int64
		found      bool
		want       []drop // the calls this one makes
	}{
		// Between two segments not scanned yet: both margins kept.
		{0, 1 * mib, 2 * mib, false, []drop{{"a", 1*mib + margin, mib - 2*margin}}},
		// The file's start needs none; the stretch is now [0, 2 MiB).
		{0, 0, 1 * mib, false, []drop{{"a", 0, 2*mib - margin}}},
		// Found: nothing dropped, and [3, 4) MiB stays a neighbour with finds.
		{0, 3 * mib, 4 * mib, true, nil},
		{0, 2 * mib, 3 * mib, false, []drop{{"a", 0, 3*mib - margin}}},
		// The file's end needs none either.
		{0, 9 * mib, 10 * mib, false, []drop{{"a", 9*mib + margin, mib - margin}}},
		// Too short to keep both margins: nothing dropped.
		{0, 5 * mib, 5*mib + 2*margin, false, nil},
		// A seed not to drop (an unchanged file), and another file.
		{1, 0, 1 * mib, false, nil},
		{2, 1 * mib, 2 * mib, false, []drop{{"b", 1*mib + margin, mib - 2*margin}}},
		// Its last segment: [1, 3) MiB, the end at the file's end.
		{2, 2 * mib, 3 * mib, false, []drop{{"b", 1*mib + margin, 2*mib - margin}}},
		// And its first: the whole file, no margins.
		{2, 0, 1 * mib, false, []drop{{"b", 0, 3 * mib}}},
	}
	for i, st := range steps {
		got = nil
		d.scanned(st.seed, st.start, st.end, st.found)
		if !slices.Equal(got, st.want) {
			t.Errorf("step %d, seed %d [%d, %d) found=%v: dropped %v, want %v", i, st.seed, st.start, st.end, st.found, got, st.want)
		}
	}
}
