// Package kafkaerr maps Quire's errors to Kafka error codes, in one place
// for the Kafka API and the coordinators behind it.
package kafkaerr

import (
	"context"
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
	// A request that ran out of time before the cluster answered.
	if errors.Is(err, context.DeadlineExceeded) {
		return kerr.RequestTimedOut.Code
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
