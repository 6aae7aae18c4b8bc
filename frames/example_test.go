package frames_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// A publisher writes a file's frames; a client reads the ranges it lacks
// through a Source, which takes the frames where they are shorter.
func Example() {
	file := []byte(strings.Repeat("a line of a log file that repeats\n", 10000)) // 340,000 bytes

	// Publisher: the frames, and their layout for the index.
	var stored bytes.Buffer
	w := frames.NewWriter(&stored, 0)
	w.Write(file)
	w.Close()
	layout := w.Layout()
	fmt.Printf("%d bytes in %d frames of %d bytes\n", layout.Size, len(layout.Lengths), layout.FrameSize)

	// Client: two ranges it lacks, one of 128 KiB and one of 2 KiB.
	src, err := frames.NewSource(source.ReaderAt{R: bytes.NewReader(file)}, source.ReaderAt{R: bytes.NewReader(stored.Bytes())}, layout, nil)
	if err != nil {
		panic(err)
	}
	ranges := []source.Range{{Start: 0, End: 128 << 10}, {Start: 300 << 10, End: 302 << 10}}
	src.Expect(ranges)
	var got int64
	err = src.ReadRanges(context.Background(), ranges, func(r source.Range, data io.Reader) error {
		b, err := io.ReadAll(data)
		if !bytes.Equal(b, file[r.Start:r.End]) {
			return fmt.Errorf("range %v differs", r)
		}
		got += int64(len(b))
		return err
	})
	st := src.Stats()
	fmt.Println(got, "bytes read,", err)
	fmt.Printf("%d frames delivered %d of them; %t that they were stored in fewer\n", st.Frames, st.Decoded, st.Stored < st.Decoded/10)
	// Output:
	// 340000 bytes in 6 frames of 65536 bytes
	// 133120 bytes read, <nil>
	// 3 frames delivered 133120 of them; true that they were stored in fewer
}
