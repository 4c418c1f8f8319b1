package kafkaapi

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// AlterConfigs v0-2: replaces every dynamic config of a topic, or the
// dynamic broker configs (the cluster-wide defaults for an empty name, or
// one broker's), with the ones given, through the metadata group. Every
// broker applies the change to its replicas without a restart. Unknown
// names and bad values are INVALID_CONFIG, naming the config; broker
// configs that only a flag sets are INVALID_REQUEST, as in Kafka. A
// resource named twice in one request fails both times.
func init() { register(kmsg.AlterConfigs, 0, 2, plain(serveAlterConfigs)) }

func serveAlterConfigs(ctx context.Context, b Broker, req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	cctx, cancel := requestTimeout(ctx, 0)
	defer cancel()
	named := resourcesNamed(len(req.Resources), func(i int) (kmsg.ConfigResourceType, string) {
		return req.Resources[i].ResourceType, req.Resources[i].ResourceName
	})
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		a := ConfigAlteration{Type: r.ResourceType, Name: r.ResourceName, Replace: true,
			Set: map[string]string{}, ValidateOnly: req.ValidateOnly}
		var err error
		if named[resourceKey{r.ResourceType, r.ResourceName}] > 1 {
			err = kafkaerr.Errorf(kerr.InvalidRequest, "resource %s is named more than once", r.ResourceName)
		}
		for _, c := range r.Configs {
			if _, dup := a.Set[c.Name]; dup && err == nil {
				err = kafkaerr.Errorf(kerr.InvalidRequest, "config %q is given more than once", c.Name)
			}
			if c.Value == nil {
				if err == nil {
					err = kafkaerr.Errorf(kerr.InvalidConfig, "config %q has a null value", c.Name)
				}
				continue
			}
			a.Set[c.Name] = *c.Value
		}
		if err == nil {
			err = b.AlterConfigs(cctx, a)
		}
		rr.ErrorCode, rr.ErrorMessage = kafkaerr.Code(err), kafkaerr.Message(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

type resourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

// resourcesNamed counts how often each resource is named in a request.
func resourcesNamed(n int, at func(int) (kmsg.ConfigResourceType, string)) map[resourceKey]int {
	named := map[resourceKey]int{}
	for i := 0; i < n; i++ {
		t, name := at(i)
		named[resourceKey{t, name}]++
	}
	return named
}
