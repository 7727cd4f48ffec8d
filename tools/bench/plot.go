package bench

import (
	"fmt"
	"image/color"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colors of the produce and consume lines.
var (
	produceColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	consumeColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// WritePlot draws the report's timeline into a PNG file: records per second above, p99 latency
// below (in ms, or µs when every p99 is under a millisecond), one point a second, with a line for
// produce and one for consume.
func WritePlot(rep *Report, file string) error {
	sides := []struct {
		name  string
		s     *Stats
		color color.Color
	}{{"produce", rep.Produce, produceColor}, {"consume", rep.Consume, consumeColor}}
	unit, perUnit := "ms", 1e3
	if maxP99(rep) < 1e3 {
		unit, perUnit = "µs", 1
	}
	title := fmt.Sprintf("dislog-bench %s: %s", rep.Workload, rep.describe())
	throughput := newPanel(title, "records/s")
	latency := newPanel("", "p99 latency ("+unit+")")
	for _, side := range sides {
		if side.s == nil || len(side.s.Timeline) == 0 {
			continue
		}
		tput := make(plotter.XYs, len(side.s.Timeline))
		p99 := make(plotter.XYs, len(side.s.Timeline))
		for i, smp := range side.s.Timeline {
			tput[i] = plotter.XY{X: smp.Seconds, Y: smp.RecordsPerSecond}
			p99[i] = plotter.XY{X: smp.Seconds, Y: smp.P99Micros / perUnit}
		}
		if err := addLine(throughput, side.name, tput, side.color); err != nil {
			return err
		}
		if err := addLine(latency, side.name+": "+side.s.Latency.Of, p99, side.color); err != nil {
			return err
		}
	}
	// Room above the lines for the legend.
	for _, p := range []*plot.Plot{throughput, latency} {
		p.Y.Max *= 1.3
	}

	img := vgimg.New(24*vg.Centimeter, 18*vg.Centimeter)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4, PadY: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{throughput}, {latency}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}

	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// newPanel is one of the plot's two panels, over time in seconds.
func newPanel(title, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = y
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	p.X.Tick.Marker = readableTicks{}
	p.Y.Tick.Marker = readableTicks{}
	return p
}

// maxP99 is the largest p99 of the report's timelines, in µs.
func maxP99(rep *Report) float64 {
	m := 0.0
	for _, s := range []*Stats{rep.Produce, rep.Consume} {
		if s == nil {
			continue
		}
		for _, smp := range s.Timeline {
			m = max(m, smp.P99Micros)
		}
	}
	return m
}

// readableTicks are gonum's default ticks labelled as people write numbers: 250,000 rather than
// 250000.00, and 0.08 rather than 8e-02.
type readableTicks struct{}

func (readableTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = readableNumber(ticks[i].Value)
		}
	}
	return ticks
}

// readableNumber formats v in the fewest digits, with commas between thousands.
func readableNumber(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	sign := ""
	if strings.HasPrefix(intPart, "-") {
		sign, intPart = "-", intPart[1:]
	}
	for i := len(intPart) - 3; i > 0; i -= 3 {
		intPart = intPart[:i] + "," + intPart[i:]
	}
	if frac != "" {
		return sign + intPart + "." + frac
	}
	return sign + intPart
}

// addLine adds a line with a dot at each sample, so that a run of a second or two still shows.
func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color) error {
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	line.Color = c
	line.Width = vg.Points(1.5)
	points.Color = c
	points.Shape = draw.CircleGlyph{}
	points.Radius = vg.Points(2)
	p.Add(line, points)
	p.Legend.Add(name, line, points)
	return nil
}
