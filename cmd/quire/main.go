// Command quire is the Quire broker and its command-line tool.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "quire",
		Short:         "Quire: a Raft-replicated log store that speaks the Kafka protocol",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(brokerCmd(), devCmd(), benchCmd(), chaosCmd(), groupCmd(), txnCmd(), topicCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "quire:", err)
		os.Exit(1)
	}
}
