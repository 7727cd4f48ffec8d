package ctl

import (
	"context"
	"fmt"
	"strconv"
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
		Example: "  dislogctl topics create orders --retention-age 168h",
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
				_, err = fmt.Fprintf(a.stdout, "created topic %q (retention: %s)\n", info.Topic, retention(info.Config))
				return err
			})
		},
	}
	create.Flags().Int64Var(&conf.RetentionBytes, "retention-bytes", 0, "delete the oldest segments while the topic holds more bytes (0: keep all)")
	create.Flags().DurationVar(&conf.RetentionAge, "retention-age", 0, "delete segments whose records are all older than this (0: keep all)")

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
				fmt.Fprintln(tw, "TOPIC\tLOWEST\tNEXT\tBYTES\tSEGMENTS\tRETENTION")
				for _, t := range infos {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", t.Topic, t.LowestOffset, t.NextOffset, t.Bytes, t.Segments, retention(t.Config))
				}
				return tw.Flush()
			})
		},
	}

	describe := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Show a topic's offsets, size and retention",
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
				fmt.Fprintf(tw, "lowest offset:\t%d\n", t.LowestOffset)
				fmt.Fprintf(tw, "next offset:\t%d\n", t.NextOffset)
				fmt.Fprintf(tw, "records:\t%d\n", t.NextOffset-t.LowestOffset)
				fmt.Fprintf(tw, "bytes:\t%d\n", t.Bytes)
				fmt.Fprintf(tw, "segments:\t%d\n", t.Segments)
				fmt.Fprintf(tw, "retention:\t%s\n", retention(t.Config))
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
	Offset    uint64 `json:"offset"`
	Committed bool   `json:"committed"`
}

func (a *app) offsetsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offsets",
		Short: "Commit and fetch consumer group offsets",
	}
	commit := &cobra.Command{
		Use:     "commit GROUP TOPIC OFFSET",
		Short:   "Record the next offset GROUP will read on TOPIC",
		Example: "  dislogctl offsets commit billing orders 1200",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, topic := args[0], args[1]
			offset, err := strconv.ParseUint(args[2], 10, 64)
			if err != nil {
				return fmt.Errorf("offset %q: want a number of 0 or more", args[2])
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.CommitOffset(ctx, group, topic, offset); err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, jsonOffset{Group: group, Topic: topic, Offset: offset, Committed: true})
				}
				_, err := fmt.Fprintf(a.stdout, "committed offset %d for group %q on topic %q\n", offset, group, topic)
				return err
			})
		},
	}
	fetch := &cobra.Command{
		Use:   "fetch GROUP TOPIC",
		Short: "Print the offset GROUP committed on TOPIC",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			group, topic := args[0], args[1]
			return a.call(cmd, func(ctx context.Context, c *client.Client) error {
				offset, ok, err := c.FetchOffset(ctx, group, topic)
				if err != nil {
					return err
				}
				if a.output == "json" {
					return printJSON(a.stdout, jsonOffset{Group: group, Topic: topic, Offset: offset, Committed: ok})
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
	cmd.AddCommand(commit, fetch)
	return cmd
}
