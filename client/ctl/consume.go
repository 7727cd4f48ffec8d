package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/spf13/cobra"
)

type consumeFlags struct {
	partition int
	offset    uint64
	fromTime  string
	latest    bool
	max       int
	follow    bool
}

func (a *app) consumeCommand() *cobra.Command {
	var f consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records, from the start, an offset or a time",
		Long: `Print a topic's records in offset order: each value on a line, or with --output json one JSON object
per line with the partition, offset, append time, key, headers and value (bytes that are not UTF-8
are given base64 in key_base64 and value_base64).

As Kafka's console consumer, it reads every partition of the topic, each in offset order and the
partitions interleaved as records arrive, unless --partition names one. --offset needs --partition on
a topic of several partitions (offsets are per partition).

It starts at the oldest record unless --offset, --from-time or --latest says otherwise, and stops at
the last record unless --follow keeps it waiting for new ones (until interrupted). If the connection
drops it reconnects and goes on after the last record it printed.`,
		Example: `  dislogctl consume orders
  dislogctl consume orders --offset 100 -n 10
  dislogctl consume clicks --partition 3 --offset 100
  dislogctl consume orders --from-time 15m -o json
  dislogctl consume orders --latest -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			from := client.Earliest()
			switch {
			case cmd.Flags().Changed("offset"):
				from = client.AtOffset(f.offset)
			case f.fromTime != "":
				t, err := parseTime(f.fromTime, time.Now())
				if err != nil {
					return err
				}
				from = client.AtTime(t)
			case f.latest:
				from = client.Latest()
			}
			partition := f.partition
			if cmd.Flags().Changed("offset") && partition < 0 {
				// Offsets are per partition: an offset alone means partition 0 of a topic that has
				// only that one.
				partition = 0
				err := a.call(cmd, func(ctx context.Context, c *client.Client) error {
					info, err := c.DescribeTopic(ctx, args[0])
					if err == nil && info.Partitions > 1 {
						return fmt.Errorf("--offset: topic %q has %d partitions, each with its own offsets: name one with --partition", args[0], info.Partitions)
					}
					return err
				})
				if err != nil {
					return err
				}
			}
			return a.consume(cmd, args[0], partition, from, f.follow, f.max)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.partition, "partition", "p", -1, "partition to read (default: every partition)")
	fl.Uint64Var(&f.offset, "offset", 0, "first offset to print (of --partition)")
	fl.StringVar(&f.fromTime, "from-time", "", "start at the first record appended at or after this time: RFC 3339 (2026-05-01T10:00:00Z) or a duration ago (15m)")
	fl.BoolVar(&f.latest, "latest", false, "print only records written from now on")
	fl.IntVarP(&f.max, "max-records", "n", 0, "stop after this many records (0: no limit)")
	fl.BoolVarP(&f.follow, "follow", "f", false, "wait for new records after the last one")
	cmd.MarkFlagsMutuallyExclusive("offset", "from-time", "latest")
	return cmd
}

func (a *app) tailCommand() *cobra.Command {
	var (
		lines     uint64
		follow    bool
		partition int
	)
	cmd := &cobra.Command{
		Use:   "tail TOPIC",
		Short: "Print a partition's last records, and with -f the new ones as they are written",
		Long: `Print the last records of one partition of a topic (--partition, default 0), and with -f the new ones
as they are written.`,
		Example: `  dislogctl tail orders
  dislogctl tail -f -n 0 orders`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var start uint64
			err := a.call(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.DescribeTopic(ctx, args[0])
				if err != nil {
					return err
				}
				lowest, next := info.LowestOffset, info.NextOffset
				switch {
				case partition < len(info.PartitionInfo):
					lowest, next = info.PartitionInfo[partition].LowestOffset, info.PartitionInfo[partition].NextOffset
				case partition > 0:
					return fmt.Errorf("--partition %d: topic %q has %d partitions", partition, args[0], info.Partitions)
				}
				start = next - min(lines, next-lowest)
				return nil
			})
			if err != nil {
				return err
			}
			return a.consume(cmd, args[0], partition, client.AtOffset(start), follow, 0)
		},
	}
	cmd.Flags().IntVarP(&partition, "partition", "p", 0, "partition to read")
	cmd.Flags().Uint64VarP(&lines, "lines", "n", 10, "how many of the last records to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "wait for new records after the last one")
	return cmd
}

// parseTime reads an RFC 3339 time, or a duration before now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--from-time %q: want an RFC 3339 time (2026-05-01T10:00:00Z) or a duration ago (15m)", s)
}

// consume prints the records of a partition of topic, or of every partition if partition is
// negative, from a position.
func (a *app) consume(cmd *cobra.Command, topic string, partition int, from client.Position, follow bool, max int) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()

	opts := []client.SubscribeOption{client.OnReconnect(func(err error, delay time.Duration) {
		fmt.Fprintf(a.stderr, "dislogctl: stream failed, reconnecting in %s: %s\n", delay, a.explain(err))
	})}
	if !follow {
		opts = append(opts, client.StopAtEnd())
	}
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	prog := a.startProgress("consumed")
	n := 0
	err = func() error {
		records := c.SubscribeAll(ctx, topic, from, opts...)
		if partition >= 0 {
			records = c.Subscribe(ctx, topic, from, append(opts, client.Partition(partition))...)
		}
		for rec, err := range records {
			if err != nil {
				return err
			}
			if err := a.printRecord(w, topic, rec); err != nil {
				return err
			}
			// Following, a record may be the last for a while: show it now.
			if follow {
				if err := w.Flush(); err != nil {
					return err
				}
			}
			prog.add(1, len(rec.Key)+len(rec.Value))
			if n++; n == max {
				return nil
			}
		}
		return nil
	}()
	prog.finish()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	// Interrupting a consume is how it ends when following.
	if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
		return nil
	}
	return err
}

func (a *app) printRecord(w io.Writer, topic string, rec client.Record) error {
	if a.output == "json" {
		return printJSON(w, newJSONRecord(topic, rec))
	}
	if _, err := w.Write(rec.Value); err != nil {
		return err
	}
	_, err := w.Write([]byte{'\n'})
	return err
}
