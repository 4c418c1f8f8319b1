package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type devOpts struct {
	nodes     int
	dataDir   string
	kafkaPort int
	host      string
	logLevel  string
}

func devCmd() *cobra.Command {
	o := devOpts{nodes: 3, dataDir: "./data/dev", kafkaPort: 9092, host: "127.0.0.1", logLevel: "info"}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster of quire brokers as separate processes",
		Long: `Start a local cluster: --nodes brokers, each its own process, Kafka on
127.0.0.1:9092, 9093, ... (admin on 9644, 9645, ...; node traffic on
33145, 33147, ...; gossip on 33146, 33148, ...), data and logs under
--data/nodeN. Auto-created topics get replication factor min(3, nodes).
Ctrl-C stops them all; running it again restarts the same cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDev(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", o.nodes, "number of brokers (1-9)")
	f.StringVar(&o.dataDir, "data", o.dataDir, "data directory; node N uses DATA/nodeN")
	f.IntVar(&o.kafkaPort, "kafka-port", o.kafkaPort, "Kafka port of node 1; node N uses kafka-port+N-1")
	f.StringVar(&o.host, "host", o.host, "address every listener binds and advertises")
	f.StringVar(&o.logLevel, "log-level", o.logLevel, "broker log level")
	return cmd
}

func devSpec(o devOpts, i int) localSpec {
	addr := func(port int) string { return net.JoinHostPort(o.host, strconv.Itoa(port)) }
	rf := min(3, o.nodes)
	return localSpec{
		ID:         i + 1,
		DataDir:    filepath.Join(o.dataDir, fmt.Sprintf("node%d", i+1)),
		KafkaAddr:  addr(o.kafkaPort + i),
		AdminAddr:  addr(9644 + i),
		NodeAddr:   addr(33145 + 2*i),
		GossipAddr: addr(33146 + 2*i),
		Extra: []string{"--bootstrap-expect", strconv.Itoa(o.nodes), "--join", addr(33146),
			"--default-replication-factor", strconv.Itoa(rf), "--log-level", o.logLevel},
	}
}

func runDev(ctx context.Context, o devOpts, out io.Writer) error {
	if o.nodes < 1 || o.nodes > 9 {
		return fmt.Errorf("--nodes %d: must be in [1, 9]", o.nodes)
	}
	type started struct {
		b   *localBroker
		err error
	}
	results := make(chan started, o.nodes)
	// All at once: the cluster forms only when bootstrap-expect nodes met.
	for i := 0; i < o.nodes; i++ {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			b, err := startLocalBroker(sctx, devSpec(o, i))
			results <- started{b, err}
		}()
	}
	var brokers []*localBroker
	var firstErr error
	for i := 0; i < o.nodes; i++ {
		r := <-results
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if r.b != nil {
			brokers = append(brokers, r.b)
		}
	}
	defer func() {
		for _, b := range brokers {
			b.Stop()
		}
		fmt.Fprintln(out, "quire dev: all brokers stopped")
	}()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(out, "quire dev: %d brokers running\n", o.nodes)
	for i := 0; i < o.nodes; i++ {
		sp := devSpec(o, i)
		fmt.Fprintf(out, "  broker %d  kafka %s  admin http://%s  log %s\n", sp.ID, sp.KafkaAddr, sp.AdminAddr, filepath.Join(sp.DataDir, "broker.log"))
	}
	fmt.Fprintf(out, "Try: kcat -b %s -L    (Ctrl-C stops the cluster)\n", devSpec(o, 0).KafkaAddr)
	exited := make(chan int, len(brokers))
	for _, b := range brokers {
		go func() {
			<-b.Exited()
			exited <- b.ID
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case id := <-exited:
		return fmt.Errorf("broker %d exited; see %s", id, filepath.Join(devSpec(o, id-1).DataDir, "broker.log"))
	}
}
