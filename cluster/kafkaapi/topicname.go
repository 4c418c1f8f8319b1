package kafkaapi

import "github.com/twmb/franz-go/pkg/kerr"

// ValidTopicName applies Kafka's topic naming rules.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return Errorf(kerr.InvalidTopicException, "topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return Errorf(kerr.InvalidTopicException, "topic name is %d characters, the limit is 249", len(name))
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return Errorf(kerr.InvalidTopicException, "topic name %q has character %q; legal are [a-zA-Z0-9._-]", name, c)
		}
	}
	return nil
}
