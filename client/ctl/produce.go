package ctl

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dislog/dislog/client"
	"github.com/spf13/cobra"
)

// maxLineBytes bounds a line read from stdin: a record larger than this could not be produced
// with the server's default limits anyway.
const maxLineBytes = 16 << 20

type produceFlags struct {
	partition    int
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

On a topic of several partitions, a record with a key goes to the partition of its key (murmur2, as
Kafka's default partitioner: the same key always lands on the same partition), and records without
a key go to one partition per batch; --partition sends every record to one partition.

Prints how many records were written and their offsets; with --output json, one object:
{"topic": ..., "records": ..., "failed": ..., "first_offset": ..., "last_offset": ...}, and, when
records went to a partition other than 0, "partitions": [{"partition": ..., "records": ...,
"first_offset": ..., "last_offset": ...}] (first_offset and last_offset only if they all went to one).
Exits with status 1 if any record was not written, naming the first error.`,
		Example: `  dislogctl produce orders paid shipped
  dislogctl produce orders --key o-17 -H source=web paid
  dislogctl produce clicks --partition 3 c1 c2
  printf 'o-1:paid\no-2:shipped\n' | dislogctl produce orders --key-separator :
  seq 1000000 | dislogctl produce numbers`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.produce(cmd, args[0], args[1:], f)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.partition, "partition", "p", -1, "partition every record goes to (default: by key, or a partition per batch for records without one)")
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
	Topic       string           `json:"topic"`
	Records     int              `json:"records"`
	Failed      int              `json:"failed"`
	FirstOffset *uint64          `json:"first_offset,omitempty"`
	LastOffset  *uint64          `json:"last_offset,omitempty"`
	Partitions  []partitionRange `json:"partitions,omitempty"`
	firstErr    error
	byPartition map[int]*partitionRange
}

// partitionRange is what produce wrote to one partition.
type partitionRange struct {
	Partition   int    `json:"partition"`
	Records     int    `json:"records"`
	FirstOffset uint64 `json:"first_offset"`
	LastOffset  uint64 `json:"last_offset"`
}

// add counts a record written at offset of partition.
func (s *produceSummary) add(partition int, off uint64) {
	s.Records++
	r := s.byPartition[partition]
	if r == nil {
		r = &partitionRange{Partition: partition, FirstOffset: off}
		s.byPartition[partition] = r
	}
	r.Records++
	r.LastOffset = off
}

// finish sets the offsets to print: first and last if the records went to one partition, and
// each partition's range if they went to any but partition 0, or a partition was named.
func (s *produceSummary) finish(named bool) {
	for _, r := range s.byPartition {
		s.Partitions = append(s.Partitions, *r)
	}
	slices.SortFunc(s.Partitions, func(a, b partitionRange) int { return a.Partition - b.Partition })
	if len(s.Partitions) == 1 {
		s.FirstOffset, s.LastOffset = &s.Partitions[0].FirstOffset, &s.Partitions[0].LastOffset
		if s.Partitions[0].Partition == 0 && !named {
			s.Partitions = nil
		}
	}
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
	if f.partition >= 0 {
		f.opts.Partitioner = client.FixedPartition(f.partition)
	}
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
	summary := produceSummary{Topic: topic, byPartition: map[int]*partitionRange{}}
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
			summary.add(s.r.Partition(), off)
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
	summary.finish(f.partition >= 0)

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
	where := fmt.Sprintf("%q", s.Topic)
	if len(s.Partitions) == 1 {
		where += fmt.Sprintf(" partition %d", s.Partitions[0].Partition)
	}
	switch {
	case s.Records == 0 && s.Failed > 0:
		// The error says it all.
	case s.Records == 0:
		_, err = fmt.Fprintf(a.stdout, "produced no records to %q\n", s.Topic)
	case len(s.Partitions) > 1:
		_, err = fmt.Fprintf(a.stdout, "produced %d records to %q, in %d partitions:\n", s.Records, s.Topic, len(s.Partitions))
		for _, r := range s.Partitions {
			if err == nil {
				_, err = fmt.Fprintf(a.stdout, "  partition %d: %d records, offsets %d to %d\n", r.Partition, r.Records, r.FirstOffset, r.LastOffset)
			}
		}
	case s.Records == 1:
		_, err = fmt.Fprintf(a.stdout, "produced 1 record to %s at offset %d\n", where, *s.FirstOffset)
	default:
		_, err = fmt.Fprintf(a.stdout, "produced %d records to %s, offsets %d to %d\n", s.Records, where, *s.FirstOffset, *s.LastOffset)
	}
	return err
}
