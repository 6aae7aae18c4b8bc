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
	ok := &index{bitTable: make([]uint64, 64), bitShift: 64 - 12, bitTable2: make([]uint64, 1), bit2Shift: 64 - 6}
	if !vecProbe(ok) {
		t.Fatal("vector probe refused tables of the right size")
	}
	short1 := *ok
	short1.bitTable = short1.bitTable[:63]
	short2 := *ok
	short2.bit2Shift = 64 - 7
	wide := *ok
	wide.bitShift = 31
	for name, ix := range map[string]*index{"first": &short1, "second": &short2, "32 bits": &wide} {
		if vecProbe(ix) {
			t.Errorf("vector probe accepted a table too short (%s)", name)
		}
	}
}
