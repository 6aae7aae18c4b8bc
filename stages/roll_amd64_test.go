//go:build amd64 && gc && !noasm

package stages

import "testing"

// TestProbeSmallTable checks that the vector kernels refuse tables too
// short for their shifts, which they would read past (the index never
// makes them).
func TestProbeSmallTable(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no vector kernels on this CPU") // nothing to refuse
	}
	ok := &index{bloom: make([]uint32, 128), bloomShift: 32 - 7, bloom2: make([]uint32, 2), bloom2Shift: 63}
	if !vecProbe(ok) {
		t.Fatal("vector probe refused tables of the right size")
	}
	short1 := *ok
	short1.bloom = short1.bloom[:127]
	short2 := *ok
	short2.bloom2Shift = 62
	wide2 := *ok
	wide2.bloom2Shift = 64
	wide := *ok
	wide.bloomShift = 33
	for name, ix := range map[string]*index{"first": &short1, "second": &short2, "shift": &wide, "shift2": &wide2} {
		if vecProbe(ix) {
			t.Errorf("vector probe accepted a table too short (%s)", name)
		}
	}
}
