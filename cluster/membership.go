package cluster

import (
	"context"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quirelog/quire/cluster/gossip"
	"github.com/quirelog/quire/fsm"
)

// startGossip joins the cluster's memberlist, advertising where this
// node's listeners are. Gossip only says who is alive and where; the
// metadata group decides everything else.
func (n *Node) startGossip() error {
	adv := n.cfg.AdvertiseGossipAddr
	if adv == "" {
		adv = n.cfg.GossipAddr
	}
	g, err := gossip.Start(gossip.Config{
		Meta:          n.gossipMeta(),
		BindAddr:      n.cfg.GossipAddr,
		AdvertiseAddr: adv,
		Join:          n.cfg.Join,
		PeersFile:     filepath.Join(n.cfg.DataDir, "gossip-peers"),
		Fast:          n.cfg.FastGossip,
		Logger:        n.logger.Named("gossip"),
		Blocked:       n.gossipBlocked(),
	})
	if err != nil {
		return err
	}
	n.gossip.Store(g)
	g.Subscribe(func() {
		n.triggerDuties()
		n.triggerReconcile()
	})
	return nil
}

func (n *Node) gossipMeta() gossip.NodeMeta {
	admin := ""
	if n.admin != nil {
		admin = n.admin.ln.Addr().String()
	}
	return gossip.NodeMeta{
		ID:         n.cfg.NodeID,
		KafkaAddr:  n.advKafka,
		NodeAddr:   n.advNode,
		AdminAddr:  admin,
		Rack:       n.cfg.Rack,
		Controller: n.cfg.Controller,
		ClusterID:  n.cfg.ClusterID,
	}
}

func (n *Node) gossipBlocked() func(from, to int32) bool {
	if n.cfg.Faults == nil {
		return nil
	}
	return n.cfg.Faults.Drops
}

// resolveNode maps a broker id to its node-transport address: gossip is
// freshest, the registered address survives a gossip outage.
func (n *Node) resolveNode(id int32) (string, bool) {
	if id == n.cfg.NodeID {
		return n.advNode, true
	}
	if g := n.gossip.Load(); g != nil {
		if m, ok := g.Member(id); ok && m.Meta.NodeAddr != "" {
			return m.Meta.NodeAddr, true
		}
	}
	if b := n.meta.state().Brokers[id]; b != nil && b.NodeAddr != "" {
		return b.NodeAddr, true
	}
	return "", false
}

// alive reports whether a broker is up: gossip says so, or, where gossip
// lags, the node transport's pings do; and the node transport has not
// just found its process gone (gossip takes seconds to suspect a crashed
// node, a refused connection is immediate). Gossip lags both ways. A
// node that was paused suspects every peer when it wakes, for the second
// or two until their probe acks come back, and meanwhile named no leader
// in Metadata or KIP-951 hints, which cost a default franz-go client its
// 5 s metadata age. A node that restarts is dead or left in its peers'
// gossip until its refutation reaches them, and meanwhile a CreateTopics
// at RF=3 failed with INVALID_REPLICATION_FACTOR although it was serving.
func (n *Node) alive(id int32) bool {
	if id == n.cfg.NodeID {
		return true
	}
	g := n.gossip.Load()
	if g == nil || n.nt.PeerDown(id) {
		return false
	}
	if m, ok := g.Member(id); ok && m.State == gossip.StateAlive {
		return true
	}
	return n.nt.Answers(id)
}

// liveBrokers lists registered brokers that gossip reports alive, by id.
func (n *Node) liveBrokers() []*fsm.Broker {
	var out []*fsm.Broker
	for _, b := range n.meta.state().SortedBrokers() {
		if n.alive(b.ID) {
			out = append(out, b)
		}
	}
	return out
}

