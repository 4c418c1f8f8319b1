package cluster

import (
	"context"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/fsm"
)

// brokerDef is a broker config that is not a topic default: read-only,
// set by the broker's flags.
type brokerDef struct {
	name  string
	typ   kmsg.ConfigType
	doc   string
	value func(c *Config) string
}

func itoa[T ~int | ~int16 | ~int32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

var brokerDefs = []brokerDef{
	{"broker.id", kmsg.ConfigTypeInt, "This broker's id.",
		func(c *Config) string { return itoa(c.NodeID) }},
	{"broker.rack", kmsg.ConfigTypeString, "This broker's rack.",
		func(c *Config) string { return c.Rack }},
	{"auto.create.topics.enable", kmsg.ConfigTypeBoolean, "Whether Metadata creates the unknown topics it is asked for.",
		func(c *Config) string { return strconv.FormatBool(c.AutoCreateTopics) }},
	{"num.partitions", kmsg.ConfigTypeInt, "Partitions of a topic created without a count.",
		func(c *Config) string { return itoa(c.DefaultPartitions) }},
	{"default.replication.factor", kmsg.ConfigTypeInt, "Replication factor of a topic created without one.",
		func(c *Config) string { return itoa(c.DefaultReplicationFactor) }},
	{"offsets.topic.num.partitions", kmsg.ConfigTypeInt, "Partitions of __consumer_offsets.",
		func(c *Config) string { return itoa(c.OffsetsTopicPartitions) }},
	{"offsets.topic.replication.factor", kmsg.ConfigTypeShort, "Replication factor of __consumer_offsets.",
		func(c *Config) string { return itoa(c.OffsetsTopicReplicationFactor) }},
	{"transaction.state.log.num.partitions", kmsg.ConfigTypeInt, "Partitions of __transaction_state.",
		func(c *Config) string { return itoa(c.TransactionStatePartitions) }},
	{"transaction.state.log.replication.factor", kmsg.ConfigTypeShort, "Replication factor of __transaction_state.",
		func(c *Config) string { return itoa(c.TransactionStateReplicationFactor) }},
	{"transaction.max.timeout.ms", kmsg.ConfigTypeInt, "Longest transaction timeout a producer may ask for.",
		func(c *Config) string { return itoa(c.Txn.MaxTimeout.Milliseconds()) }},
	{"producer.id.expiration.ms", kmsg.ConfigTypeInt, "How long a partition keeps an idle producer's sequence numbers.",
		func(c *Config) string { return itoa(c.ProducerIDExpiration.Milliseconds()) }},
	{"log.retention.check.interval.ms", kmsg.ConfigTypeLong, "How often each partition leader looks for segments past retention.",
		func(c *Config) string { return itoa(c.RetentionCheckInterval.Milliseconds()) }},
	{"socket.request.max.bytes", kmsg.ConfigTypeInt, "Largest request frame the Kafka listener reads.",
		func(c *Config) string { return itoa(c.Kafka.MaxRequestBytes) }},
	{"queued.max.request.bytes", kmsg.ConfigTypeLong, "Bytes of requests read and not yet answered, over all connections.",
		func(c *Config) string { return itoa(c.Kafka.MaxQueuedBytes) }},
	{"connections.max.idle.ms", kmsg.ConfigTypeLong, "Idle time after which a client connection is closed.",
		func(c *Config) string { return itoa(c.Kafka.IdleTimeout.Milliseconds()) }},
}

// brokerValue resolves a topic config's broker default on this broker:
// its synonyms in precedence order (per-broker dynamic, cluster-wide
// dynamic, static, built-in), the first of them in force.
func (n *Node) brokerValue(s *fsm.MetaState, d *topicDef) []kafkaapi.ConfigSynonym {
	var syn []kafkaapi.ConfigSynonym
	if v, ok := s.BrokerConfigs[itoa(n.cfg.NodeID)][d.broker]; ok {
		syn = append(syn, kafkaapi.ConfigSynonym{Name: d.broker, Value: v, Source: kmsg.ConfigSourceDynamicBrokerConfig})
	}
	if v, ok := s.BrokerConfigs[""][d.broker]; ok {
		syn = append(syn, kafkaapi.ConfigSynonym{Name: d.broker, Value: v, Source: kmsg.ConfigSourceDynamicDefaultBrokerConfig})
	}
	if v := n.cfg.staticValue(d); v != d.builtin {
		syn = append(syn, kafkaapi.ConfigSynonym{Name: d.broker, Value: v, Source: kmsg.ConfigSourceStaticBrokerConfig})
	}
	return append(syn, kafkaapi.ConfigSynonym{Name: d.broker, Value: d.builtin, Source: kmsg.ConfigSourceDefaultConfig})
}

// topicValues are a topic's configs in force on this broker, every one
// of them, with where each comes from.
func (n *Node) topicValues(s *fsm.MetaState, t *fsm.Topic) []kafkaapi.ConfigValue {
	out := make([]kafkaapi.ConfigValue, 0, len(topicDefs))
	for i := range topicDefs {
		d := &topicDefs[i]
		syn := n.brokerValue(s, d)
		if v, ok := t.Configs[d.topic]; ok {
			syn = append([]kafkaapi.ConfigSynonym{{Name: d.topic, Value: v, Source: kmsg.ConfigSourceDynamicTopicConfig}}, syn...)
		}
		out = append(out, kafkaapi.ConfigValue{Name: d.topic, Value: syn[0].Value, Source: syn[0].Source,
			Type: d.typ, Doc: d.doc, Synonyms: syn})
	}
	return out
}

// topicSettings are a topic's configs in force on this broker, parsed.
func (n *Node) topicSettings(s *fsm.MetaState, t *fsm.Topic) *topicSettings {
	vals := map[string]string{}
	for _, v := range n.topicValues(s, t) {
		vals[v.Name] = v.Value
	}
	ts := parseTopicSettings(n.cfg.Log, vals)
	return &ts
}

// describeConfigs answers DescribeConfigs for one resource: a topic's
// configs, or a broker's (this one's, or the cluster-wide defaults for
// an empty name).
func (n *Node) describeConfigs(typ kmsg.ConfigResourceType, name string) ([]kafkaapi.ConfigValue, error) {
	s := n.meta.state()
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		t, ok := s.Topics[name]
		if !ok {
			return nil, kafkaerr.Errorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		return n.topicValues(s, t), nil
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != itoa(n.cfg.NodeID) {
			return nil, kafkaerr.Errorf(kerr.InvalidRequest, "broker %s's configs are described by broker %s itself; this is broker %d", name, name, n.cfg.NodeID)
		}
		var out []kafkaapi.ConfigValue
		for i := range topicDefs {
			d := &topicDefs[i]
			syn := n.brokerValue(s, d)
			if name == "" {
				// The cluster-wide defaults: only what is set there.
				syn = syn[:0]
				if v, ok := s.BrokerConfigs[""][d.broker]; ok {
					syn = append(syn, kafkaapi.ConfigSynonym{Name: d.broker, Value: v, Source: kmsg.ConfigSourceDynamicDefaultBrokerConfig})
				} else {
					continue
				}
			}
			out = append(out, kafkaapi.ConfigValue{Name: d.broker, Value: syn[0].Value, Source: syn[0].Source,
				Type: d.typ, Doc: d.doc, Synonyms: syn})
		}
		if name == "" {
			return out, nil
		}
		for _, d := range brokerDefs {
			v := d.value(&n.cfg)
			out = append(out, kafkaapi.ConfigValue{Name: d.name, Value: v, Source: kmsg.ConfigSourceStaticBrokerConfig,
				ReadOnly: true, Type: d.typ, Doc: d.doc,
				Synonyms: []kafkaapi.ConfigSynonym{{Name: d.name, Value: v, Source: kmsg.ConfigSourceStaticBrokerConfig}}})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, nil
	}
	return nil, kafkaerr.Errorf(kerr.InvalidRequest, "configs of resource type %v are not served", typ)
}

// alterConfigs changes a topic's configs or the dynamic broker configs
// (name "" for the cluster-wide defaults, a broker id for one broker)
// through the metadata group: every broker then applies them to its
// replicas, without a restart. replace drops every dynamic config of the
// resource not in set (AlterConfigs); otherwise set and remove change only
// what they name (IncrementalAlterConfigs).
func (n *Node) alterConfigs(ctx context.Context, a kafkaapi.ConfigAlteration) error {
	cmd := &fsm.AlterConfigsCmd{Replace: a.Replace, Set: a.Set, Delete: a.Delete}
	s := n.meta.state()
	switch a.Type {
	case kmsg.ConfigResourceTypeTopic:
		t, ok := s.Topics[a.Name]
		if !ok {
			return kafkaerr.Errorf(kerr.UnknownTopicOrPartition, "topic %q does not exist", a.Name)
		}
		for _, k := range sortedKeys(a.Set) {
			if err := checkTopicConfig(k, a.Set[k]); err != nil {
				return kafkaerr.Errorf(kerr.InvalidConfig, "%v", err)
			}
		}
		for _, k := range a.Delete {
			if topicDefByTopic[k] == nil {
				return kafkaerr.Errorf(kerr.InvalidConfig, "topic config %q is not supported", k)
			}
		}
		cmd.Topic, cmd.TopicID = a.Name, t.ID
	case kmsg.ConfigResourceTypeBroker:
		if a.Name != "" {
			id, err := strconv.ParseInt(a.Name, 10, 32)
			if err != nil || s.Brokers[int32(id)] == nil {
				return kafkaerr.Errorf(kerr.InvalidRequest, "broker %q is not registered", a.Name)
			}
		}
		for _, k := range append(sortedKeys(a.Set), a.Delete...) {
			if err := checkBrokerConfig(k, a.Set[k], a.Set); err != nil {
				return err
			}
		}
		cmd.Broker = &a.Name
	default:
		return kafkaerr.Errorf(kerr.InvalidRequest, "configs of resource type %v cannot be altered", a.Type)
	}
	if a.ValidateOnly {
		return nil
	}
	res, err := n.proposeMeta(ctx, cmd)
	if err != nil {
		return metaErr(err)
	}
	if res.Err != nil {
		return res.Err
	}
	n.triggerReconcile()
	return nil
}

func checkBrokerConfig(k, v string, set map[string]string) error {
	d, ok := topicDefByBroker[k]
	if !ok {
		for _, b := range brokerDefs {
			if b.name == k {
				return kafkaerr.Errorf(kerr.InvalidRequest, "broker config %q cannot be changed while the broker runs; set it with the broker's flag or config file", k)
			}
		}
		return kafkaerr.Errorf(kerr.InvalidConfig, "broker config %q is not supported", k)
	}
	if _, setting := set[k]; !setting {
		return nil
	}
	if err := d.check(v); err != nil {
		return kafkaerr.Errorf(kerr.InvalidConfig, "broker config %q: %v", k, err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
