package kafkaapi

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// DescribeConfigs v0-4: the configs of topics and of this broker, with
// their sources and (v1+, when asked) the synonyms they override, as
// Kafka reports them: a value set on the topic is a dynamic topic config,
// otherwise the broker's own (log.segment.bytes for segment.bytes) is in
// force. ConfigNames filters; unknown names are left out, as in Kafka.
// Every config is read-only here: none can be altered yet.
//
// Not yet: broker logger resources (INVALID_REQUEST), and describing
// another broker's configs, which that broker answers.
func init() { register(kmsg.DescribeConfigs, 0, 4, plain(serveDescribeConfigs)) }

func serveDescribeConfigs(ctx context.Context, b Broker, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		values, err := b.DescribeConfigs(r.ResourceType, r.ResourceName)
		if err != nil {
			rr.ErrorCode = kafkaerr.Code(err)
			rr.ErrorMessage = kafkaerr.Message(err)
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		for _, v := range values {
			if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, v.Name) {
				continue
			}
			rr.Configs = append(rr.Configs, configEntry(req, v))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func configEntry(req *kmsg.DescribeConfigsRequest, v ConfigValue) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value, c.ReadOnly, c.Source = v.Name, kmsg.StringPtr(v.Value), v.ReadOnly, v.Source
	c.IsDefault = v.Source == kmsg.ConfigSourceDefaultConfig || v.Source == kmsg.ConfigSourceStaticBrokerConfig
	c.ConfigType = v.Type
	if req.IncludeDocumentation {
		c.Documentation = kmsg.StringPtr(v.Doc)
	}
	if req.IncludeSynonyms {
		for _, s := range v.Synonyms {
			cs := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			cs.Name, cs.Value, cs.Source = s.Name, kmsg.StringPtr(s.Value), s.Source
			c.ConfigSynonyms = append(c.ConfigSynonyms, cs)
		}
	}
	return c
}
