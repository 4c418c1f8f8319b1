package cluster

import "github.com/hashicorp/go-hclog"

// quietRaftLogger is the logger of a partition group's raft. A node runs
// thousands of them: raft's per-group chatter (every election logs half a
// dozen lines at INFO and WARN: timeouts, refused votes, a follower's log
// being matched) and its errors for calls to a peer that is down (every
// group says so, again with every retry) would drown the node's own
// account of the same events, which it logs once per peer. Those go to
// DEBUG; every other error stays.
type quietRaftLogger struct{ hclog.Logger }

// peerDownNoise are raft's messages for calls that failed because a peer
// is down or cut off.
var peerDownNoise = map[string]bool{
	"failed to heartbeat to":                            true,
	"failed to appendEntries to":                        true,
	"failed to make requestVote RPC":                    true,
	"failed to pipeline appendEntries":                  true,
	"failed to start pipeline replication to":           true,
	"failed to send snapshot to":                        true,
	"failed to contact":                                 true,
	"peer has newer term, stopping replication":         true,
	"rejecting vote request since we have a leader":     true,
	"rejecting pre-vote request since we have a leader": true,
}

func (l quietRaftLogger) Info(msg string, args ...interface{}) { l.Logger.Debug(msg, args...) }

func (l quietRaftLogger) Warn(msg string, args ...interface{}) { l.Logger.Debug(msg, args...) }

func (l quietRaftLogger) Error(msg string, args ...interface{}) {
	if peerDownNoise[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Error(msg, args...)
}

func (l quietRaftLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	switch level {
	case hclog.Info:
		l.Debug(msg, args...)
	case hclog.Warn:
		l.Warn(msg, args...)
	case hclog.Error:
		l.Error(msg, args...)
	default:
		l.Logger.Log(level, msg, args...)
	}
}

func (l quietRaftLogger) With(args ...interface{}) hclog.Logger {
	return quietRaftLogger{l.Logger.With(args...)}
}

func (l quietRaftLogger) Named(name string) hclog.Logger {
	return quietRaftLogger{l.Logger.Named(name)}
}

func (l quietRaftLogger) ResetNamed(name string) hclog.Logger {
	return quietRaftLogger{l.Logger.ResetNamed(name)}
}
