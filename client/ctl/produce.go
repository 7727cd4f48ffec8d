package ctl

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/dislog/dislog/client"
	"github.com/spf13/cobra"
)

// maxLineBytes bounds a line read from stdin: a record larger than this could not be produced
// with the server's default limits anyway.
const maxLineBytes = 16 << 20

type produceFlags struct {
	key          string
	keySeparator string
	headers      []string
	opts         client.ProducerOptions
}

func (a *app) produceCommand() *cobra.Command {
	var f produceFlags
	cmd := &cobra.Command{
		Use:   "produce TOPIC [VALUE...]",
		Short: "Append records to a topic: the arguments, or else each line of stdin",
		Long: `Append records to a topic. Each VALUE argument is a record; with none, each line of stdin is a
record (without its line ending). Records are sent in batches, many in flight, and written in order.

Prints how many records were written and their offsets; with --output json, one object:
{"topic": ..., "records": ..., "failed": ..., "first_offset": ..., "last_offset": ...}.
Exits with status 1 if any record was not written, naming the first error.`,
		Example: `  dislogctl produce orders paid shipped
  dislogctl produce orders --key o-17 -H source=web paid
  printf 'o-1:paid\no-2:shipped\n' | dislogctl produce orders --key-separator :
  seq 1000000 | dislogctl produce numbers`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.produce(cmd, args[0], args[1:], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.key, "key", "k", "", "key of every record")
	fl.StringVar(&f.keySeparator, "key-separator", "", "split each value at the first SEP into key and value")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, "header KEY=VALUE of every record (repeatable)")
	fl.DurationVar(&f.opts.Linger, "linger", client.DefaultLinger, "how long a batch waits for more records")
	fl.IntVar(&f.opts.MaxBatchBytes, "batch-bytes", client.DefaultMaxBatchBytes, "largest batch, in bytes")
	fl.IntVar(&f.opts.MaxBatchRecords, "batch-records", client.DefaultMaxBatchRecords, "most records in a batch")
	fl.IntVar(&f.opts.MaxInFlight, "max-in-flight", client.DefaultMaxInFlight, "batches sent and not yet acknowledged")
	cmd.MarkFlagsMutuallyExclusive("key", "key-separator")
	return cmd
}

// produceSummary is what produce prints.
type produceSummary struct {
	Topic       string  `json:"topic"`
	Records     int     `json:"records"`
	Failed      int     `json:"failed"`
	FirstOffset *uint64 `json:"first_offset,omitempty"`
	LastOffset  *uint64 `json:"last_offset,omitempty"`
	firstErr    error
}

func (a *app) produce(cmd *cobra.Command, topic string, values []string, f produceFlags) error {
	headers := make([]client.Header, 0, len(f.headers))
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want KEY=VALUE", h)
		}
		headers = append(headers, client.Header{Key: k, Value: []byte(v)})
	}
	record := func(line []byte, n int) (client.Record, error) {
		rec := client.Record{Value: line, Headers: headers}
		if f.key != "" {
			rec.Key = []byte(f.key)
		}
		if f.keySeparator != "" {
			k, v, ok := bytes.Cut(line, []byte(f.keySeparator))
			if !ok {
				return rec, fmt.Errorf("record %d has no key separator %q: %.40q", n, f.keySeparator, line)
			}
			rec.Key, rec.Value = k, v
		}
		return rec, nil
	}

	c, err := a.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := client.NewProducer(c, topic, f.opts)
	if err != nil {
		return err
	}
	prog := a.startProgress("produced")
	type sent struct {
		r    client.Result
		size int
	}
	results := make(chan sent, 4096)
	summary := produceSummary{Topic: topic}
	tallied := make(chan struct{})
	go func() {
		defer close(tallied)
		for s := range results {
			off, err := s.r.Wait(context.Background())
			if err != nil {
				summary.Failed++
				if summary.firstErr == nil {
					summary.firstErr = err
				}
				continue
			}
			summary.Records++
			if summary.FirstOffset == nil {
				summary.FirstOffset = &off
			}
			summary.LastOffset = &off
			prog.add(1, s.size)
		}
	}()

	ctx := cmd.Context()
	send := func(line []byte, n int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := record(line, n)
		if err != nil {
			return err
		}
		results <- sent{p.Send(ctx, rec), len(rec.Key) + len(rec.Value)}
		return nil
	}
	var inputErr error
	if len(values) > 0 {
		for i, v := range values {
			if inputErr = send([]byte(v), i+1); inputErr != nil {
				break
			}
		}
	} else {
		sc := bufio.NewScanner(a.stdin)
		sc.Buffer(make([]byte, 64<<10), maxLineBytes)
		for n := 1; sc.Scan(); n++ {
			if inputErr = send(bytes.Clone(sc.Bytes()), n); inputErr != nil {
				break
			}
		}
		if err := sc.Err(); err != nil && inputErr == nil {
			inputErr = fmt.Errorf("reading stdin: %w (a line may be at most %d bytes)", err, maxLineBytes)
		}
	}
	closeErr := p.Close()
	close(results)
	<-tallied
	prog.finish()

	if err := a.printProduceSummary(summary); err != nil {
		return err
	}
	switch {
	case inputErr != nil:
		return inputErr
	case closeErr != nil:
		return closeErr
	case summary.Failed > 0:
		return fmt.Errorf("%d of %d records not written; the first error: %s",
			summary.Failed, summary.Failed+summary.Records, a.explain(summary.firstErr))
	}
	return nil
}

func (a *app) printProduceSummary(s produceSummary) error {
	if a.output == "json" {
		return printJSON(a.stdout, s)
	}
	var err error
	switch {
	case s.Records == 0 && s.Failed > 0:
		// The error says it all.
	case s.Records == 0:
		_, err = fmt.Fprintf(a.stdout, "produced no records to %q\n", s.Topic)
	case s.Records == 1:
		_, err = fmt.Fprintf(a.stdout, "produced 1 record to %q at offset %d\n", s.Topic, *s.FirstOffset)
	default:
		_, err = fmt.Fprintf(a.stdout, "produced %d records to %q, offsets %d to %d\n", s.Records, s.Topic, *s.FirstOffset, *s.LastOffset)
	}
	return err
}
