package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0-4. Advertises the registered APIs, by key; no feature
// flags.
func init() { register(kmsg.ApiVersions, 0, 4, plain(serveApiVersions)) }

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
	return resp
}
