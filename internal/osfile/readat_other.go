//go:build !unix

package osfile

import "os"

// rawFile is a file opened by openRaw.
type rawFile struct{ f *os.File }

func openRaw(path string) (rawFile, error) {
	f, err := os.Open(path)
	return rawFile{f}, err
}

func (f rawFile) close() { f.f.Close() }

func (f rawFile) readAt(_ string, b []byte, off int64) (int, error) { return f.f.ReadAt(b, off) }

func readAt(path string, b []byte, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.ReadAt(b, off)
}
