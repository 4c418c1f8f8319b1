package cluster

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/kafkaerr"
)

// configDef is one config Quire honours, under Kafka's names: the topic
// config (empty for broker-only ones) and the broker config that is its
// default, with the value this broker runs with.
type configDef struct {
	topic, broker string
	typ           kmsg.ConfigType
	doc           string
	value         func(c Config) string
}

func itoa[T ~int | ~int16 | ~int32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// configDefs are every config DescribeConfigs reports, in its order.
var configDefs = []configDef{
	{"segment.bytes", "log.segment.bytes", kmsg.ConfigTypeInt, "Size at which a partition's active segment is rolled.",
		func(c Config) string { return itoa(c.Log.SegmentBytes) }},
	{"segment.ms", "log.roll.ms", kmsg.ConfigTypeLong, "Age at which a partition's active segment is rolled.",
		func(c Config) string { return itoa(c.Log.SegmentMs.Milliseconds()) }},
	{"index.interval.bytes", "log.index.interval.bytes", kmsg.ConfigTypeInt, "Bytes between entries of a segment's offset index.",
		func(c Config) string { return itoa(c.Log.IndexIntervalBytes) }},
	{"max.message.bytes", "message.max.bytes", kmsg.ConfigTypeInt, "Largest record batch a producer may send.",
		func(c Config) string { return itoa(c.MaxMessageBytes) }},
	{"min.insync.replicas", "min.insync.replicas", kmsg.ConfigTypeInt, "In-sync replicas (Raft voters caught up) an acks=all produce needs.",
		func(Config) string { return "1" }},
	{"message.timestamp.type", "log.message.timestamp.type", kmsg.ConfigTypeString, "CreateTime (the producer's) or LogAppendTime (the leader's, when it takes the batch).",
		func(Config) string { return "CreateTime" }},
	{"", "broker.id", kmsg.ConfigTypeInt, "This broker's id.",
		func(c Config) string { return itoa(c.NodeID) }},
	{"", "broker.rack", kmsg.ConfigTypeString, "This broker's rack.",
		func(c Config) string { return c.Rack }},
	{"", "auto.create.topics.enable", kmsg.ConfigTypeBoolean, "Whether Metadata creates the unknown topics it is asked for.",
		func(c Config) string { return strconv.FormatBool(c.AutoCreateTopics) }},
	{"", "num.partitions", kmsg.ConfigTypeInt, "Partitions of a topic created without a count.",
		func(c Config) string { return itoa(c.DefaultPartitions) }},
	{"", "default.replication.factor", kmsg.ConfigTypeInt, "Replication factor of a topic created without one.",
		func(c Config) string { return itoa(c.DefaultReplicationFactor) }},
	{"", "offsets.topic.num.partitions", kmsg.ConfigTypeInt, "Partitions of __consumer_offsets.",
		func(c Config) string { return itoa(c.OffsetsTopicPartitions) }},
	{"", "offsets.topic.replication.factor", kmsg.ConfigTypeShort, "Replication factor of __consumer_offsets.",
		func(c Config) string { return itoa(c.OffsetsTopicReplicationFactor) }},
	{"", "transaction.state.log.num.partitions", kmsg.ConfigTypeInt, "Partitions of __transaction_state.",
		func(c Config) string { return itoa(c.TransactionStatePartitions) }},
	{"", "transaction.state.log.replication.factor", kmsg.ConfigTypeShort, "Replication factor of __transaction_state.",
		func(c Config) string { return itoa(c.TransactionStateReplicationFactor) }},
	{"", "transaction.max.timeout.ms", kmsg.ConfigTypeInt, "Longest transaction timeout a producer may ask for.",
		func(c Config) string { return itoa(c.Txn.MaxTimeout.Milliseconds()) }},
	{"", "producer.id.expiration.ms", kmsg.ConfigTypeInt, "How long a partition keeps an idle producer's sequence numbers.",
		func(c Config) string { return itoa(c.ProducerIDExpiration.Milliseconds()) }},
	{"", "socket.request.max.bytes", kmsg.ConfigTypeInt, "Largest request frame the Kafka listener reads.",
		func(c Config) string { return itoa(c.Kafka.MaxRequestBytes) }},
	{"", "queued.max.request.bytes", kmsg.ConfigTypeLong, "Bytes of requests read and not yet answered, over all connections.",
		func(c Config) string { return itoa(c.Kafka.MaxQueuedBytes) }},
	{"", "connections.max.idle.ms", kmsg.ConfigTypeLong, "Idle time after which a client connection is closed.",
		func(c Config) string { return itoa(c.Kafka.IdleTimeout.Milliseconds()) }},
}

// describeConfigs answers DescribeConfigs for one resource: a topic's
// configs (set on the topic, or the broker's value), or this broker's.
// Every value is read-only until configs can be altered. Broker values are
// reported as static broker configs, whether a flag set them or they are
// the built-in default: the node does not keep that apart.
func (n *Node) describeConfigs(typ kmsg.ConfigResourceType, name string) ([]kafkaapi.ConfigValue, error) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		t, ok := n.meta.state().Topics[name]
		if !ok {
			return nil, kafkaerr.Errorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		var out []kafkaapi.ConfigValue
		for _, d := range configDefs {
			if d.topic == "" {
				continue
			}
			brokerSyn := kafkaapi.ConfigSynonym{Name: d.broker, Value: d.value(n.cfg), Source: kmsg.ConfigSourceStaticBrokerConfig}
			cv := kafkaapi.ConfigValue{Name: d.topic, Value: brokerSyn.Value, Source: brokerSyn.Source, ReadOnly: true,
				Type: d.typ, Doc: d.doc, Synonyms: []kafkaapi.ConfigSynonym{brokerSyn}}
			if v, ok := t.Configs[d.topic]; ok {
				cv.Value, cv.Source = v, kmsg.ConfigSourceDynamicTopicConfig
				cv.Synonyms = append([]kafkaapi.ConfigSynonym{{Name: d.topic, Value: v, Source: cv.Source}}, cv.Synonyms...)
			}
			out = append(out, cv)
		}
		return out, nil
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != strconv.Itoa(int(n.cfg.NodeID)) {
			return nil, kafkaerr.Errorf(kerr.InvalidRequest, "broker %s's configs are described by broker %s itself; this is broker %d", name, name, n.cfg.NodeID)
		}
		var out []kafkaapi.ConfigValue
		for _, d := range configDefs {
			v := d.value(n.cfg)
			out = append(out, kafkaapi.ConfigValue{Name: d.broker, Value: v, Source: kmsg.ConfigSourceStaticBrokerConfig,
				ReadOnly: true, Type: d.typ, Doc: d.doc,
				Synonyms: []kafkaapi.ConfigSynonym{{Name: d.broker, Value: v, Source: kmsg.ConfigSourceStaticBrokerConfig}}})
		}
		return out, nil
	}
	return nil, kafkaerr.Errorf(kerr.InvalidRequest, "configs of resource type %v are not served", typ)
}
