package groups

import (
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/partition"
)

// The record key versions Kafka uses: 0 and 1 are offset commits, 2 is
// group metadata.
const (
	keyOffsetCommit  = 1
	keyGroupMetadata = 2
)

// Key versions of Quire's own records for next-generation (KIP-848)
// consumer groups: Kafka's record types for them are not in kmsg, and
// versions far above Kafka's keep a tool that reads the topic from taking
// them for Kafka's. The value is JSON.
const (
	keyConsumerGroup  = 1000
	keyConsumerMember = 1001
)

// cgKey is the record key of a consumer group's epochs.
func cgKey(group string) []byte {
	return appendKeyString(appendKeyVersion(nil, keyConsumerGroup), group)
}

// cmKey is the record key of one consumer group member.
func cmKey(group, member string) []byte {
	return appendKeyString(appendKeyString(appendKeyVersion(nil, keyConsumerMember), group), member)
}

func appendKeyVersion(b []byte, v int16) []byte { return append(b, byte(v>>8), byte(v)) }

func appendKeyString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

func readKeyString(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, fmt.Errorf("short key")
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("short key")
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

// offsetKey is the record key of a committed offset.
func offsetKey(group, topic string, part int32) []byte {
	k := kmsg.NewOffsetCommitKey()
	k.Version = keyOffsetCommit
	k.Group, k.Topic, k.Partition = group, topic, part
	return k.AppendTo(nil)
}

// offsetValue encodes a commit (version 3, with the leader epoch).
func offsetValue(o committed) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = 3
	v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = o.offset, o.leaderEpoch, o.metadata, o.timestamp
	return v.AppendTo(nil)
}

// metadataKey is the record key of a group's metadata.
func metadataKey(group string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version = keyGroupMetadata
	k.Group = group
	return k.AppendTo(nil)
}

// metadataValue encodes a group's generation and members (version 3, with
// static instance ids).
func metadataValue(g *group) []byte {
	v := kmsg.NewGroupMetadataValue()
	v.Version = 3
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime
	for _, m := range g.memberList() {
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID, mv.InstanceID = m.id, m.instanceID
		mv.ClientID, mv.ClientHost = m.clientID, m.clientHost
		mv.RebalanceTimeoutMillis = int32(m.rebalanceTimeout.Milliseconds())
		mv.SessionTimeoutMillis = int32(m.sessionTimeout.Milliseconds())
		mv.Subscription = m.metadataFor(g.protocol)
		mv.Assignment = m.assignment
		v.Members = append(v.Members, mv)
	}
	return v.AppendTo(nil)
}

// stateRecord is one decoded record of __consumer_offsets.
type stateRecord struct {
	group string
	// offset commits
	topic     string
	partition int32
	offset    *kmsg.OffsetCommitValue
	// group metadata
	isMeta bool
	meta   *kmsg.GroupMetadataValue
	// consumer groups: member is empty for the group's own record
	isConsumer bool
	member     string
	cg         *consumerGroup
	cm         *cmember
	// tombstone is a record with no value: the key is deleted.
	tombstone bool
}

// decodeRecord decodes one record of __consumer_offsets.
func decodeRecord(r partition.Record) (stateRecord, error) {
	var out stateRecord
	if len(r.Key) < 2 {
		return out, fmt.Errorf("record key of %d bytes", len(r.Key))
	}
	version := int16(r.Key[0])<<8 | int16(r.Key[1])
	switch version {
	case 0, 1:
		k := kmsg.NewOffsetCommitKey()
		if err := k.ReadFrom(r.Key); err != nil {
			return out, fmt.Errorf("offset key: %w", err)
		}
		out.group, out.topic, out.partition = k.Group, k.Topic, k.Partition
		if r.Value == nil {
			out.tombstone = true
			return out, nil
		}
		v := kmsg.NewOffsetCommitValue()
		if err := v.ReadFrom(r.Value); err != nil {
			return out, fmt.Errorf("offset value: %w", err)
		}
		out.offset = &v
	case 2:
		k := kmsg.NewGroupMetadataKey()
		if err := k.ReadFrom(r.Key); err != nil {
			return out, fmt.Errorf("group key: %w", err)
		}
		out.group, out.isMeta = k.Group, true
		if r.Value == nil {
			out.tombstone = true
			return out, nil
		}
		v := kmsg.NewGroupMetadataValue()
		if err := v.ReadFrom(r.Value); err != nil {
			return out, fmt.Errorf("group value: %w", err)
		}
		out.meta = &v
	case keyConsumerGroup, keyConsumerMember:
		var err error
		rest := r.Key[2:]
		if out.group, rest, err = readKeyString(rest); err != nil {
			return out, err
		}
		out.isConsumer = true
		if version == keyConsumerMember {
			if out.member, _, err = readKeyString(rest); err != nil {
				return out, err
			}
		}
		if r.Value == nil {
			out.tombstone = true
			return out, nil
		}
		if version == keyConsumerGroup {
			out.cg = newConsumerGroup()
			err = json.Unmarshal(r.Value, out.cg)
			out.cg.enc = r.Value
		} else {
			out.cm = &cmember{ID: out.member}
			err = json.Unmarshal(r.Value, out.cm)
			out.cm.enc = r.Value
		}
		if err != nil {
			return out, fmt.Errorf("consumer group value: %w", err)
		}
	default:
		return out, fmt.Errorf("record key version %d", version)
	}
	return out, nil
}

// encodeBatch makes one batch of records written at now (milliseconds).
func encodeBatch(now int64, keys, values [][]byte) []byte {
	recs := make([]partition.Record, len(keys))
	for i := range keys {
		recs[i] = partition.Record{Key: keys[i], Value: values[i], Timestamp: now}
	}
	return partition.EncodeBatch(0, -1, -1, -1, recs)
}
