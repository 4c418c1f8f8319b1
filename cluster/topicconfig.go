package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/quirelog/quire/partition"
)

// topicConfigKeys are the topic configs Quire honours. Anything else is
// rejected with INVALID_CONFIG rather than silently ignored.
var topicConfigKeys = map[string]func(string) error{
	"segment.bytes":          intRange(1024, 1<<40),
	"segment.ms":             intRange(1, 1<<62),
	"index.interval.bytes":   intRange(1, 1<<30),
	"max.message.bytes":      intRange(1024, 1<<30),
	"min.insync.replicas":    intRange(1, 7),
	"message.timestamp.type": oneOf("CreateTime", "LogAppendTime"),
}

// topicSettings are the per-topic settings the broker enforces outside the
// segment log.
type topicSettings struct {
	maxMessageBytes int32
	minISR          int
	// logAppendTime is message.timestamp.type=LogAppendTime: the leader
	// stamps each batch with the time it takes it.
	logAppendTime bool
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %v", v, values)
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

// validateTopicConfigs checks names and values; the error names the
// offending config.
func validateTopicConfigs(cfgs map[string]string) error {
	keys := make([]string, 0, len(cfgs))
	for k := range cfgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		check, ok := topicConfigKeys[k]
		if !ok {
			return fmt.Errorf("topic config %q is not supported", k)
		}
		if err := check(cfgs[k]); err != nil {
			return fmt.Errorf("topic config %q: %w", k, err)
		}
	}
	return nil
}

// topicLogConfig applies a topic's configs over the node defaults.
func topicLogConfig(c Config, cfgs map[string]string) (partition.Config, topicSettings, error) {
	lc := c.Log
	maxMsg := c.MaxMessageBytes
	ts := topicSettings{minISR: 1}
	if err := validateTopicConfigs(cfgs); err != nil {
		return lc, ts, err
	}
	num := func(k string) (int64, bool) {
		v, ok := cfgs[k]
		if !ok {
			return 0, false
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n, true
	}
	if n, ok := num("segment.bytes"); ok {
		lc.SegmentBytes = n
	}
	if n, ok := num("segment.ms"); ok {
		lc.SegmentMs = time.Duration(n) * time.Millisecond
	}
	if n, ok := num("index.interval.bytes"); ok {
		lc.IndexIntervalBytes = int(n)
	}
	if n, ok := num("max.message.bytes"); ok {
		maxMsg = int32(n)
	}
	if n, ok := num("min.insync.replicas"); ok {
		ts.minISR = int(n)
	}
	ts.logAppendTime = cfgs["message.timestamp.type"] == "LogAppendTime"
	if int(maxMsg) > lc.MaxBatchBytes {
		lc.MaxBatchBytes = int(maxMsg)
	}
	ts.maxMessageBytes = maxMsg
	return lc, ts, nil
}
