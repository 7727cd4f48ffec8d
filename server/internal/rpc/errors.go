package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dislog/dislog/server/internal/codec"
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/dislog/dislog/server/internal/partition"
	"github.com/dislog/dislog/server/internal/topics"
	"github.com/dislog/dislog/storelog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errShuttingDown ends calls that would outlive a server shutdown.
var errShuttingDown = status.Error(codes.Unavailable, "the server is shutting down; retry on another server or after it restarts")

// topicError turns a topic error into a status.
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

// ResultError turns the error of a controller command's result, or of a partition's produce, into
// a status. A status passes as it is.
func ResultError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := err.Error()
	for _, sentinel := range []error{fsm.ErrTopicNotFound, fsm.ErrTopicExists, fsm.ErrPartitionNotFound, partition.ErrSequence} {
		if errors.Is(err, sentinel) {
			msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
		}
	}
	switch {
	case errors.Is(err, fsm.ErrTopicNotFound):
		return status.Errorf(codes.NotFound, "%s; create it with CreateTopic", msg)
	case errors.Is(err, fsm.ErrTopicExists):
		return status.Errorf(codes.AlreadyExists, "%s; DescribeTopic shows it", msg)
	case errors.Is(err, fsm.ErrPartitionNotFound):
		return status.Errorf(codes.InvalidArgument, "%s", msg)
	case errors.Is(err, partition.ErrSequence):
		return status.Errorf(codes.FailedPrecondition, "out of sequence: %s", msg)
	case errors.Is(err, topics.ErrInvalidName), errors.Is(err, topics.ErrInvalidConfig):
		return status.Errorf(codes.InvalidArgument, "%v", trimPrefix(err))
	case errors.Is(err, storelog.ErrRecordTooLarge):
		return status.Errorf(codes.ResourceExhausted, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%v", err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%v", err)
	}
	return status.Errorf(codes.Internal, "%v", err)
}

// readError turns an error of a read from a partition replica into a status, and logs the ones
// that mean the server or its disk is in trouble.
func (s *Service) readError(ctx context.Context, err error, pt part, offset uint64) error {
	if errors.Is(err, partition.ErrClosed) {
		if _, ok := s.cfg.Cluster.Topic(pt.topic); !ok {
			return status.Errorf(codes.NotFound, "topic %q was deleted", pt.topic)
		}
	}
	st := readStatus(ctx, err, pt, offset)
	if c := status.Code(st); c == codes.Internal || c == codes.DataLoss {
		s.cfg.Logger.Error("partition read error", slog.String("topic", pt.topic), slog.Uint64("partition", uint64(pt.p)),
			slog.String("code", c.String()), slog.Any("error", err))
	}
	return st
}

func readStatus(ctx context.Context, err error, pt part, offset uint64) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, partition.ErrOffsetOutOfRange):
		return rangeError(pt, offset)
	case errors.Is(err, partition.ErrClosed), errors.Is(err, storelog.ErrClosed):
		return status.Errorf(codes.Unavailable, "partition %d of topic %q is closed on this server (the topic was deleted, or the server is stopping)", pt.p, pt.topic)
	case errors.Is(err, storelog.ErrCorrupt), errors.Is(err, codec.ErrMalformed):
		return status.Errorf(codes.DataLoss, "partition %d of topic %q: stored record failed its checks: %v", pt.p, pt.topic, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return errShuttingDown
	}
	return status.Errorf(codes.Internal, "partition %d of topic %q: %v", pt.p, pt.topic, err)
}

// rangeError explains an offset the partition does not hold.
func rangeError(pt part, offset uint64) error {
	low, next := pt.rep.Offsets()
	if offset < low {
		return status.Errorf(codes.OutOfRange,
			"offset %d of partition %d of topic %q was deleted by retention; the partition holds offsets [%d, %d); start at %d", offset, pt.p, pt.topic, low, next, low)
	}
	return status.Errorf(codes.OutOfRange,
		"offset %d is past the end of partition %d of topic %q, whose next offset is %d; the partition holds offsets [%d, %d)", offset, pt.p, pt.topic, next, low, next)
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
