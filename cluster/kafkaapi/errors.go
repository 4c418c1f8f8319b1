package kafkaapi

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// kafkaError pairs a Kafka error code with a message for the client.
type kafkaError struct {
	err *kerr.Error
	msg string
}

func (e *kafkaError) Error() string { return e.err.Message + ": " + e.msg }
func (e *kafkaError) Unwrap() error { return e.err }

// Errorf is a Kafka error with a message for the client: Code finds err's
// code in it, Message the formatted message.
func Errorf(err *kerr.Error, format string, args ...interface{}) error {
	return &kafkaError{err: err, msg: fmt.Sprintf(format, args...)}
}

// Code is the Kafka code of err (0 for nil, UNKNOWN_SERVER_ERROR for
// errors that are not Kafka errors).
func Code(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// Message is the message for a response's ErrorMessage field.
func Message(err error) *string {
	if err == nil {
		return nil
	}
	var ke *kafkaError
	if errors.As(err, &ke) {
		return &ke.msg
	}
	m := err.Error()
	return &m
}

// checkLeaderEpoch applies KIP-320 fencing: a client that names a leader
// epoch older than ours is fenced, one newer than ours knows something we
// do not yet. -1 means the client did not say.
func checkLeaderEpoch(clientEpoch, ourEpoch int32) error {
	switch {
	case clientEpoch < 0 || clientEpoch == ourEpoch:
		return nil
	case clientEpoch < ourEpoch:
		return kerr.FencedLeaderEpoch
	default:
		return kerr.UnknownLeaderEpoch
	}
}
