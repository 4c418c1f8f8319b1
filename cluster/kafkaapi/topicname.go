package kafkaapi

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/quirelog/quire/cluster/groups"
	"github.com/quirelog/quire/cluster/kafkaerr"
)

// ValidTopicName applies Kafka's topic naming rules.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return kafkaerr.Errorf(kerr.InvalidTopicException, "topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return kafkaerr.Errorf(kerr.InvalidTopicException, "topic name is %d characters, the limit is 249", len(name))
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return kafkaerr.Errorf(kerr.InvalidTopicException, "topic name %q has character %q; legal are [a-zA-Z0-9._-]", name, c)
		}
	}
	return nil
}

// internalTopics are the topics Quire's coordinators keep their state in.
// Clients may read them, but not create, delete or produce to them.
var internalTopics = map[string]bool{groups.Topic: true, "__transaction_state": true}

// IsInternal reports whether a topic is one of Quire's internal topics.
func IsInternal(name string) bool { return internalTopics[name] }
