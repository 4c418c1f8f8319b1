package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
	"github.com/quirelog/quire/cluster/txn"
)

// DescribeTransactions v0: the state of transactional ids this broker
// coordinates; others answer NOT_COORDINATOR (clients ask each id's
// coordinator).
func init() { register(kmsg.DescribeTransactions, 0, 0, plain(serveDescribeTransactions)) }

func serveDescribeTransactions(ctx context.Context, b Broker, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
		d, err := b.Txns().Describe(ctx, id)
		if err != nil {
			st.ErrorCode = kafkaerr.Code(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis, st.StartTimestamp = d.State, d.TimeoutMs, d.StartMs
		st.ProducerID, st.ProducerEpoch = d.ProducerID, d.ProducerEpoch
		for _, tps := range txn.ByTopic(d.Partitions) {
			t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			t.Topic, t.Partitions = tps.Topic, tps.Partitions
			st.Topics = append(st.Topics, t)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
