package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/fsm"
	"github.com/quirelog/quire/transport/node"
)

// rpcMetaPropose carries an encoded metadata command from any broker to
// the controller (the metadata group's leader), as KRaft brokers forward
// admin requests to the active controller.
const rpcMetaPropose = "meta.propose"

var errNotController = errors.New("not the controller")

// proposeReply is a MetaResult on the wire: Kafka errors travel as codes.
type proposeReply struct {
	Code            int16  `json:"code,omitempty"`
	Msg             string `json:"msg,omitempty"`
	FirstProducerID int64  `json:"first_producer_id,omitempty"`
}

// proposeMeta commits a metadata command through the controller, wherever
// it is, retrying while there is no controller or it moves, until ctx ends.
func (n *Node) proposeMeta(ctx context.Context, cmd interface{}) (*fsm.MetaResult, error) {
	b, err := fsm.EncodeMeta(cmd)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		res, err := n.proposeMetaOnce(ctx, b)
		if err == nil {
			return res, nil
		}
		retry := errors.Is(err, errNotController) || errors.Is(err, raft.ErrNotLeader) ||
			errors.Is(err, raft.ErrLeadershipLost) || isRemoteNotController(err) || isUnreachable(err)
		if !retry {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) proposeMetaOnce(ctx context.Context, b []byte) (*fsm.MetaResult, error) {
	leader := n.meta.controllerID()
	switch {
	case leader < 0:
		return nil, errNotController
	case leader == n.cfg.NodeID:
		return n.applyMeta(ctx, b)
	}
	out, err := n.nt.Call(ctx, leader, rpcMetaPropose, b)
	if err != nil {
		return nil, err
	}
	var rep proposeReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, fmt.Errorf("controller reply: %w", err)
	}
	res := &fsm.MetaResult{FirstProducerID: rep.FirstProducerID}
	switch {
	case rep.Code > 0:
		res.Err = kerr.ErrorForCode(rep.Code)
	case rep.Code < 0:
		res.Err = errors.New(rep.Msg)
	}
	return res, nil
}

// applyMeta applies an encoded command on this node, which must lead the
// metadata group.
func (n *Node) applyMeta(ctx context.Context, b []byte) (*fsm.MetaResult, error) {
	if !n.meta.isController() {
		return nil, errNotController
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.meta.group.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	res, _ := f.Response().(*fsm.MetaResult)
	if res == nil {
		return nil, errors.New("metadata command produced no result")
	}
	return res, nil
}

// handleMetaPropose serves rpcMetaPropose on the controller.
func (n *Node) handleMetaPropose(ctx context.Context, from int32, req []byte) ([]byte, error) {
	res, err := n.applyMeta(ctx, req)
	if err != nil {
		if errors.Is(err, errNotController) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, errNotController
		}
		return nil, err
	}
	var rep proposeReply
	rep.FirstProducerID = res.FirstProducerID
	if res.Err != nil {
		var ke *kerr.Error
		if errors.As(res.Err, &ke) {
			rep.Code = ke.Code
		} else {
			rep.Code, rep.Msg = -1, res.Err.Error()
		}
	}
	return json.Marshal(&rep)
}

func isRemoteNotController(err error) bool {
	var re *node.RemoteError
	return errors.As(err, &re) && re.Msg == errNotController.Error()
}

// isUnreachable is true for transport failures worth retrying against a
// controller that may have moved.
func isUnreachable(err error) bool {
	var re *node.RemoteError
	return err != nil && !errors.As(err, &re) && !errors.Is(err, context.Canceled)
}
