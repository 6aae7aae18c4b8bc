package pipeline

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// StageStats are the counters of one stage. Times are summed over the
// stage's workers. For Map and MapUnordered, WaitIn is the time the stage
// waited for input multiplied by the number of its idle workers at the start
// of the wait, an approximation.
type StageStats struct {
	Name    string
	Workers int
	In      int64         // items received
	Out     int64         // items emitted
	Bytes   int64         // sum of Size() of the received items that implement Sizer
	Busy    time.Duration // time inside the stage function, less time blocked in emit
	WaitIn  time.Duration // time blocked waiting for input
	WaitOut time.Duration // time blocked sending output (downstream full)
	Wall    time.Duration // from stage start to stage end, or to now while it runs
}

// Utilization returns Busy / (Wall × Workers): the fraction of its capacity
// the stage used. It is 0 when Wall or Workers is 0.
func (s StageStats) Utilization() float64 {
	if s.Wall <= 0 || s.Workers <= 0 {
		return 0
	}
	return float64(s.Busy) / (float64(s.Wall) * float64(s.Workers))
}

// Stats returns the counters of every stage, in the order the stages were
// added. It may be called during Run, for a snapshot, or after it.
func (p *Pipeline) Stats() []StageStats {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	stages := p.stages
	epoch := p.epoch
	p.mu.Unlock()
	now := int64(time.Since(epoch)) + 1
	stats := make([]StageStats, len(stages))
	for i, st := range stages {
		s := StageStats{
			Name:    st.name,
			Workers: st.workers,
			In:      st.in.Load(),
			Out:     st.out.Load(),
			Bytes:   st.bytes.Load(),
			Busy:    time.Duration(st.busy.Load()),
			WaitIn:  time.Duration(st.waitIn.Load()),
			WaitOut: time.Duration(st.waitOut.Load()),
		}
		if start := st.start.Load(); start != 0 {
			end := st.end.Load()
			if end == 0 {
				end = now
			}
			s.Wall = time.Duration(max(end-start, 0))
		}
		stats[i] = s
	}
	return stats
}

// Bottleneck returns the index of the stage that did the most work per
// worker (Busy / Workers): the stage that bounds the run, since it would
// take that long even if it never had to wait. Utilisation alone would
// point at a stage that was busy for all of its 20 µs. Ties go to the
// higher utilisation. It returns -1 when no stage has been busy.
func Bottleneck(stats []StageStats) int {
	best := -1
	var bestW time.Duration
	for i, s := range stats {
		if s.Workers <= 0 || s.Busy <= 0 {
			continue
		}
		w := s.Busy / time.Duration(s.Workers)
		if best < 0 || w > bestW || w == bestW && s.Utilization() > stats[best].Utilization() {
			best, bestW = i, w
		}
	}
	return best
}

// FormatStats writes stats to w as an aligned table (text/tabwriter), one
// line per stage, with sizes in IEC units and a "*" in the BOTTLENECK
// column of the stage Bottleneck names.
func FormatStats(w io.Writer, stats []StageStats) error {
	header := []string{"STAGE", "WORKERS", "IN", "OUT", "BYTES", "BUSY", "WAIT-IN", "WAIT-OUT", "WALL", "UTIL"}
	bn := Bottleneck(stats)
	// Stage names are left-aligned, the numbers right-aligned: tabwriter
	// aligns every column one way, so the names are padded here.
	nameWidth := len(header[0])
	for _, s := range stats {
		nameWidth = max(nameWidth, len([]rune(s.Name)))
	}
	pad := func(name string) string { return name + strings.Repeat(" ", nameWidth-len([]rune(name))) }
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := []string{pad(header[0])}
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(header[1:], "\t"))
	marks := make([]string, len(stats))
	for i, s := range stats {
		bytes := "-"
		if s.Bytes > 0 {
			bytes = humanize.IBytes(uint64(s.Bytes))
		}
		if i == bn {
			marks[i] = "*"
		}
		names = append(names, pad(s.Name))
		fmt.Fprintf(tw, "\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t\n",
			s.Workers, humanize.Comma(s.In), humanize.Comma(s.Out), bytes,
			formatDuration(s.Busy), formatDuration(s.WaitIn), formatDuration(s.WaitOut),
			formatDuration(s.Wall), 100*s.Utilization())
	}
	tw.Flush()
	// The marker column goes after the aligned ones, left-aligned.
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	var out strings.Builder
	for i, line := range lines {
		line = names[i] + strings.TrimRight(line, " ")
		switch {
		case i == 0:
			line += "  BOTTLENECK"
		case marks[i-1] != "":
			line += "  " + marks[i-1]
		}
		out.WriteString(line + "\n")
	}
	if _, err := io.WriteString(w, out.String()); err != nil {
		return fmt.Errorf("pipeline: writing stats: %w", err)
	}
	return nil
}

// formatDuration renders d with three significant digits.
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	r := time.Duration(1)
	for d/r >= 1000 {
		r *= 10
	}
	return d.Round(r).String()
}
