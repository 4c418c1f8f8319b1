package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0-4. Advertises the registered APIs, by key, and (v3+) the
// features: transaction.version, supported and finalized at level 2
// (KIP-890), so clients that know it end every transaction with an epoch
// bump and let produce add partitions to it.
func init() { register(kmsg.ApiVersions, 0, 4, plain(serveApiVersions)) }

// TransactionVersion is the transaction.version feature level served.
const TransactionVersion = 2

func serveApiVersions(_ context.Context, _ Broker, req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	for _, k := range keys() {
		a := apis[k]
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey = k
		ak.MinVersion = a.min
		ak.MaxVersion = a.max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, TransactionVersion
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff := kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", TransactionVersion, TransactionVersion
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	resp.FinalizedFeaturesEpoch = 1
	return resp
}
