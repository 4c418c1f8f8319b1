package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/client"
)

func topicCmd() *cobra.Command {
	o := &groupOptions{}
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, grow and delete topics",
	}
	o.addFlags(cmd)
	cmd.AddCommand(topicCreateCmd(o), topicListCmd(o), topicDescribeCmd(o), topicAddPartitionsCmd(o), topicDeleteCmd(o))
	return cmd
}

func topicCreateCmd(o *groupOptions) *cobra.Command {
	var partitions int32
	var rf int16
	var configs []string
	cmd := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "Create topics; waits until every partition has a leader",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			cfg := map[string]string{}
			for _, kv := range configs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--topic-config %q: want key=value", kv)
				}
				cfg[k] = v
			}
			var made []client.TopicInfo
			for _, name := range args {
				if err := adm.CreateTopic(ctx, name, partitions, rf, cfg); err != nil {
					return err
				}
				made = append(made, client.TopicInfo{Name: name, Partitions: int(partitions), ReplicationFactor: int(rf)})
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), made)
			}
			for _, t := range made {
				fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", t.Name)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.Int32VarP(&partitions, "partitions", "p", -1, "partitions (-1: the brokers' num.partitions)")
	f.Int16VarP(&rf, "replicas", "r", -1, "replication factor (-1: the brokers' default.replication.factor)")
	f.StringArrayVarP(&configs, "topic-config", "c", nil, "topic config key=value (repeatable)")
	return cmd
}

func topicListCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every topic, internal ones included",
		Args:  cobra.NoArgs,
		RunE: o.withAdmin(func(cmd *cobra.Command, _ []string, ctx context.Context, adm *client.Admin) error {
			topics, err := adm.ListTopics(ctx)
			if err != nil {
				return err
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), topics)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPARTITIONS\tREPLICAS\tINTERNAL")
			for _, t := range topics {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", t.Name, t.Partitions, t.ReplicationFactor, t.Internal)
			}
			return tw.Flush()
		}),
	}
}

func topicDescribeCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "describe TOPIC...",
		Short: "Show a topic's partitions (leader, replicas, ISR, offsets) and its configs with their sources",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			return describeEach(o, cmd.OutOrStdout(), args, func(name string) (client.TopicDetail, error) {
				return adm.DescribeTopic(ctx, name)
			}, printTopic)
		}),
	}
}

func printTopic(w io.Writer, d client.TopicDetail) {
	fmt.Fprintf(w, "NAME         %s\nID           %s\nPARTITIONS   %d\nREPLICAS     %d\nINTERNAL     %v\n\n", d.Name, d.ID, d.Partitions, d.ReplicationFactor, d.Internal)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG-START-OFFSET\tHIGH-WATERMARK")
	for _, p := range d.PartitionDetails {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%v\t%v\t%d\t%d\n", p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, p.StartOffset, p.EndOffset)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, c := range d.Configs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Value, c.Source)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func topicAddPartitionsCmd(o *groupOptions) *cobra.Command {
	var add int
	cmd := &cobra.Command{
		Use:   "add-partitions TOPIC... --num N",
		Short: "Give topics N more partitions each",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			if add < 1 {
				return fmt.Errorf("--num %d: give at least one partition to add", add)
			}
			for _, name := range args {
				if err := adm.AddPartitions(ctx, name, add); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if o.format == "text" {
					fmt.Fprintf(cmd.OutOrStdout(), "added %d partitions to %s\n", add, name)
				}
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), map[string]any{"topics": args, "added": add})
			}
			return nil
		}),
	}
	cmd.Flags().IntVarP(&add, "num", "n", 0, "partitions to add")
	return cmd
}

func topicDeleteCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOPIC...",
		Short: "Delete topics and all their data",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			for _, name := range args {
				if err := adm.DeleteTopic(ctx, name); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if o.format == "text" {
					fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
				}
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), map[string]any{"deleted": args})
			}
			return nil
		}),
	}
}
