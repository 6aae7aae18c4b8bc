package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// The plot is drawn with golang.org/x/image (an anti-aliased rasterizer
// and a bitmap font) rather than gonum.org/v1/plot: package plot parses its
// twelve TrueType fonts (4.3 MB) when the program starts, which cost every
// zsyncpipe command — sync and make included — 3.7 MB of resident memory.

// Plot geometry, in pixels.
const (
	plotW, plotH = 1000, 800
	padLeft      = 80
	padRight     = 30
	padTop       = 34
	padBottom    = 44
)

var (
	gridColor = color.RGBA{R: 0xdd, G: 0xdd, B: 0xdd, A: 0xff}
	textColor = image.NewUniform(color.Black)
)

// series is one tool's line in a chart.
type series struct {
	name string
	col  color.Color
	x, y []float64 // x is log2 of the block size
}

// chart is one panel: a title, an x axis of block sizes (log2) and a y
// axis, linear from zero or logarithmic.
type chart struct {
	title  string
	log    bool
	series []series
}

// WritePlot writes a PNG of two charts against the block size (log2 axis),
// one line per tool: the bytes a client downloads (log scale), and sync
// throughput.
func (rep *Report) WritePlot(path string) error {
	down := chart{title: "Bytes downloaded (control file + HTTP), MiB, log scale - " + rep.Corpus.Name, log: true}
	speed := chart{title: "Sync throughput (MB/s of the target)"}
	var ticks []float64
	seen := map[int]bool{}
	for i, tool := range []string{ToolZsyncpipe, ToolZsync} {
		dl := series{name: tool, col: toolColor(i)}
		sp := dl
		for _, r := range rep.Results {
			if r.Tool != tool || r.Err != "" {
				continue
			}
			x := math.Log2(float64(r.BlockSize))
			dl.x, dl.y = append(dl.x, x), append(dl.y, float64(r.Downloaded)/(1<<20))
			sp.x, sp.y = append(sp.x, x), append(sp.y, r.SyncMBps)
			if !seen[r.BlockSize] {
				seen[r.BlockSize] = true
				ticks = append(ticks, x)
			}
		}
		if len(dl.x) > 0 {
			down.series = append(down.series, dl)
			speed.series = append(speed.series, sp)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	down.draw(img, image.Rect(0, 0, plotW, plotH/2), ticks)
	speed.draw(img, image.Rect(0, plotH/2, plotW, plotH), ticks)

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	return nil
}

// draw draws the chart into the rectangle r of img, with x ticks at xt.
func (c *chart) draw(img *image.RGBA, r image.Rectangle, xt []float64) {
	area := image.Rect(r.Min.X+padLeft, r.Min.Y+padTop, r.Max.X-padRight, r.Max.Y-padBottom)
	label(img, area.Min.X, r.Min.Y+20, c.title)
	xmin, xmax := span(xt)
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	var ys []float64
	for _, s := range c.series {
		ys = append(ys, s.y...)
	}
	ymin, ymax := span(ys)
	tr := func(v float64) float64 { return v }
	var yt []float64
	if c.log {
		tr = func(v float64) float64 { return math.Log10(max(v, 1e-9)) }
		lo, hi := math.Floor(tr(max(ymin, 1e-3))), math.Ceil(tr(max(ymax, 1e-3)))
		if hi == lo {
			hi++
		}
		ymin, ymax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			yt = append(yt, math.Pow(10, e))
		}
	} else {
		ymin, ymax = 0, max(ymax*1.1, 1)
		step := niceStep(ymax / 5)
		for v := 0.0; v <= ymax; v += step {
			yt = append(yt, v)
		}
	}
	// Data to pixels: x inset by a twentieth of the width at each end.
	dx := (xmax - xmin) / 20
	px := func(x float64) float32 {
		return float32(area.Min.X) + float32((x-xmin+dx)/(xmax-xmin+2*dx))*float32(area.Dx())
	}
	py := func(y float64) float32 {
		return float32(area.Max.Y) - float32((tr(y)-tr(ymin))/(tr(ymax)-tr(ymin)))*float32(area.Dy())
	}
	for _, x := range xt {
		p := int(px(x))
		fill(img, image.Rect(p, area.Min.Y, p+1, area.Max.Y), gridColor)
		s := strings.ReplaceAll(humanize.IBytes(uint64(math.Round(math.Exp2(x)))), " ", "")
		label(img, p-len(s)*7/2, area.Max.Y+18, s)
	}
	for _, y := range yt {
		p := int(py(y))
		fill(img, image.Rect(area.Min.X, p, area.Max.X, p+1), gridColor)
		s := humanize.FtoaWithDigits(y, 2)
		label(img, area.Min.X-8-len(s)*7, p+5, s)
	}
	label(img, area.Min.X+area.Dx()/2-35, area.Max.Y+38, "block size")
	fill(img, image.Rect(area.Min.X, area.Min.Y, area.Min.X+1, area.Max.Y+1), color.Black)
	fill(img, image.Rect(area.Min.X, area.Max.Y, area.Max.X, area.Max.Y+1), color.Black)

	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	for i, s := range c.series {
		// Lines and points in separate passes: overlapping paths of
		// opposite winding would cancel out.
		lines, dots := vector.NewRasterizer(w, h), vector.NewRasterizer(w, h)
		for k := range s.x {
			x, y := px(s.x[k]), py(s.y[k])
			if k > 0 {
				thickLine(lines, px(s.x[k-1]), py(s.y[k-1]), x, y, 1.5)
			}
			disc(dots, x, y, 4)
		}
		// The legend, top left.
		ly := area.Min.Y + 16 + 18*i
		thickLine(lines, float32(area.Min.X+12), float32(ly-4), float32(area.Min.X+42), float32(ly-4), 1.5)
		disc(dots, float32(area.Min.X+27), float32(ly-4), 4)
		for _, ras := range []*vector.Rasterizer{lines, dots} {
			ras.Draw(img, img.Bounds(), image.NewUniform(s.col), image.Point{})
		}
		label(img, area.Min.X+50, ly, s.name)
	}
}

// span returns the least and greatest of v (0, 0 when v is empty).
func span(v []float64) (lo, hi float64) {
	for i, x := range v {
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

// niceStep rounds s up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	if s <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s {
			return m * p
		}
	}
	return 10 * p
}

// label writes s with its baseline at (x, y).
func label(img *image.RGBA, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: textColor, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// fill paints r with c.
func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// thickLine adds to ras a line from (x0, y0) to (x1, y1), w pixels either
// side of its middle.
func thickLine(ras *vector.Rasterizer, x0, y0, x1, y1, w float32) {
	dx, dy := x1-x0, y1-y0
	l := float32(math.Hypot(float64(dx), float64(dy)))
	if l == 0 {
		return
	}
	nx, ny := -dy/l*w, dx/l*w
	ras.MoveTo(x0+nx, y0+ny)
	ras.LineTo(x1+nx, y1+ny)
	ras.LineTo(x1-nx, y1-ny)
	ras.LineTo(x0-nx, y0-ny)
	ras.ClosePath()
}

// disc adds to ras a filled circle of radius r at (x, y).
func disc(ras *vector.Rasterizer, x, y, r float32) {
	const n = 16
	for k := 0; k <= n; k++ {
		a := 2 * math.Pi * float64(k) / n
		px, py := x+r*float32(math.Cos(a)), y+r*float32(math.Sin(a))
		if k == 0 {
			ras.MoveTo(px, py)
		} else {
			ras.LineTo(px, py)
		}
	}
	ras.ClosePath()
}