// bootstrapMeta forms a brand-new metadata group once BootstrapExpect
// controller-eligible nodes have met by gossip. Every node of the chosen
// set bootstraps with the same configuration, which raft allows; nodes
// outside it wait for the leader to add them.
func (n *Node) bootstrapMeta() {
	defer n.wg.Done()
	if n.cfg.BootstrapExpect == 1 && len(n.cfg.Join) == 0 {
		n.bootstrapWith([]int32{n.cfg.NodeID})
		return
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		if addr, _ := n.meta.group.raft.LeaderWithID(); addr != "" || n.meta.group.raft.LastIndex() > 0 {
			return // already part of a formed group
		}
		if n.cfg.BootstrapExpect == 1 {
			continue // joining an existing cluster: wait to be added
		}
		var eligible []int32
		for _, m := range n.gossip.Load().Members() {
			if m.State == gossip.StateAlive && m.Meta.Controller {
				eligible = append(eligible, m.Meta.ID)
			}
		}
		if len(eligible) < n.cfg.BootstrapExpect {
			continue
		}
		sort.Slice(eligible, func(i, j int) bool { return eligible[i] < eligible[j] })
		if n.peerHasFormed(eligible) {
			n.logger.Warn("no local metadata state but the cluster has formed: rejoining without voting until caught up (was this node's data lost?)")
			return // the leader replicates to this node; its vote gate opens once it caught up
		}
		voters := eligible[:n.cfg.BootstrapExpect]
		for _, id := range voters {
			if id == n.cfg.NodeID {
				n.bootstrapWith(voters)
				return
			}
		}
		return
	}
}

func (n *Node) bootstrapWith(voters []int32) {
	var servers []raft.Server
	for _, id := range voters {
		servers = append(servers, raft.Server{ID: raftID(id), Address: raft.ServerAddress(raftID(id))})
	}
	err := n.meta.group.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && err != raft.ErrCantBootstrap {
		n.logger.Error("metadata bootstrap failed", "voters", voters, "error", err)
		return
	}
	if err == nil && n.meta.group.gate != nil {
		n.meta.group.gate.openNow()
	}
	n.logger.Info("metadata group bootstrapped", "voters", voters)
}

// rpcMetaFormed asks a peer whether its metadata group has had a leader.
const rpcMetaFormed = "meta.formed"

// handleMetaFormed answers whether this node has applied anything past the
// bootstrap configuration (index 1), which only happens once a leader was
// elected. A bootstrapped but leaderless peer is still forming, and its
// founders must all be able to vote.
func (n *Node) handleMetaFormed(context.Context, int32, []byte) ([]byte, error) {
	if n.meta.group.raft.AppliedIndex() > 1 {
		return []byte{1}, nil
	}
	return []byte{0}, nil
}

// peerHasFormed reports whether any other eligible node already holds
// metadata state: then this node, which has none, lost it and must not
// found the cluster again. A peer that does not answer counts as not
// formed, since a brand-new cluster's nodes start at different times.
func (n *Node) peerHasFormed(peers []int32) bool {
	for _, id := range peers {
		if id == n.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		out, err := n.nt.Call(ctx, id, rpcMetaFormed, nil)
		cancel()
		if err == nil && len(out) == 1 && out[0] == 1 {
			return true
		}
	}
	return false
}

func (n *Node) triggerDuties() { kick(n.meta.duties) }

// controllerDuties runs on every node and acts only while it leads the
// metadata group: it registers brokers gossip has found (or whose
// addresses changed) and adds them to the metadata group as non-voters so
// every broker has the metadata locally.
func (n *Node) controllerDuties() {
	n.loop(time.Second, n.meta.duties, func() {
		if n.meta.isController() {
			n.registerMembers()
		}
	})
}

func (n *Node) registerMembers() {
	state := n.meta.state()
	cf := n.meta.group.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	inGroup := make(map[raft.ServerID]bool)
	for _, s := range cf.Configuration().Servers {
		inGroup[s.ID] = true
	}
	for _, m := range n.gossip.Load().Members() {
		if m.State != gossip.StateAlive || m.Meta.ClusterID != n.cfg.ClusterID {
			continue
		}
		want := fsm.Broker{ID: m.Meta.ID, KafkaAddr: m.Meta.KafkaAddr, NodeAddr: m.Meta.NodeAddr, Rack: m.Meta.Rack, Controller: m.Meta.Controller}
		if cur := state.Brokers[want.ID]; cur == nil || *cur != want {
			if _, err := n.proposeMeta(n.ctx, &fsm.RegisterBrokerCmd{Broker: want}); err != nil {
				n.logger.Warn("registering broker failed", "broker", want.ID, "error", err)
				continue
			}
			n.logger.Info("broker registered", "broker", want.ID, "kafka", want.KafkaAddr, "node", want.NodeAddr, "rack", want.Rack)
		}
		id := raftID(want.ID)
		if !inGroup[id] {
			err := n.meta.group.raft.AddNonvoter(id, raft.ServerAddress(id), 0, 5*time.Second).Error()
			if err != nil {
				n.logger.Warn("adding metadata non-voter failed", "broker", want.ID, "error", err)
				continue
			}
			n.logger.Info("broker follows the metadata group", "broker", want.ID)
		}
	}
}
