package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/client"
)

func txnCmd() *cobra.Command {
	o := &groupOptions{}
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "List and describe transactional ids and their transactions",
	}
	o.addFlags(cmd)
	cmd.AddCommand(txnListCmd(o), txnDescribeCmd(o))
	return cmd
}

func txnListCmd(o *groupOptions) *cobra.Command {
	var states []string
	var longer time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids with their state; --state Ongoing --longer-than 1m finds hanging transactions",
		Args:  cobra.NoArgs,
		RunE: o.withAdmin(func(cmd *cobra.Command, _ []string, ctx context.Context, adm *client.Admin) error {
			txns, err := adm.Transactions(ctx, states)
			if err != nil {
				return err
			}
			var kept []client.TxnInfo
			for _, t := range txns {
				if longer == 0 || t.RunningMs >= longer.Milliseconds() {
					kept = append(kept, t)
				}
			}
			if kept == nil {
				kept = []client.TxnInfo{}
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), kept)
			}
			printTxns(cmd.OutOrStdout(), kept)
			return nil
		}),
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort)")
	cmd.Flags().DurationVar(&longer, "longer-than", 0, "only transactions under way for at least this long")
	return cmd
}

func txnDescribeCmd(o *groupOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "describe TRANSACTIONAL-ID...",
		Short: "Show transactional ids: coordinator, producer id and epoch, state, how long the transaction has run, and its partitions",
		Args:  cobra.MinimumNArgs(1),
		RunE: o.withAdmin(func(cmd *cobra.Command, args []string, ctx context.Context, adm *client.Admin) error {
			txns, err := adm.Transactions(ctx, nil, args...)
			if err != nil {
				return err
			}
			if o.format == "json" {
				return o.printJSON(cmd.OutOrStdout(), txns)
			}
			printTxns(cmd.OutOrStdout(), txns)
			return nil
		}),
	}
}

func printTxns(w io.Writer, txns []client.TxnInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSACTIONAL-ID\tCOORDINATOR\tSTATE\tPRODUCER-ID\tEPOCH\tTIMEOUT\tRUNNING\tPARTITIONS")
	for _, t := range txns {
		running := "-"
		if t.RunningMs > 0 {
			running = (time.Duration(t.RunningMs) * time.Millisecond).Round(time.Millisecond).String()
		}
		parts := strings.Join(t.Partitions, ",")
		if parts == "" {
			parts = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", t.ID, t.Coordinator, t.State, t.ProducerID, t.ProducerEpoch,
			time.Duration(t.TimeoutMs)*time.Millisecond, running, parts)
	}
	tw.Flush()
}
