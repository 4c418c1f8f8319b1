package gossip

import (
	"strings"

	"github.com/hashicorp/go-hclog"
)

// mlWriter turns memberlist's "[LEVEL] memberlist: text" log lines into
// hclog records. Its INFO lines (suspicions, failures) are routine churn
// for Quire, which logs membership changes itself, so everything below
// WARN goes to debug.
type mlWriter struct{ log hclog.Logger }

func (w mlWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := ""
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if l, text, ok := strings.Cut(rest, "] "); ok {
			level, line = l, text
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	switch level {
	case "WARN", "ERR", "ERROR":
		w.log.Warn("memberlist", "line", line)
	default:
		w.log.Debug("memberlist", "line", line)
	}
	return len(p), nil
}
