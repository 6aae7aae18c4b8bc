package source_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/source"
)

func TestReaderAt(t *testing.T) {
	src := source.ReaderAt{R: strings.NewReader("0123456789")}
	var got []string
	err := src.ReadRanges(context.Background(), []source.Range{{Start: 1, End: 3}, {Start: 7, End: 10}}, func(r source.Range, data io.Reader) error {
		b, err := io.ReadAll(data)
		if int64(len(b)) != r.Len() {
			t.Errorf("range %v: %d bytes", r, len(b))
		}
		got = append(got, string(b))
		return err
	})
	if err != nil || strings.Join(got, ",") != "12,789" {
		t.Fatalf("ReadRanges = %q, %v", got, err)
	}
	mine := errors.New("mine")
	err = src.ReadRanges(context.Background(), []source.Range{{Start: 0, End: 1}, {Start: 2, End: 3}}, func(source.Range, io.Reader) error { return mine })
	if err != mine {
		t.Fatalf("callback error came back as %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := src.ReadRanges(ctx, []source.Range{{Start: 0, End: 1}}, func(source.Range, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ReadRanges = %v", err)
	}
}

func TestStatsAdd(t *testing.T) {
	got := source.Stats{Requests: 1, Ranges: 2, Overhead: 3}.Add(source.Stats{Requests: 10, Ranges: 20, Overhead: 30})
	if got != (source.Stats{Requests: 11, Ranges: 22, Overhead: 33}) {
		t.Fatalf("Add = %+v", got)
	}
}
