package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/quirelog/quire/client"
)

func topicCmd() *cobra.Command {
	o := &groupOptions{}
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, configure, grow, trim and delete topics",
	}
	o.addFlags(cmd)
	cmd.AddCommand(topicCreateCmd(o), topicListCmd(o), topicDescribeCmd(o), topicAlterConfigCmd(o), topicAddPartitionsCmd(o),
		topicTrimPrefixCmd(o), topicDeleteCmd(o))
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
	printConfigs(w, d.Configs)
}

func printConfigs(w io.Writer, cfgs []client.ConfigInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, c := range cfgs {
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

func topicAlterConfigCmd(o *groupOptions) *cobra.Command {
	var set, del, appendTo, subtract []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "alter-config TOPIC... [--set k=v] [--delete k] [--append k=v] [--subtract k=v]",
		Short: "Change topic configs; every broker applies them without a restart, and describe shows the result",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			var changes []client.ConfigChange
			for _, g := range []struct {
				kvs []string
				op  kadm.IncrementalOp
			}{{set, kadm.SetConfig}, {appendTo, kadm.AppendConfig}, {subtract, kadm.SubtractConfig}} {
				for _, kv := range g.kvs {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("%q: want key=value", kv)
					}
					changes = append(changes, client.ConfigChange{Name: k, Value: v, Op: g.op})
				}
			}
			for _, k := range del {
				changes = append(changes, client.ConfigChange{Name: k, Op: kadm.DeleteConfig})
			}
			if len(changes) == 0 {
				return fmt.Errorf("nothing to change: give --set, --delete, --append or --subtract")
			}
			var details []client.TopicDetail
			for _, name := range args {
				if err := adm.AlterTopicConfig(ctx, name, changes, dryRun); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				d, err := adm.DescribeTopic(ctx, name)
				if err != nil {
					return err
				}
				details = append(details, d)
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), details)
			}
			for _, d := range details {
				verb := "altered"
				if dryRun {
					verb = "validated (nothing changed)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", verb, d.Name)
				printConfigs(cmd.OutOrStdout(), d.Configs)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&set, "set", nil, "set config key=value (repeatable)")
	f.StringArrayVar(&del, "delete", nil, "remove the topic's own value of a config, back to the broker default (repeatable)")
	f.StringArrayVar(&appendTo, "append", nil, "add items to a list config, key=item[,item] (repeatable)")
	f.StringArrayVar(&subtract, "subtract", nil, "remove items from a list config, key=item[,item] (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "only validate the change")
	return cmd
}

func topicTrimPrefixCmd(o *groupOptions) *cobra.Command {
	var partitions []int32
	var offset int64
	cmd := &cobra.Command{
		Use:   "trim-prefix TOPIC --offset N [--partitions 0,1]",
		Short: "Delete every record below an offset (DeleteRecords): the log start offset moves on every replica",
		Args:  cobra.ExactArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			if offset < -1 {
				return fmt.Errorf("--offset %d: give an offset, or -1 for the high watermark", offset)
			}
			res, err := adm.TrimPrefix(ctx, args[0], partitions, offset)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range res {
				if r.Error != "" {
					failed++
				}
			}
			if o.format == "json" {
				if err := o.printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PARTITION\tLOG-START-OFFSET\tERROR")
				for _, r := range res {
					fmt.Fprintf(tw, "%d\t%d\t%s\n", r.Partition, r.StartOffset, r.Error)
				}
				tw.Flush()
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d partitions not trimmed", failed, len(res))
			}
			return nil
		}),
	}
	cmd.Flags().Int32SliceVarP(&partitions, "partitions", "p", nil, "partitions to trim (default: all)")
	cmd.Flags().Int64VarP(&offset, "offset", "o", 0, "new log start offset; -1 for the high watermark")
	cmd.MarkFlagRequired("offset")
	return cmd
}
