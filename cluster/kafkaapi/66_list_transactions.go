package kafkaapi

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/txn"
)

// ListTransactions v0-2: the transactional ids this broker coordinates,
// filtered by state, producer id, how long they have run (v1+) and an id
// pattern (v2+, a regular expression). Clients ask every broker.
func init() { register(kmsg.ListTransactions, 0, 2, plain(serveListTransactions)) }

func serveListTransactions(_ context.Context, b Broker, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	f := txn.Filter{ProducerIDs: req.ProducerIDFilters, RunningFor: time.Duration(req.DurationFilterMillis) * time.Millisecond}
	for _, s := range req.StateFilters {
		if !slices.Contains(kmsg.TransactionStateStrings(), s) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
			continue
		}
		f.States = append(f.States, s)
	}
	if len(req.StateFilters) > 0 && len(f.States) == 0 {
		return resp // every filter was unknown: nothing can match
	}
	if req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		re, err := regexp.Compile(*req.TransactionalIDPattern)
		if err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
		f.IDPattern = re
	}
	for _, d := range b.Txns().List(f) {
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = d.ID, d.ProducerID, d.State
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
