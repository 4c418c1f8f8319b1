package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/quirelog/quire/chaos"
)

func chaosCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Fault-injection runs and their consistency checkers",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Re-check a recorded history (JSON lines) offline",
		Long: `Run every consistency checker over a recorded history: lost writes,
inconsistent offsets, duplicates, per-producer reorders, consumer skips and
rewinds, values nobody produced; then availability. Exits 1 when any
checker finds a violation.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			h, err := chaos.ReadHistory(f)
			if err != nil {
				return err
			}
			return reportHistory(cmd.OutOrStdout(), h)
		},
	})
	cmd.AddCommand(chaosRunCmd())
	return cmd
}

var errViolations = errors.New("consistency violations found")

func reportHistory(out io.Writer, h []chaos.Op) error {
	fmt.Fprintf(out, "%d operations\n\n| checker | checked | violations |\n|---|---|---|\n", len(h))
	results := chaos.CheckAll(h)
	bad := false
	for _, r := range results {
		fmt.Fprintf(out, "| %s | %d | %d |\n", r.Name, r.Checked, r.Violations)
		bad = bad || r.Violations > 0
	}
	for _, r := range results {
		if r.Violations > 0 {
			fmt.Fprintf(out, "\n%s\n", r)
		}
	}
	a := chaos.CheckAvailability(h)
	fmt.Fprintf(out, "\navailability: %d of %d produces acknowledged (%.1f%%); time from heal to first acknowledged write: %v; heals never followed by one: %d\n",
		a.OK, a.Invoked, 100*a.OKFraction, a.Heals, a.Unrecovered)
	if bad {
		return errViolations
	}
	return nil
}
