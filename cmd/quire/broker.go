package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/quirelog/quire/cluster"
)

func brokerCmd() *cobra.Command {
	cfg := cluster.DefaultConfig()
	var logLevel, logFormat string
	memLimit := int64(448 << 20)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run one Quire node",
		Long: `Run one Quire node. With no flags it serves Kafka on 127.0.0.1:9092,
metrics and health on 127.0.0.1:9644, and keeps its data under ./data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := newLogger(logLevel, logFormat)
			setMemoryLimit(memLimit, logger)
			node, err := cluster.Start(cfg, logger)
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			logger.Info("shutting down", "signal", s.String())
			return node.Close()
		},
	}
	f := cmd.Flags()
	f.Int32Var(&cfg.NodeID, "id", cfg.NodeID, "broker id, unique in the cluster")
	f.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	f.StringVar(&cfg.Kafka.Addr, "kafka-addr", cfg.Kafka.Addr, "Kafka listener host:port")
	f.StringVar(&cfg.AdvertiseKafkaAddr, "advertise-kafka-addr", "", "host:port clients should dial, when it differs from --kafka-addr")
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "metrics, health and pprof HTTP host:port (empty disables)")
	f.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on Metadata requests (auto.create.topics.enable)")
	f.Int32Var(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics (num.partitions)")
	f.Int32Var(&cfg.Kafka.MaxRequestBytes, "max-request-bytes", cfg.Kafka.MaxRequestBytes, "largest Kafka request accepted, bytes (socket.request.max.bytes)")
	f.IntVar(&cfg.MaxPartitionsPerNode, "max-partitions-per-node", cfg.MaxPartitionsPerNode, "partition replicas one node may host")
	f.Int64Var(&cfg.Kafka.MaxQueuedBytes, "max-queued-request-bytes", cfg.Kafka.MaxQueuedBytes, "bytes of requests read but not yet answered, all connections (queued.max.request.bytes)")
	f.Int32Var(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest record batch accepted, bytes (max.message.bytes)")
	f.Int64Var(&cfg.Log.SegmentBytes, "segment-bytes", cfg.Log.SegmentBytes, "segment size before rolling, bytes (segment.bytes)")
	f.Int64Var(&memLimit, "memory-limit", memLimit, "soft limit for the Go heap, bytes; the GC works harder near it (GOMEMLIMIT overrides; 0 = none)")
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(level, format string) hclog.Logger {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		fmt.Fprintf(os.Stderr, "quire: unknown log level %q, using info\n", level)
		lvl = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "quire",
		Level:      lvl,
		JSONFormat: format == "json",
		Output:     os.Stderr,
	})
}

// setMemoryLimit makes the garbage collector keep the heap near limit.
// Produce traffic allocates several times its volume in short-lived
// buffers (raft's log encoding, bbolt pages), so without a limit the heap
// doubles between collections.
func setMemoryLimit(limit int64, logger hclog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	logger.Debug("heap soft limit set", "bytes", limit)
}
