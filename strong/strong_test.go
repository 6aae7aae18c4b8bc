package strong

import "testing"

func TestAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Algorithm
		name string
		size int
	}{
		{"MD4", MD4, "MD4", 16},
		{"md5", MD5, "MD5", 16},
		{" SHA-224 ", SHA224, "SHA-224", 28},
		{"sha224", SHA224, "SHA-224", 28},
	} {
		a, err := ParseAlgorithm(tc.in)
		if err != nil || a != tc.want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", tc.in, a, err, tc.want)
			continue
		}
		if a.String() != tc.name || a.Size() != tc.size || a.New().Size() != tc.size {
			t.Errorf("%v: String %q Size %d New().Size %d", a, a.String(), a.Size(), a.New().Size())
		}
	}
	for _, s := range []string{"", "SHA-1", "MD6"} {
		if _, err := ParseAlgorithm(s); err == nil {
			t.Errorf("ParseAlgorithm(%q) succeeded", s)
		}
	}
	if Algorithm(0).Size() != 0 || Algorithm(0).New() != nil {
		t.Error("Algorithm(0) has a size or a hash")
	}
}
