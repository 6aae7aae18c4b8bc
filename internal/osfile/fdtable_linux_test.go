package osfile

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fdTableSize reads FDSize, the size of the process's table of open files,
// from /proc/self/status.
func fdTableSize(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no FDSize in /proc/self/status")
	return 0
}

func TestReserveDescriptors(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// The test process's table only grows, so ask for more than it has.
	want := 2 * fdTableSize(t)
	if uint64(want) > rl.Cur {
		t.Skipf("the limit on open files (%d) leaves no room to grow the table (%d)", rl.Cur, want/2)
	}
	probe, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(probe)
	ReserveDescriptors(want)
	if got := fdTableSize(t); got < want {
		t.Errorf("table holds %d descriptors after ReserveDescriptors(%d)", got, want)
	}
	// Nothing stays open: the next descriptor is the lowest free one, as
	// before.
	fd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if fd != probe {
		t.Errorf("next descriptor %d, was %d before: ReserveDescriptors left one open", fd, probe)
	}
}
