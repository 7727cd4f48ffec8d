package ctl

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progressInterval is how often the progress line is updated; a run shorter than this prints none
// unless --progress asks for it.
const progressInterval = time.Second

// progress prints a line of counts and rates on stderr while a produce or consume runs: rewritten
// in place on a terminal, one line per update otherwise (with --progress).
type progress struct {
	verb     string
	w        io.Writer
	terminal bool
	forced   bool
	start    time.Time
	records  atomic.Int64
	bytes    atomic.Int64

	stop    chan struct{}
	done    sync.WaitGroup
	printed bool
}

// startProgress starts the progress line of a command if stderr is a terminal or --progress is
// given, and returns nil otherwise. A nil *progress counts nothing and prints nothing.
func (a *app) startProgress(verb string) *progress {
	if !a.stderrIsTerminal && !a.progress {
		return nil
	}
	p := &progress{verb: verb, w: a.stderr, terminal: a.stderrIsTerminal, forced: a.progress, start: time.Now(), stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.print()
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// add counts records of n bytes in all.
func (p *progress) add(records, bytes int) {
	if p == nil {
		return
	}
	p.records.Add(int64(records))
	p.bytes.Add(int64(bytes))
}

func (p *progress) print() {
	elapsed := time.Since(p.start)
	n := p.records.Load()
	line := fmt.Sprintf("%s %d records, %.1f MiB in %s, %.0f records/s",
		p.verb, n, float64(p.bytes.Load())/(1<<20), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.printed = true
}

// finish stops the updates and prints the final line, if any line was printed or --progress asked
// for one.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	if p.printed || p.forced {
		p.print()
		if p.terminal {
			fmt.Fprintln(p.w)
		}
	}
}
