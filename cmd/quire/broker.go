package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/quirelog/quire/cluster"
)

func brokerCmd() *cobra.Command {
	cfg := cluster.DefaultConfig()
	var logLevel, logFormat, configFile string
	cfg.MemoryLimit = 448 << 20
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run one Quire node",
		Long: `Run one Quire node. With no flags it serves Kafka on 127.0.0.1:9092,
metrics and health on 127.0.0.1:9644, node traffic on 127.0.0.1:33145 and
gossip on 127.0.0.1:33146, keeps its data under ./data, and forms a
one-node cluster.

Every flag can also come from a YAML config file (--config; keys are the
flag names, e.g. "kafka-addr: 0.0.0.0:9092", "join: [a:33146, b:33146]")
or from QUIRE_<FLAG> environment variables (QUIRE_KAFKA_ADDR, QUIRE_JOIN
as a comma-separated list). A flag on the command line beats the
environment, which beats the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applySettings(cmd.Flags(), configFile); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			logger := newLogger(logLevel, logFormat)
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
	f.StringVar(&configFile, "config", "", "YAML file of flag settings")
	f.StringVar(&cfg.NodeAddr, "node-addr", cfg.NodeAddr, "node-to-node listener host:port (all Raft groups and internal RPCs)")
	f.StringVar(&cfg.AdvertiseNodeAddr, "advertise-node-addr", "", "host:port peers should dial, when it differs from --node-addr")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", cfg.GossipAddr, "gossip (memberlist) host:port, TCP and UDP")
	f.StringVar(&cfg.AdvertiseGossipAddr, "advertise-gossip-addr", "", "gossip host:port peers should use, when it differs from --gossip-addr")
	f.StringSliceVar(&cfg.Join, "join", nil, "gossip addresses of other nodes, comma-separated; retried until one answers")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "controller-eligible nodes that must meet before a new cluster forms")
	f.StringVar(&cfg.Rack, "rack", "", "rack (failure domain) for rack-aware replica placement")
	f.BoolVar(&cfg.Controller, "controller", cfg.Controller, "eligible to vote in the metadata (controller) group")
	f.Int16Var(&cfg.DefaultReplicationFactor, "default-replication-factor", cfg.DefaultReplicationFactor, "replication factor of auto-created topics (default.replication.factor)")
	f.DurationVar(&cfg.ReplicaLagTimeMax, "replica-lag-time-max", cfg.ReplicaLagTimeMax, "a follower leaves the ISR after failing heartbeats this long (replica.lag.time.max.ms)")
	f.DurationVar(&cfg.LeaderRebalanceInterval, "leader-rebalance-interval", cfg.LeaderRebalanceInterval, "how often leadership returns to preferred replicas that are in sync (0 disables)")
	f.DurationVar(&cfg.ElectionTimeout, "election-timeout", cfg.ElectionTimeout, "Raft heartbeat and election timeout of the metadata (controller) group")
	f.DurationVar(&cfg.GroupTimeout, "raft-group-timeout", cfg.GroupTimeout, "Raft heartbeat, election and lease timeout of partition groups: a fallback, as node liveness elects their leaders; an idle partition costs a heartbeat per follower every tenth of it")
	f.DurationVar(&cfg.LivenessTimeout, "liveness-timeout", cfg.LivenessTimeout, "a peer that leaves this node's pings unanswered this long counts as down: its partitions get new leaders")
	f.StringVar(&cfg.RaftLog, "raft-log", cfg.RaftLog, "where partition groups keep their Raft logs: shared (one log per node, one fsync per round for all partitions) or per-group (a raft.db per partition)")
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "metrics, health and pprof HTTP host:port (empty disables)")
	f.BoolVar(&cfg.AutoCreateTopics, "auto-create-topics", cfg.AutoCreateTopics, "create unknown topics on Metadata requests (auto.create.topics.enable)")
	f.Int32Var(&cfg.DefaultPartitions, "default-partitions", cfg.DefaultPartitions, "partitions of auto-created topics (num.partitions)")
	f.Int32Var(&cfg.OffsetsTopicPartitions, "offsets-topic-partitions", cfg.OffsetsTopicPartitions, "partitions of __consumer_offsets when it is created; each one's leader coordinates the groups hashed to it (offsets.topic.num.partitions)")
	f.Int32Var(&cfg.TransactionStatePartitions, "transaction-state-partitions", cfg.TransactionStatePartitions, "partitions of __transaction_state when it is created; each one's leader coordinates the transactional ids hashed to it (transaction.state.log.num.partitions)")
	f.Int16Var(&cfg.TransactionStateReplicationFactor, "transaction-state-replication-factor", cfg.TransactionStateReplicationFactor, "replication factor of __transaction_state, lowered to the live brokers (transaction.state.log.replication.factor)")
	f.DurationVar(&cfg.Txn.MaxTimeout, "transaction-max-timeout", cfg.Txn.MaxTimeout, "longest transaction timeout a producer may ask for (transaction.max.timeout.ms)")
	f.Int64Var(&cfg.InternalSegmentBytes, "internal-topic-segment-bytes", cfg.InternalSegmentBytes, "segment.bytes of __consumer_offsets and __transaction_state when they are created; they are compacted, closed segments only (offsets.topic.segment.bytes)")
	f.Int16Var(&cfg.OffsetsTopicReplicationFactor, "offsets-topic-replication-factor", cfg.OffsetsTopicReplicationFactor, "replication factor of __consumer_offsets, lowered to the live brokers (offsets.topic.replication.factor)")
	f.DurationVar(&cfg.Groups.MinSessionTimeout, "group-min-session-timeout", cfg.Groups.MinSessionTimeout, "shortest session timeout a group member may ask for (group.min.session.timeout.ms)")
	f.DurationVar(&cfg.Groups.MaxSessionTimeout, "group-max-session-timeout", cfg.Groups.MaxSessionTimeout, "longest session timeout a group member may ask for (group.max.session.timeout.ms)")
	f.DurationVar(&cfg.Groups.InitialRebalanceDelay, "group-initial-rebalance-delay", cfg.Groups.InitialRebalanceDelay, "how long an empty group's first rebalance waits for more members (group.initial.rebalance.delay.ms)")
	f.IntVar(&cfg.Groups.MaxGroupSize, "group-max-size", cfg.Groups.MaxGroupSize, "most members one group may have (group.max.size)")
	f.DurationVar(&cfg.Groups.ConsumerSessionTimeout, "group-consumer-session-timeout", cfg.Groups.ConsumerSessionTimeout, "session timeout of next-generation (KIP-848) consumer group members (group.consumer.session.timeout.ms)")
	f.DurationVar(&cfg.Groups.ConsumerHeartbeatInterval, "group-consumer-heartbeat-interval", cfg.Groups.ConsumerHeartbeatInterval, "heartbeat interval of next-generation consumer group members; a member that is reconciling heartbeats 5x as often (group.consumer.heartbeat.interval.ms)")
	f.StringVar(&cfg.Groups.ConsumerAssignor, "group-consumer-assignor", cfg.Groups.ConsumerAssignor, "server-side assignor of next-generation consumer groups whose members ask for none: uniform or range")
	f.DurationVar(&cfg.ProducerIDExpiration, "producer-id-expiration", cfg.ProducerIDExpiration, "how long a partition remembers an idle idempotent producer's sequence numbers after its last write there; one with an open transaction is kept (producer.id.expiration.ms)")
	f.DurationVar(&cfg.Groups.OffsetsRetention, "offsets-retention", cfg.Groups.OffsetsRetention, "how long an empty group's commits are kept after its last commit (or after it became empty, if later); the group is then deleted; 0 keeps them for ever (offsets.retention.minutes)")
	f.BoolVar(&cfg.GroupLagPartitionMetrics, "group-lag-partition-metrics", false, "export quire_group_partition_lag, one series per group and partition, besides the per-group max and sum")
	f.Int32Var(&cfg.Kafka.MaxRequestBytes, "max-request-bytes", cfg.Kafka.MaxRequestBytes, "largest Kafka request accepted, bytes (socket.request.max.bytes)")
	f.IntVar(&cfg.MaxPartitionsPerNode, "max-partitions-per-node", cfg.MaxPartitionsPerNode, "partition replicas one node may host")
	f.Int64Var(&cfg.Kafka.MaxQueuedBytes, "max-queued-request-bytes", cfg.Kafka.MaxQueuedBytes, "bytes of requests read but not yet answered, all connections (queued.max.request.bytes)")
	f.Int32Var(&cfg.MaxMessageBytes, "max-message-bytes", cfg.MaxMessageBytes, "largest record batch accepted, bytes (max.message.bytes)")
	f.Int64Var(&cfg.Log.SegmentBytes, "segment-bytes", cfg.Log.SegmentBytes, "segment size before rolling, bytes (segment.bytes)")
	f.Int64Var(&cfg.MemoryLimit, "memory-limit", cfg.MemoryLimit, "soft limit for the Go heap with no partitions, bytes; each hosted partition replica adds 40 KiB; the GC works harder near it (GOMEMLIMIT overrides; 0 = none)")
	f.BoolVar(&cfg.FaultInjection, "enable-fault-injection", false, "serve /debug/faults so `quire chaos run` can cut this node's network (test clusters only)")
	f.BoolVar(&cfg.Log.PowerLossJournal, "power-loss-journal", false, "record fsync'd file sizes so `quire chaos run` can simulate power loss on this node (test clusters only)")
	f.DurationVar(&cfg.RetentionCheckInterval, "retention-check-interval", cfg.RetentionCheckInterval, "how often each partition leader looks for segments past retention (log.retention.check.interval.ms)")
	f.DurationVar(&cfg.CompactionCheckInterval, "compaction-check-interval", cfg.CompactionCheckInterval, "how often each leader of a compacted partition checks whether enough of its log is dirty to compact (log.cleaner.backoff.ms)")
	f.Int64Var(&cfg.CompactionMaxBytesPerSec, "compaction-max-bytes-per-sec", 0, "cap on how fast a compaction pass reads segments, bytes/s; 0 for none (log.cleaner.io.max.bytes.per.second)")
	for _, d := range cluster.BrokerDefaults() {
		f.Var(brokerDefaultFlag{cfg: &cfg, name: d.Name}, d.Name, "default of topic config "+d.Topic+": "+d.Doc)
	}
	f.StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// brokerDefaultFlag is a topic config's broker default under its Kafka
// name (--log.retention.ms), checked as it is set.
type brokerDefaultFlag struct {
	cfg  *cluster.Config
	name string
}

func (f brokerDefaultFlag) String() string {
	if f.cfg == nil {
		return ""
	}
	return f.cfg.BrokerDefault(f.name)
}
func (f brokerDefaultFlag) Set(v string) error { return f.cfg.SetBrokerDefault(f.name, v) }
func (f brokerDefaultFlag) Type() string       { return "string" }

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
