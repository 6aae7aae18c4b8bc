package httpsource

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

func TestMirrorsDropsCorruptMirror(t *testing.T) {
	data := testData(fileSize)
	bad := newServer(t, data, faultserver.Options{CorruptRange: source.Range{Start: 4000, End: 4010}})
	good := newServer(t, data, faultserver.Options{})
	badSrc := newSource(t, bad.URL(), Options{})
	m := NewMirrors(badSrc, newSource(t, good.URL(), Options{}))
	ranges := spaced(0, 1000, 1000, 10)
	c, err := fetch(m, data, ranges)
	if err != nil {
		t.Fatal(err)
	}
	c.verify(t, ranges)
	if bad.Requests() != 1 || m.Healthy() != 1 {
		t.Errorf("bad mirror: %d requests, %d healthy; want 1 and 1", bad.Requests(), m.Healthy())
	}
	// The good mirror was asked only for what the bad one did not deliver.
	if log := good.Log(); len(log) != 1 || !strings.HasPrefix(log[0].Range, "bytes=4000-") {
		t.Errorf("good mirror log %+v", log)
	}
	// Later calls avoid the dropped mirror.
	if _, err := fetch(m, data, ranges); err != nil {
		t.Fatal(err)
	}
	if bad.Requests() != 1 {
		t.Errorf("dropped mirror used again")
	}
}

func TestMirrorsAllFail(t *testing.T) {
	data := testData(fileSize)
	a := newServer(t, data, faultserver.Options{CorruptRange: source.Range{Start: 0, End: 1}})
	b := newServer(t, data, faultserver.Options{Status503: true})
	m := NewMirrors(newSource(t, a.URL(), Options{}), newSource(t, b.URL(), Options{Retries: 1}))
	_, err := fetch(m, data, spaced(0, 1000, 1000, 3))
	if err == nil {
		t.Fatal("no error")
	}
	var se *StatusError
	if !errors.Is(err, source.ErrCorrupt) || !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("err = %v, want both failures", err)
	}
	for _, u := range []string{a.URL(), b.URL()} {
		if !strings.Contains(err.Error(), u) {
			t.Errorf("error %q does not name %s", err, u)
		}
	}
	if _, err := fetch(NewMirrors(), data, spaced(0, 10, 0, 1)); err == nil {
		t.Error("no mirrors: no error")
	}
}

func TestMirrorsSpreadAndFailover(t *testing.T) {
	data := testData(fileSize)
	a := newServer(t, data, faultserver.Options{})
	b := newServer(t, data, faultserver.Options{})
	dead := newServer(t, data, faultserver.Options{DropAfter: 100})
	m := NewMirrors(newSource(t, a.URL(), Options{}), newSource(t, dead.URL(), Options{Retries: -1}), newSource(t, b.URL(), Options{}))
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[g] = fetch(m, data, spaced(int64(g)*10_000, 300, 500, 10))
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", g, err)
		}
	}
	if a.Requests() == 0 || b.Requests() == 0 {
		t.Errorf("requests a=%d b=%d: not spread", a.Requests(), b.Requests())
	}
	if m.Healthy() != 2 {
		t.Errorf("healthy = %d, want 2", m.Healthy())
	}
}

func TestMirrorsCallbackErrorNotFailover(t *testing.T) {
	data := testData(fileSize)
	a := newServer(t, data, faultserver.Options{})
	m := NewMirrors(newSource(t, a.URL(), Options{}))
	mine := errors.New("disk full")
	err := m.ReadRanges(context.Background(), spaced(0, 10, 10, 2), func(source.Range, io.Reader) error { return mine })
	if err != mine || m.Healthy() != 1 {
		t.Errorf("err = %v, healthy %d; want the callback's error and no drop", err, m.Healthy())
	}
}
