package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/dislog/dislog/client"
	"github.com/spf13/cobra"
)

func (a *app) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Create, list, describe and delete topics",
	}
	var conf client.TopicConfig
	create := &cobra.Command{
		Use:     "create TOPIC",
		Short:   "Create an empty topic",
		Example: "  dislogctl topics create orders --retention-age 168h\n  dislogctl topics create clicks --partitions 12 --replicas 3",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CreateTopic(ctx, args[0], conf)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, newJSONTopic(info))
				}
				_, err = fmt.Fprintf(a.stdout, "created topic %q (%s; retention: %s)\n", info.Topic, layout(info), retention(info.Config))
				return err
			})
		},
	}
	create.Flags().Int64Var(&conf.RetentionBytes, "retention-bytes", 0, "delete the oldest segments while the topic holds more bytes (0: keep all)")
	create.Flags().DurationVar(&conf.RetentionAge, "retention-age", 0, "delete segments whose records are all older than this (0: keep all)")
	create.Flags().IntVar(&conf.Partitions, "partitions", 1, "number of partitions, 1 to 1024: each is a Raft group with its own leader")
	create.Flags().IntVar(&conf.ReplicationFactor, "replicas", 0, "servers that hold each partition: 1, 3 or 5 (0: the cluster's default, 3 on three servers or more)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the topics you may use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				infos, err := c.ListTopics(ctx)
				if err != nil {
					return err
				}
				if a.output == "json" {
					out := make([]jsonTopic, len(infos))
					for i, t := range infos {
						out[i] = newJSONTopic(t)
					}
					return printJSON(a.stdout, out)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS\tRECORDS\tBYTES\tSEGMENTS\tRETENTION")
				for _, t := range infos {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", t.Topic, t.Partitions, replicas(t), records(t), t.Bytes, t.Segments, retention(t.Config))
				}
				return tw.Flush()
			})
		},
	}

	describe := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's partitions, with their leaders, replicas and offsets, its size and retention",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.DescribeTopic(ctx, args[0])
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, newJSONTopic(t))
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 1, ' ', 0)
				fmt.Fprintf(tw, "topic:\t%s\n", t.Topic)
				if len(t.PartitionInfo) == 0 {
					// A server from before partitions.
					fmt.Fprintf(tw, "lowest offset:\t%d\n", t.LowestOffset)
					fmt.Fprintf(tw, "next offset:\t%d\n", t.NextOffset)
				} else {
					fmt.Fprintf(tw, "partitions:\t%d\n", t.Partitions)
					fmt.Fprintf(tw, "replication factor:\t%d\n", t.ReplicationFactor)
				}
				fmt.Fprintf(tw, "records:\t%d\n", records(t))
				fmt.Fprintf(tw, "bytes:\t%d\n", t.Bytes)
				fmt.Fprintf(tw, "segments:\t%d\n", t.Segments)
				fmt.Fprintf(tw, "retention:\t%s\n", retention(t.Config))
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(t.PartitionInfo) == 0 {
					return nil
				}
				fmt.Fprintln(a.stdout)
				tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tIN-SYNC\tLOWEST\tNEXT\tBYTES")
				for _, p := range t.PartitionInfo {
					leader := p.Leader
					if leader == "" {
						leader = "(election)"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\n", p.Partition, leader,
						strings.Join(p.Replicas, ","), strings.Join(p.InSync, ","), p.LowestOffset, p.NextOffset, p.Bytes)
				}
				return tw.Flush()
			})
		},
	}

	del := &cobra.Command{
		Use:   "delete TOPIC",
		Short: "Delete a topic with its records and the consumer offsets committed on it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteTopic(ctx, args[0]); err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, map[string]any{"topic": args[0], "deleted": true})
				}
				_, err := fmt.Fprintf(a.stdout, "deleted topic %q\n", args[0])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, describe, del)
	return cmd
}

func (a *app) serversCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "servers",
		Short: "List the servers of the cluster and which one leads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				servers, err := c.GetServers(ctx)
				if err != nil {
					return err
				}
				if a.output == "json" {
					type jsonServer struct {
						ID        string `json:"id"`
						RPCAddr   string `json:"rpc_addr"`
						IsLeader  bool   `json:"is_leader"`
						IsVoter   bool   `json:"is_voter"`
						LastIndex uint64 `json:"last_index"`
					}
					out := make([]jsonServer, len(servers))
					for i, s := range servers {
						out[i] = jsonServer(s)
					}
					return printJSON(a.stdout, out)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tADDRESS\tLEADER\tVOTER\tLAST INDEX")
				for _, s := range servers {
					fmt.Fprintf(tw, "%s\t%s\t%t\t%t\t%d\n", s.ID, s.RPCAddr, s.IsLeader, s.IsVoter, s.LastIndex)
				}
				return tw.Flush()
			})
		},
	}
}

