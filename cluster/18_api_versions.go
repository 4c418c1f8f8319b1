package cluster

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0-4. Advertises apiVersions; no feature flags.
func (n *Node) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	keys := make([]int, 0, len(apiVersions))
	for k := range apiVersions {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		v := apiVersions[int16(k)]
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey = int16(k)
		ak.MinVersion = v[0]
		ak.MaxVersion = v[1]
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}
