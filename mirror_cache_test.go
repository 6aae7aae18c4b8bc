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
