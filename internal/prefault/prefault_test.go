package prefault

import "testing"

// Slice must leave every kind of slice as it was: empty, nil, small,
// unaligned, holding pointers, with data in it.
func TestSliceKeepsContents(t *testing.T) {
	Slice([]byte(nil))
	Slice([]int{})
	Slice(make([]byte, 10))
	big := make([]uint64, 1<<16)
	for i := range big {
		big[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	Slice(big)
	Slice(big[3:100]) // unaligned start, capacity to the end
	for i, v := range big {
		if v != uint64(i)*0x9e3779b97f4a7c15 {
			t.Fatalf("big[%d] = %#x after Slice", i, v)
		}
	}
	ptrs := make([]*int, 0, 1<<15)
	Slice(ptrs)
	x := 7
	for range cap(ptrs) {
		ptrs = append(ptrs, &x)
	}
	for i, p := range ptrs {
		if p != &x {
			t.Fatalf("ptrs[%d] changed", i)
		}
	}
	Slice(make([]struct{}, 1<<20)) // zero-size elements: nothing to back
}
