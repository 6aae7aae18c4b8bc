package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/zsyncpipe/zsyncpipe"
)

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine draws a one-line progress display, rewritten in place with
// "\r". It is safe for concurrent use, as progress callbacks may come from
// several goroutines.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	every time.Duration
	last  time.Time
	width int // length of the line on screen
	phase string
	since time.Time // start of the current phase
}

// newProgress returns a progress display on w if w is a terminal and quiet
// is false; otherwise it returns nil, whose methods do nothing.
func newProgress(w io.Writer, quiet bool) *progressLine {
	if quiet || !isTerminal(w) {
		return nil
	}
	return &progressLine{w: w, every: 100 * time.Millisecond}
}

// callback returns the function to pass as a Progress option, or nil.
func (p *progressLine) callback() func(zsyncpipe.Progress) {
	if p == nil {
		return nil
	}
	return p.update
}

// update shows pr, at most once per p.every except when a phase completes.
func (p *progressLine) update(pr zsyncpipe.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every && pr.Done != pr.Total {
		return
	}
	p.last = now
	if pr.Phase != p.phase {
		p.phase, p.since = pr.Phase, now
	}
	line := progressText(pr, now.Sub(p.since))
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width = len(line)
}

// progressText formats one progress line: phase, a bar, bytes done of the
// total, rate and time left, e.g.
// "fetch [#######-------------]  3.1 MiB of 8.2 MiB  12 MB/s  ETA 0.4s".
func progressText(pr zsyncpipe.Progress, elapsed time.Duration) string {
	done := max(pr.Done, 0)
	line := fmt.Sprintf("%-6s", pr.Phase)
	if pr.Total > 0 {
		const width = 20
		fill := int(min(done, pr.Total) * width / pr.Total)
		line += " [" + strings.Repeat("#", fill) + strings.Repeat("-", width-fill) + "]"
		line += fmt.Sprintf(" %s of %s", humanize.IBytes(uint64(done)), humanize.IBytes(uint64(pr.Total)))
	} else {
		line += " " + humanize.IBytes(uint64(done))
	}
	if elapsed > 0 && done > 0 {
		line += "  " + rate(done, elapsed)
		if pr.Total > done {
			left := time.Duration(float64(elapsed) * float64(pr.Total-done) / float64(done))
			line += "  ETA " + seconds(left)
		}
	}
	return line
}

// clear erases the progress line so that the next output starts on a clean
// line.
func (p *progressLine) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// rate formats n bytes in d as a throughput, e.g. "725 MB/s".
func rate(n int64, d time.Duration) string {
	if d <= 0 || n <= 0 {
		return "- MB/s"
	}
	return humanize.Bytes(uint64(float64(n)/d.Seconds())) + "/s"
}

// seconds formats d as seconds with two decimals, e.g. "0.31s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}
