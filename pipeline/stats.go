package pipeline

import (
	"fmt"
	"io"
	"strings"
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

// Bottleneck returns the index of the stage with the highest utilisation,
// the likely bottleneck, or -1 when no stage has been busy.
func Bottleneck(stats []StageStats) int {
	best, bestU := -1, 0.0
	for i, s := range stats {
		if u := s.Utilization(); u > bestU {
			best, bestU = i, u
		}
	}
	return best
}

// FormatStats writes stats to w as an aligned table, one line per stage,
// with sizes in IEC units and a "*" in the BOTTLENECK column of the stage
// with the highest utilisation.
func FormatStats(w io.Writer, stats []StageStats) error {
	rows := [][]string{{"STAGE", "WORKERS", "IN", "OUT", "BYTES", "BUSY", "WAIT-IN", "WAIT-OUT", "WALL", "UTIL", "BOTTLENECK"}}
	bn := Bottleneck(stats)
	for i, s := range stats {
		bytes := "-"
		if s.Bytes > 0 {
			bytes = humanize.IBytes(uint64(s.Bytes))
		}
		mark := ""
		if i == bn {
			mark = "*"
		}
		rows = append(rows, []string{
			s.Name,
			fmt.Sprint(s.Workers),
			humanize.Comma(s.In),
			humanize.Comma(s.Out),
			bytes,
			formatDuration(s.Busy),
			formatDuration(s.WaitIn),
			formatDuration(s.WaitOut),
			formatDuration(s.Wall),
			fmt.Sprintf("%.0f%%", 100*s.Utilization()),
			mark,
		})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for j, cell := range row {
			widths[j] = max(widths[j], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for j, cell := range row {
			pad := strings.Repeat(" ", widths[j]-len([]rune(cell)))
			switch {
			case j == 0: // stage names: left-aligned
				line.WriteString(cell + pad)
			case j == len(row)-1: // marker: left-aligned
				line.WriteString("  " + cell)
			default: // numbers: right-aligned
				line.WriteString("  " + pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
	out := b.String()
	if _, err := io.WriteString(w, out); err != nil {
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
