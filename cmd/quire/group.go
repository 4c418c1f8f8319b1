package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/client"
)

// groupOptions are the flags every group (and txn) command shares.
type groupOptions struct {
	brokers string
	format  string
	timeout time.Duration
}

func groupCmd() *cobra.Command {
	o := &groupOptions{}
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete and seek consumer groups",
	}
	o.addFlags(cmd)
	cmd.AddCommand(groupListCmd(o), groupDescribeCmd(o), groupDeleteCmd(o), groupSeekCmd(o))
	return cmd
}

// addFlags adds the shared flags to an admin command family.
func (o *groupOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "bootstrap brokers host:port,...")
	f.StringVar(&o.format, "format", "text", "output format: text or json")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the cluster")
}

// admin connects, checking the output format first.
func (o *groupOptions) admin() (*client.Admin, context.Context, context.CancelFunc, error) {
	if o.format != "text" && o.format != "json" {
		return nil, nil, nil, fmt.Errorf("--format %q: want text or json", o.format)
	}
	adm, err := client.NewAdmin(client.SplitBrokers(o.brokers))
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	return adm, ctx, func() { cancel(); adm.Close() }, nil
}

// withAdmin gives a command's body the admin connection it needs.
func (o *groupOptions) withAdmin(body func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		adm, ctx, done, err := o.admin()
		if err != nil {
			return err
		}
		defer done()
		return body(cmd, args, ctx, adm)
	}
}

func (o *groupOptions) printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func groupListCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every consumer group with its state and coordinator",
		Args:  cobra.NoArgs,
		RunE: o.withAdmin(func(cmd *cobra.Command, _ []string, ctx context.Context, adm *client.Admin) error {
			groups, err := adm.ListGroups(ctx)
			if err != nil {
				return err
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), groups)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tCOORDINATOR\tSTATE\tTYPE\tPROTOCOL-TYPE")
			for _, g := range groups {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", g.Group, g.Coordinator, g.State, g.Type, g.ProtocolType)
			}
			return tw.Flush()
		}),
	}
}

func groupDescribeCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show a group's members, committed offsets, log end offsets and lag",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			return describeEach(o, cmd.OutOrStdout(), args, func(g string) (client.GroupDetail, error) {
				return adm.DescribeGroup(ctx, g)
			}, printGroup)
		}),
	}
}

// describeEach describes every name, then prints them all as one JSON
// list or one after the other as text.
func describeEach[T any](o *groupOptions, w io.Writer, names []string, describe func(string) (T, error), print func(io.Writer, T)) error {
	var all []T
	for _, name := range names {
		d, err := describe(name)
		if err != nil {
			return err
		}
		all = append(all, d)
	}
	if o.format == "json" {
		return o.printJSON(w, all)
	}
	for _, d := range all {
		print(w, d)
	}
	return nil
}

func printGroup(w io.Writer, d client.GroupDetail) {
	fmt.Fprintf(w, "GROUP        %s\nCOORDINATOR  %d\nSTATE        %s\nTYPE         %s\nPROTOCOL     %s\n", d.Group, d.Coordinator, d.State, d.Type, d.Protocol)
	if d.Type == "consumer" {
		fmt.Fprintf(w, "EPOCH        %d\n", d.Generation)
	}
	fmt.Fprintf(w, "MEMBERS      %d\nTOTAL-LAG    %d\n\n", len(d.Members), d.TotalLag)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER-ID\tCLIENT-ID\tHOST")
	for _, p := range d.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Topic, p.Partition, offsetText(p.Committed), p.LogEnd, p.Lag, p.Member, p.Client, p.Host)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func offsetText(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

func groupDeleteCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete empty groups and their committed offsets",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			type result struct {
				Group string `json:"group"`
				Error string `json:"error,omitempty"`
			}
			var results []result
			var failed error
			for _, g := range args {
				r := result{Group: g}
				if err := adm.DeleteGroup(ctx, g); err != nil {
					r.Error = err.Error()
					failed = fmt.Errorf("group %q: %w", g, err)
				}
				results = append(results, r)
			}
			if o.format == "json" {
				if err := o.printJSON(cmd.OutOrStdout(), results); err != nil {
					return err
				}
				return failed
			}
			for _, r := range results {
				if r.Error == "" {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\tdeleted\n", r.Group)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", r.Group, r.Error)
				}
			}
			return failed
		}),
	}
}

func groupSeekCmd(o *groupOptions) *cobra.Command {
	var to string
	var topics []string
	cmd := &cobra.Command{
		Use:   "seek GROUP --to start|end|OFFSET|@TIMESTAMP_MS",
		Short: "Move an empty group's committed offsets",
		Long: `Move a group's committed offsets, for every topic it committed to or for
--topics. --to takes start, end, an offset, or @ and a timestamp in
milliseconds (the first record at or after it). A group with active members
is refused: stop its consumers first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := parseSeekTarget(to)
			if err != nil {
				return err
			}
			adm, ctx, done, err := o.admin()
			if err != nil {
				return err
			}
			defer done()
			moved, err := adm.SeekGroup(ctx, args[0], topics, target)
			if err != nil {
				return err
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), moved)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW-OFFSET")
			for _, p := range moved {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", p.Topic, p.Partition, p.Committed)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "start, end, an offset, or @timestamp_ms")
	cmd.Flags().StringSliceVar(&topics, "topics", nil, "topics to seek (default: every topic the group committed to)")
	cmd.MarkFlagRequired("to")
	return cmd
}

func parseSeekTarget(s string) (client.SeekTarget, error) {
	switch {
	case s == "start":
		return client.SeekTarget{Start: true}, nil
	case s == "end":
		return client.SeekTarget{End: true}, nil
	case strings.HasPrefix(s, "@"):
		ts, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil || ts <= 0 {
			return client.SeekTarget{}, fmt.Errorf("--to %q: want @ and a timestamp in milliseconds", s)
		}
		return client.SeekTarget{Timestamp: ts}, nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil || off < 0 {
		return client.SeekTarget{}, fmt.Errorf("--to %q: want start, end, an offset or @timestamp_ms", s)
	}
	return client.SeekTarget{Offset: off}, nil
}
