package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/quirelog/quire/transport/node"
)

// Target is the cluster a run attacks. Brokers and Nodes are all a run
// needs to write and read; every fault comes from an optional interface
// below, and a nemesis whose interface the target lacks is refused before
// the run starts rather than skipped silently.
type Target interface {
	// Brokers are Kafka bootstrap addresses.
	Brokers() []string
	// Nodes are the broker ids, ascending.
	Nodes() []int32
}

// Processes kills, restarts, pauses and resumes broker processes.
type Processes interface {
	// Kill sends SIGKILL and returns once the process is gone.
	Kill(ctx context.Context, id int32) error
	// Restart starts killed nodes again, all at once (a cluster killed
	// whole needs a quorum back before any node is ready), and waits
	// until each serves.
	Restart(ctx context.Context, ids []int32) error
	// Pause sends SIGSTOP; Resume sends SIGCONT.
	Pause(id int32) error
	Resume(id int32) error
}

// Network sets the node-to-node faults of every node at once.
type Network interface {
	// SetFaults replaces every node's network faults with rules; nil heals.
	SetFaults(ctx context.Context, rules []node.Rule) error
}

// Disks damages the data of a node that is down.
type Disks interface {
	// Corrupt damages one file of a stopped node's data and describes
	// what it did. rng picks the file and the damage.
	Corrupt(id int32, rng Rand) (string, error)
	// LosePower drops, for a node that was just killed, every write it
	// had not fsync'd, as a power cut would; rng picks how much of each
	// unsynced tail was torn rather than lost.
	LosePower(id int32, rng Rand) (string, error)
}

// Rand is the part of math/rand/v2's *Rand a target needs, so that faults
// stay reproducible from the run's seed.
type Rand interface {
	IntN(n int) int
	Int64N(n int64) int64
}

// Replicas reports every replica a node holds, as /debug/partitions does.
type Replicas interface {
	Replicas(ctx context.Context, id int32) ([]ReplicaDigest, error)
}

// ReplicaDigest is one replica's high watermark and a checksum of its data
// below it.
type ReplicaDigest struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	HW        int64  `json:"high_watermark"`
	CRC32C    uint32 `json:"crc32c"`
	Error     string `json:"error,omitempty"`
}

// AdminEndpoints reaches nodes through their admin HTTP listeners: the
// digests of /debug/partitions and, for brokers started with
// --enable-fault-injection, the faults of /debug/faults. Both a local
// process cluster and an operator's own cluster use it.
type AdminEndpoints map[int32]string

// Replicas implements Replicas.
func (a AdminEndpoints) Replicas(ctx context.Context, id int32) ([]ReplicaDigest, error) {
	addr, ok := a[id]
	if !ok {
		return nil, fmt.Errorf("node %d: no admin address", id)
	}
	var out []ReplicaDigest
	err := adminCall(ctx, http.MethodGet, "http://"+addr+"/debug/partitions", nil, &out)
	return out, err
}

// SetFaults implements Network. Every node gets the whole rule list; a node
// that cannot be reached (killed, paused) is an error, so a runner never
// believes a partition is in place when it is not.
func (a AdminEndpoints) SetFaults(ctx context.Context, rules []node.Rule) error {
	if rules == nil {
		rules = []node.Rule{}
	}
	body, err := json.Marshal(rules)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range a.IDs() {
		if err := adminCall(ctx, http.MethodPut, "http://"+a[id]+"/debug/faults", body, nil); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// IDs lists the nodes, ascending.
func (a AdminEndpoints) IDs() []int32 {
	ids := make([]int32, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	sortInt32s(ids)
	return ids
}

func adminCall(ctx context.Context, method, url string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && strings.HasSuffix(url, "/debug/faults") {
		return errors.New("no /debug/faults: start brokers with --enable-fault-injection")
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