// jsonOffset is a consumer group's offset in --output json.
type jsonOffset struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    uint64 `json:"offset"`
	Committed bool   `json:"committed"`
}

// jsonLag is a consumer group's lag on one partition in --output json.
type jsonLag struct {
	Partition  int     `json:"partition"`
	Committed  *uint64 `json:"committed,omitempty"`
	NextOffset uint64  `json:"next_offset"`
	Lag        uint64  `json:"lag"`
}

func (a *app) offsetsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Commit and fetch consumer group offsets, and show a group's lag",
	}
	var partition int
	commit := &cobra.Command{
		Use:     "commit GROUP TOPIC OFFSET",
		Short:   "Record the next offset GROUP will read on a partition of TOPIC",
		Example: "  dislogctl offsets commit billing orders 1200\n  dislogctl offsets commit billing clicks 310 --partition 7",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, topic := args[0], args[1]
			offset, err := strconv.ParseUint(args[2], 10, 64)
			if err != nil {
				return fmt.Errorf("offset %q: want a number of 0 or more", args[2])
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.CommitPartitionOffset(ctx, group, topic, partition, offset); err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, jsonOffset{Group: group, Topic: topic, Partition: partition, Offset: offset, Committed: true})
				}
				if partition != 0 {
					_, err := fmt.Fprintf(a.stdout, "committed offset %d for group %q on topic %q partition %d\n", offset, group, topic, partition)
					return err
				}
				_, err := fmt.Fprintf(a.stdout, "committed offset %d for group %q on topic %q\n", offset, group, topic)
				return err
			})
		},
	}
	fetch := &cobra.Command{
		Use:   "fetch GROUP TOPIC",
		Short: "Print the offset GROUP committed on a partition of TOPIC",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, topic := args[0], args[1]
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				offset, ok, err := c.FetchPartitionOffset(ctx, group, topic, partition)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, jsonOffset{Group: group, Topic: topic, Partition: partition, Offset: offset, Committed: ok})
				}
				if !ok && partition != 0 {
					_, err = fmt.Fprintf(a.stdout, "group %q has committed no offset on topic %q partition %d\n", group, topic, partition)
					return err
				}
				if !ok {
					_, err = fmt.Fprintf(a.stdout, "group %q has committed no offset on topic %q\n", group, topic)
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "%d\n", offset)
				return err
			})
		},
	}
	commit.Flags().IntVarP(&partition, "partition", "p", 0, "partition of TOPIC")
	fetch.Flags().IntVarP(&partition, "partition", "p", 0, "partition of TOPIC")
	lag := &cobra.Command{
		Use:   "lag GROUP TOPIC",
		Short: "Show, for each partition of TOPIC, the offset GROUP committed, the next offset and the lag between them",
		Long: `Show, for each partition of TOPIC, the offset GROUP committed, the partition's next offset, and the
lag: how many records GROUP has yet to read (from the partition's lowest offset when it committed
none).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, topic := args[0], args[1]
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				lags, err := groupLag(ctx, c, group, topic)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, lags)
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tNEXT\tLAG")
				var total uint64
				for _, l := range lags {
					committed := "-"
					if l.Committed != nil {
						committed = strconv.FormatUint(*l.Committed, 10)
					}
					fmt.Fprintf(tw, "%d\t%s\t%d\t%d\n", l.Partition, committed, l.NextOffset, l.Lag)
					total += l.Lag
				}
				fmt.Fprintf(tw, "total\t\t\t%d\n", total)
				return tw.Flush()
			})
		},
	}
	cmd.AddCommand(commit, fetch, lag)
	return cmd
}

// groupLag returns group's lag on each partition of topic.
func groupLag(ctx context.Context, c *client.Client, group, topic string) ([]jsonLag, error) {
	t, err := c.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	parts := t.PartitionInfo
	if len(parts) == 0 {
		// A server from before partitions: one partition.
		parts = []client.PartitionInfo{{LowestOffset: t.LowestOffset, NextOffset: t.NextOffset}}
	}
	lags := make([]jsonLag, len(parts))
	for i, p := range parts {
		off, ok, err := c.FetchPartitionOffset(ctx, group, topic, p.Partition)
		if err != nil {
			return nil, err
		}
		l := jsonLag{Partition: p.Partition, NextOffset: p.NextOffset}
		from := p.LowestOffset
		if ok {
			l.Committed = &off
			from = max(off, p.LowestOffset)
		}
		l.Lag = p.NextOffset - min(from, p.NextOffset)
		lags[i] = l
	}
	return lags, nil
}
