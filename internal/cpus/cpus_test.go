package cpus

import (
	"runtime"
	"testing"
)

func TestCores(t *testing.T) {
	n := Cores()
	if n < 1 || n > runtime.GOMAXPROCS(0) {
		t.Fatalf("Cores() = %d with GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if n := Cores(); n != 1 {
		t.Fatalf("Cores() = %d with GOMAXPROCS 1", n)
	}
}
