package cluster

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaapi"
)

// TestRequestsBeforeStartWait: the Kafka and admin listeners bind before
// the node's metadata group exists. A request that arrives in that window
// (a client redialling a restarted node) must wait or be turned away, not
// crash the node, as a Metadata request did under `quire chaos run`.
func TestRequestsBeforeStartWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: DefaultConfig(), started: make(chan struct{}), ctx: ctx, cancel: cancel}
	h := kafkaapi.New(kafkaBroker{n})
	reqCtx, reqCancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer reqCancel()
	if resp := h.Serve(reqCtx, nil, kmsg.NewPtrMetadataRequest())(); resp != nil {
		t.Fatalf("got %v before start, want no response", resp)
	}
	if err := n.Ready(); err == nil {
		t.Fatal("ready before start")
	}
	rec := httptest.NewRecorder()
	n.servePartitions(rec, httptest.NewRequest("GET", "/debug/partitions", nil))
	if rec.Code != 503 {
		t.Fatalf("/debug/partitions before start: %d, want 503", rec.Code)
	}
	cancel()
	if resp := h.Serve(context.Background(), nil, kmsg.NewPtrMetadataRequest())(); resp != nil {
		t.Fatalf("got %v from a closing node, want no response", resp)
	}
}
