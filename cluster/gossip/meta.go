package gossip

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/memberlist"
)

// NodeMeta is what a node tells the cluster about itself. It travels as
// JSON in memberlist's node meta, so it must encode to at most
// memberlist.MetaMaxSize (512) bytes.
type NodeMeta struct {
	// ID is the broker id. It also names the node in memberlist
	// ("quire-<id>"), so it cannot change while a node runs.
	ID int32 `json:"id"`
	// KafkaAddr is the host:port Kafka clients dial.
	KafkaAddr string `json:"kafka,omitempty"`
	// NodeAddr is the host:port of the node-to-node transport.
	NodeAddr string `json:"node,omitempty"`
	// AdminAddr serves metrics and health; empty when disabled.
	AdminAddr string `json:"admin,omitempty"`
	// Rack is used for rack-aware placement.
	Rack string `json:"rack,omitempty"`
	// Controller marks a node eligible for the metadata group.
	Controller bool `json:"ctl,omitempty"`
	// ClusterID must match for a node to be admitted.
	ClusterID string `json:"cluster,omitempty"`
}

// wireMeta adds to NodeMeta the flag a node raises just before a graceful
// leave: memberlist's public API reports a departed node the same way
// whether it left or failed, so peers learn which one from this.
type wireMeta struct {
	NodeMeta
	Leaving bool `json:"leaving,omitempty"`
}

const namePrefix = "quire-"

// nodeName is the memberlist name of node id.
func nodeName(id int32) string { return namePrefix + strconv.FormatInt(int64(id), 10) }

// idFromName inverts nodeName.
func idFromName(name string) (int32, bool) {
	s, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil || id < 0 || nodeName(int32(id)) != name {
		return 0, false
	}
	return int32(id), true
}

// encodeMeta encodes m for memberlist, refusing what would not fit.
func encodeMeta(m NodeMeta, leaving bool) ([]byte, error) {
	b, err := json.Marshal(wireMeta{NodeMeta: m, Leaving: leaving})
	if err != nil {
		return nil, fmt.Errorf("node %d: encode meta: %w", m.ID, err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node %d: %d bytes, limit %d: %w", m.ID, len(b), memberlist.MetaMaxSize, ErrMetaTooLarge)
	}
	return b, nil
}

// checkMeta reports whether m still fits once the leaving flag is added, so
// a node never discovers at Leave time that it cannot announce it.
func checkMeta(m NodeMeta) error {
	_, err := encodeMeta(m, true)
	return err
}

// decodeMeta decodes a peer's meta. Unknown fields are ignored so that a
// newer node can add fields without being rejected by older ones.
func decodeMeta(b []byte) (wireMeta, error) {
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return wireMeta{}, fmt.Errorf("decode meta: %w", err)
	}
	return w, nil
}
