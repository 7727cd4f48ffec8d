package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errShuttingDown ends calls that would outlive a server shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "the server is shutting down; retry on another server or after it restarts")

// topicError turns a registry error into a status.
func topicError(err error, topic string) error {
	switch {
	case errors.Is(err, topics.ErrInvalidName):
		return status.Errorf(codes.InvalidArgument, "invalid topic name: %v", trimPrefix(err))
	case errors.Is(err, topics.ErrNotFound):
		return status.Errorf(codes.NotFound, "topic %q does not exist; create it with CreateTopic", topic)
	case errors.Is(err, topics.ErrExists):
		return status.Errorf(codes.AlreadyExists, "topic %q already exists; DescribeTopic shows it", topic)
	case errors.Is(err, topics.ErrInvalidConfig):
		return status.Errorf(codes.InvalidArgument, "invalid topic config: %v", trimPrefix(err))
	}
	return status.Errorf(codes.Internal, "topic %q: %v", topic, err)
}

// ResultError turns the error of an FSM command's result into a status. A status passes as it is.
func ResultError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := err.Error()
	for _, sentinel := range []error{fsm.ErrTopicNotFound, fsm.ErrTopicExists, fsm.ErrSequence, fsm.ErrOffsetPastEnd} {
		if errors.Is(err, sentinel) {
			msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
		}
	}
	switch {
	case errors.Is(err, fsm.ErrTopicNotFound):
		return status.Errorf(codes.NotFound, "%s; create it with CreateTopic", msg)
	case errors.Is(err, fsm.ErrTopicExists):
		return status.Errorf(codes.AlreadyExists, "%s; DescribeTopic shows it", msg)
	case errors.Is(err, fsm.ErrSequence):
		return status.Errorf(codes.FailedPrecondition, "out of sequence: %s", msg)
	case errors.Is(err, fsm.ErrOffsetPastEnd):
		return status.Errorf(codes.OutOfRange, "%s; commit the offset after the last record processed", msg)
	case errors.Is(err, topics.ErrInvalidName), errors.Is(err, topics.ErrInvalidConfig):
		return status.Errorf(codes.InvalidArgument, "%v", trimPrefix(err))
	case errors.Is(err, storelog.ErrRecordTooLarge):
		return status.Errorf(codes.ResourceExhausted, "%v", err)
	}
	return status.Errorf(codes.Internal, "%v", err)
}

// logError turns an error from a topic's log into a status, and logs the ones that mean the server
// or its disk is in trouble.
func (s *Service) logError(ctx context.Context, err error, t *topics.Topic) error {
	st := statusOf(ctx, err, t)
	if c := status.Code(st); c == codes.Internal || c == codes.DataLoss {
		s.cfg.Logger.Error("topic log error", slog.String("topic", t.Name), slog.String("code", c.String()), slog.Any("error", err))
	}
	return st
}

func statusOf(ctx context.Context, err error, t *topics.Topic) error {
	switch {
	case errors.Is(err, storelog.ErrClosed):
		if t.Deleted() {
			return status.Errorf(codes.NotFound, "topic %q was deleted", t.Name)
		}
		return errShuttingDown
	case errors.Is(err, storelog.ErrRecordTooLarge):
		return status.Errorf(codes.ResourceExhausted, "topic %q: %v", t.Name, err)
	case errors.Is(err, storelog.ErrCorrupt), errors.Is(err, codec.ErrMalformed):
		return status.Errorf(codes.DataLoss, "topic %q: stored record failed its checks: %v", t.Name, err)
	case errors.Is(err, storelog.ErrFailed):
		return status.Errorf(codes.Internal, "topic %q takes no writes after a disk error until the server restarts: %v", t.Name, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return errShuttingDown
	}
	return status.Errorf(codes.Internal, "topic %q: %v", t.Name, err)
}

// rangeError explains an offset the topic does not hold.
func rangeError(t *topics.Topic, offset uint64) error {
	low, next := t.Log.LowestOffset(), t.Log.NextOffset()
	if offset < low {
		return status.Errorf(codes.OutOfRange,
			"offset %d of topic %q was deleted by retention; the topic holds offsets [%d, %d); start at %d", offset, t.Name, low, next, low)
	}
	return status.Errorf(codes.OutOfRange,
		"offset %d is past the end of topic %q, whose next offset is %d; the topic holds offsets [%d, %d)", offset, t.Name, next, low, next)
}

// trimPrefix drops the sentinel's package prefix from a wrapped error's message.
func trimPrefix(err error) string {
	for _, sentinel := range []error{topics.ErrInvalidName, topics.ErrInvalidConfig} {
		if errors.Is(err, sentinel) {
			msg := err.Error()
			if p := sentinel.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
				return msg[len(p):]
			}
		}
	}
	return fmt.Sprint(err)
}
