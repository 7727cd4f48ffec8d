package main

import (
	"fmt"
	"io"

	"github.com/dislog/dislog/tools/bench"
	"github.com/schollz/progressbar/v3"
)

// progress is the progress bar on stderr: records done of the count, or time elapsed of the
// duration, with the records a second so far.
type progress struct {
	w        io.Writer
	terminal bool
	cfg      bench.Config
	// bar is made at the first update, when the measurement has started, so that its clock does
	// not count the setup.
	bar *progressbar.ProgressBar
}

// startProgress returns the progress bar of a run with cfg, or nil when stderr is not a terminal
// and --progress is not given. A nil *progress shows nothing.
func (a *app) startProgress(cfg bench.Config) *progress {
	if !a.stderrIsTerminal && !a.progress {
		return nil
	}
	return &progress{w: a.stderr, terminal: a.stderrIsTerminal, cfg: cfg}
}

// update shows how far the run is.
func (p *progress) update(pr bench.Progress) {
	if p.bar == nil {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionUseANSICodes(p.terminal),
		}
		max := p.cfg.Duration.Milliseconds()
		if p.cfg.Count > 0 {
			max = p.cfg.Total()
			opts = append(opts, progressbar.OptionShowCount())
		}
		p.bar = progressbar.NewOptions64(max, opts...)
	}
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Records) / s
	}
	if p.cfg.Count > 0 {
		p.bar.Describe(fmt.Sprintf("%s: %.0f records/s", p.cfg.Workload, rate))
		p.bar.Set64(pr.Records)
		return
	}
	p.bar.Describe(fmt.Sprintf("%s: %d records, %.0f records/s", p.cfg.Workload, pr.Records, rate))
	p.bar.Set64(min(pr.Elapsed.Milliseconds(), p.cfg.Duration.Milliseconds()))
}

// finish clears the bar.
func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Finish()
}
