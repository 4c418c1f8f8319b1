package cluster

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/partition"
)

// topicDef is a topic config Quire honours, under Kafka's names: the topic
// config and the broker config that is its default. Broker defaults come
// from the broker's flags or config file (static) and may be changed for
// the whole cluster or one broker through AlterConfigs (dynamic).
type topicDef struct {
	topic, broker string
	typ           kmsg.ConfigType
	doc           string
	check         func(string) error
	// builtin is the default when nothing sets it.
	builtin string
	// field, where set, is the typed Config field the broker default lives
	// in; other broker defaults are kept in Config.TopicDefaults.
	field *typedField
}

// typedField reads and writes a broker default kept in a typed field.
type typedField struct {
	get func(c *Config) string
	set func(c *Config, v string)
}

const maxLong = math.MaxInt64

var topicDefs = []topicDef{
	{topic: "cleanup.policy", broker: "log.cleanup.policy", typ: kmsg.ConfigTypeList,
		doc:   "delete: segments past retention are deleted; compact: older records of a key are removed; compact,delete: both.",
		check: cleanupPolicy, builtin: "delete"},
	{topic: "compression.type", broker: "compression.type", typ: kmsg.ConfigTypeString,
		doc:   "Codec batches are stored with: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd recompresses on the leader.",
		check: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"), builtin: "producer"},
	{topic: "delete.retention.ms", broker: "log.cleaner.delete.retention.ms", typ: kmsg.ConfigTypeLong,
		doc:   "How long compaction keeps a tombstone (a record with a null value) once it is compacted.",
		check: intRange(0, maxLong), builtin: "86400000"},
	{topic: "index.interval.bytes", broker: "log.index.interval.bytes", typ: kmsg.ConfigTypeInt,
		doc:   "Bytes between entries of a segment's offset index.",
		check: intRange(1, 1<<30), builtin: "4096",
		field: &typedField{func(c *Config) string { return itoa(c.Log.IndexIntervalBytes) },
			func(c *Config, v string) { c.Log.IndexIntervalBytes = int(atoi(v)) }}},
	{topic: "max.compaction.lag.ms", broker: "log.cleaner.max.compaction.lag.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Longest a record may stay uncompacted once its segment is closed.",
		check: intRange(1, maxLong), builtin: strconv.FormatInt(maxLong, 10)},
	{topic: "max.message.bytes", broker: "message.max.bytes", typ: kmsg.ConfigTypeInt,
		doc:   "Largest record batch a producer may send.",
		check: intRange(1024, 1<<30), builtin: "1048588",
		field: &typedField{func(c *Config) string { return itoa(c.MaxMessageBytes) },
			func(c *Config, v string) { c.MaxMessageBytes = int32(atoi(v)) }}},
	{topic: "message.timestamp.type", broker: "log.message.timestamp.type", typ: kmsg.ConfigTypeString,
		doc:   "CreateTime (the producer's) or LogAppendTime (the leader's, when it takes the batch).",
		check: oneOf("CreateTime", "LogAppendTime"), builtin: "CreateTime"},
	{topic: "min.cleanable.dirty.ratio", broker: "log.cleaner.min.cleanable.ratio", typ: kmsg.ConfigTypeDouble,
		doc:   "Share of the log not yet compacted at which compaction runs.",
		check: ratio, builtin: "0.5"},
	{topic: "min.compaction.lag.ms", broker: "log.cleaner.min.compaction.lag.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Shortest time a record stays uncompacted.",
		check: intRange(0, maxLong), builtin: "0"},
	{topic: "min.insync.replicas", broker: "min.insync.replicas", typ: kmsg.ConfigTypeInt,
		doc:   "In-sync replicas (Raft voters caught up) an acks=all produce needs.",
		check: intRange(1, 7), builtin: "1"},
	{topic: "retention.bytes", broker: "log.retention.bytes", typ: kmsg.ConfigTypeLong,
		doc:   "Size a partition is kept under by deleting its oldest closed segments; -1 for no limit.",
		check: intRange(-1, maxLong), builtin: "-1"},
	{topic: "retention.ms", broker: "log.retention.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Age after which a closed segment is deleted, by its newest record's timestamp; -1 for no limit.",
		check: intRange(-1, maxLong), builtin: "604800000"},
	{topic: "segment.bytes", broker: "log.segment.bytes", typ: kmsg.ConfigTypeInt,
		doc:   "Size at which a partition's active segment is rolled.",
		check: intRange(1024, math.MaxInt32), builtin: "1073741824",
		field: &typedField{func(c *Config) string { return itoa(c.Log.SegmentBytes) },
			func(c *Config, v string) { c.Log.SegmentBytes = atoi(v) }}},
	{topic: "segment.ms", broker: "log.roll.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Age at which a partition's active segment is rolled, by its records' timestamps.",
		check: intRange(1, maxLong/int64(time.Millisecond)), builtin: "604800000",
		field: &typedField{func(c *Config) string { return itoa(c.Log.SegmentMs.Milliseconds()) },
			func(c *Config, v string) { c.Log.SegmentMs = time.Duration(atoi(v)) * time.Millisecond }}},
	{topic: "unclean.leader.election.enable", broker: "unclean.leader.election.enable", typ: kmsg.ConfigTypeBoolean,
		doc:   "Accepted for compatibility and without effect: a Raft leader is always elected from a majority that holds every committed record.",
		check: oneOf("true", "false"), builtin: "false"},
}

func atoi(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }

// topicDefByTopic and topicDefByBroker find a def by either name.
var topicDefByTopic, topicDefByBroker = func() (map[string]*topicDef, map[string]*topicDef) {
	bt, bb := map[string]*topicDef{}, map[string]*topicDef{}
	for i := range topicDefs {
		bt[topicDefs[i].topic], bb[topicDefs[i].broker] = &topicDefs[i], &topicDefs[i]
	}
	return bt, bb
}()

// BrokerDefault is a broker setting, under Kafka's name, that is the
// default of a topic config.
type BrokerDefault struct{ Name, Topic, Doc, Default string }

// BrokerDefaults lists the broker settings that are topic config defaults.
func BrokerDefaults() []BrokerDefault {
	out := make([]BrokerDefault, len(topicDefs))
	for i, d := range topicDefs {
		out[i] = BrokerDefault{Name: d.broker, Topic: d.topic, Doc: d.doc, Default: d.builtin}
	}
	return out
}

// SetBrokerDefault sets a topic config's broker default, by its broker
// name (log.retention.ms), checking the value.
func (c *Config) SetBrokerDefault(name, value string) error {
	d, ok := topicDefByBroker[name]
	if !ok {
		return fmt.Errorf("%q is not a topic config default", name)
	}
	if err := d.check(value); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if d.field != nil {
		d.field.set(c, value)
		return nil
	}
	if c.TopicDefaults == nil {
		c.TopicDefaults = map[string]string{}
	}
	c.TopicDefaults[name] = value
	return nil
}

// BrokerDefault is the value c gives a topic config default, by its broker
// name.
func (c *Config) BrokerDefault(name string) string {
	d := topicDefByBroker[name]
	if d == nil {
		return ""
	}
	return c.staticValue(d)
}

func (c *Config) staticValue(d *topicDef) string {
	if d.field != nil {
		return d.field.get(c)
	}
	if v, ok := c.TopicDefaults[d.broker]; ok {
		return v
	}
	return d.builtin
}

// topicSettings are a topic's configs in force on this broker, parsed.
type topicSettings struct {
	log             partition.Config
	maxMessageBytes int32
	minISR          int
	// logAppendTime is message.timestamp.type=LogAppendTime: the leader
	// stamps each batch with the time it takes it.
	logAppendTime bool
	// retentionMs and retentionBytes are -1 when off.
	retentionMs, retentionBytes int64
	// deletePolicy and compactPolicy are cleanup.policy's two parts.
	deletePolicy, compactPolicy            bool
	deleteRetentionMs                      int64
	minCompactionLagMs, maxCompactionLagMs int64
	minCleanableRatio                      float64
	// compression is compression.type: "producer" keeps the producer's
	// codec.
	compression string
}

// parseTopicSettings turns the values in force (every topicDef, valid)
// into settings over the node's segment defaults.
func parseTopicSettings(base partition.Config, v map[string]string) topicSettings {
	ts := topicSettings{log: base}
	ts.log.SegmentBytes = atoi(v["segment.bytes"])
	ts.log.SegmentMs = time.Duration(atoi(v["segment.ms"])) * time.Millisecond
	ts.log.IndexIntervalBytes = int(atoi(v["index.interval.bytes"]))
	ts.maxMessageBytes = int32(atoi(v["max.message.bytes"]))
	ts.log.MaxBatchBytes = max(ts.log.MaxBatchBytes, int(ts.maxMessageBytes))
	ts.minISR = int(atoi(v["min.insync.replicas"]))
	ts.logAppendTime = v["message.timestamp.type"] == "LogAppendTime"
	ts.retentionMs, ts.retentionBytes = atoi(v["retention.ms"]), atoi(v["retention.bytes"])
	for _, p := range strings.Split(v["cleanup.policy"], ",") {
		switch strings.TrimSpace(p) {
		case "delete":
			ts.deletePolicy = true
		case "compact":
			ts.compactPolicy = true
		}
	}
	ts.deleteRetentionMs = atoi(v["delete.retention.ms"])
	ts.minCompactionLagMs, ts.maxCompactionLagMs = atoi(v["min.compaction.lag.ms"]), atoi(v["max.compaction.lag.ms"])
	ts.minCleanableRatio, _ = strconv.ParseFloat(v["min.cleanable.dirty.ratio"], 64)
	ts.compression = v["compression.type"]
	return ts
}

// codec is compression.type as a batch codec, -1 for "producer".
func (ts *topicSettings) codec() int8 {
	switch ts.compression {
	case "uncompressed":
		return 0
	case "gzip":
		return 1
	case "snappy":
		return 2
	case "lz4":
		return 3
	case "zstd":
		return 4
	}
	return -1
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(values, v) {
			return nil
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
	}
}

func intRange(min, max int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		if n < min || n > max {
			return fmt.Errorf("%d not in [%d, %d]", n, min, max)
		}
		return nil
	}
}

func ratio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
		return fmt.Errorf("%q is not a number in [0, 1]", v)
	}
	return nil
}

func cleanupPolicy(v string) error {
	seen := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p != "delete" && p != "compact" || seen[p] {
			return fmt.Errorf("%q is not delete, compact or compact,delete", v)
		}
		seen[p] = true
	}
	return nil
}

// validateTopicConfigs checks names and values; the error names the
// offending config.
func validateTopicConfigs(cfgs map[string]string) error {
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkTopicConfig(k, cfgs[k]); err != nil {
			return err
		}
	}
	return nil
}

func checkTopicConfig(k, v string) error {
	d, ok := topicDefByTopic[k]
	if !ok {
		return fmt.Errorf("topic config %q is not supported", k)
	}
	if err := d.check(v); err != nil {
		return fmt.Errorf("topic config %q: %w", k, err)
	}
	return nil
}
