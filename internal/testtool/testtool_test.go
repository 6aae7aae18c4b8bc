package testtool

import "testing"

func TestFind(t *testing.T) {
	if p, err := Find("sh"); err != nil || p == "" {
		t.Fatalf("Find(sh) = %q, %v", p, err)
	}
	if _, err := Find("no-such-program-zsyncpipe"); err == nil {
		t.Fatal("Find found a program that does not exist")
	}
	if p := Look(t, "sh", "dash"); p == "" {
		t.Fatal("Look(sh) returned nothing")
	}
}
