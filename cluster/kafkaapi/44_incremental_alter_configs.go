package kafkaapi

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaerr"
)

// IncrementalAlterConfigs v0-1: sets and deletes the named dynamic configs
// of a topic or of brokers, leaving the others as they are, through the
// metadata group. APPEND and SUBTRACT work on list configs
// (cleanup.policy), starting from the value in force. Errors are as in
// AlterConfigs.
func init() { register(kmsg.IncrementalAlterConfigs, 0, 1, plain(serveIncrementalAlterConfigs)) }

func serveIncrementalAlterConfigs(ctx context.Context, b Broker, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	cctx, cancel := requestTimeout(ctx, 0)
	defer cancel()
	named := resourcesNamed(len(req.Resources), func(i int) (kmsg.ConfigResourceType, string) {
		return req.Resources[i].ResourceType, req.Resources[i].ResourceName
	})
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var err error
		if named[resourceKey{r.ResourceType, r.ResourceName}] > 1 {
			err = kafkaerr.Errorf(kerr.InvalidRequest, "resource %s is named more than once", r.ResourceName)
		}
		a := ConfigAlteration{Type: r.ResourceType, Name: r.ResourceName, Set: map[string]string{}, ValidateOnly: req.ValidateOnly}
		if err == nil {
			err = incrementalOps(b, r, &a)
		}
		if err == nil {
			err = b.AlterConfigs(cctx, a)
		}
		rr.ErrorCode, rr.ErrorMessage = kafkaerr.Code(err), kafkaerr.Message(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// incrementalOps turns a resource's operations into sets and deletes.
func incrementalOps(b Broker, r kmsg.IncrementalAlterConfigsRequestResource, a *ConfigAlteration) error {
	seen := map[string]bool{}
	var current []ConfigValue
	for _, c := range r.Configs {
		if seen[c.Name] {
			return kafkaerr.Errorf(kerr.InvalidRequest, "config %q is given more than once", c.Name)
		}
		seen[c.Name] = true
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if c.Value == nil {
				return kafkaerr.Errorf(kerr.InvalidConfig, "config %q: SET needs a value", c.Name)
			}
			a.Set[c.Name] = *c.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			a.Delete = append(a.Delete, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if current == nil && (r.ResourceType != kmsg.ConfigResourceTypeBroker || r.ResourceName == "") {
				var err error
				if current, err = b.DescribeConfigs(r.ResourceType, r.ResourceName); err != nil {
					return err
				}
			}
			i := slices.IndexFunc(current, func(v ConfigValue) bool { return v.Name == c.Name })
			if i < 0 && r.ResourceType == kmsg.ConfigResourceTypeBroker {
				// Not set for the cluster or that broker: start from the
				// value in force here.
				if here, err := b.DescribeConfigs(r.ResourceType, strconv.Itoa(int(b.Settings().NodeID))); err == nil {
					current = append(current, here...)
					i = slices.IndexFunc(current, func(v ConfigValue) bool { return v.Name == c.Name })
				}
			}
			if i < 0 {
				return kafkaerr.Errorf(kerr.InvalidConfig, "config %q is not supported", c.Name)
			}
			if current[i].Type != kmsg.ConfigTypeList {
				return kafkaerr.Errorf(kerr.InvalidConfig, "config %q is not a list: %v applies to lists only", c.Name, c.Op)
			}
			a.Set[c.Name] = listOp(current[i].Value, c.Value, c.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return kafkaerr.Errorf(kerr.InvalidRequest, "config %q: unknown operation %d", c.Name, c.Op)
		}
	}
	return nil
}

// listOp appends the items of value missing from list, or removes those
// present.
func listOp(list string, value *string, appendItems bool) string {
	var items []string
	for _, it := range strings.Split(list, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	if value != nil {
		for _, it := range strings.Split(*value, ",") {
			it = strings.TrimSpace(it)
			switch {
			case it == "":
			case appendItems && !slices.Contains(items, it):
				items = append(items, it)
			case !appendItems:
				items = slices.DeleteFunc(items, func(x string) bool { return x == it })
			}
		}
	}
	return strings.Join(items, ",")
}
