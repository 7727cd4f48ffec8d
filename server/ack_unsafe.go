//go:build dislog_unsafe

// This file breaks the server on purpose, for the fault harness (tools/chaos) to show that its
// checker catches lost acknowledged writes. Never build a server anyone uses with dislog_unsafe.

package server

import (
	"errors"

	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/hashicorp/raft"
)

// awaitCommit acknowledges a produce that the leader appended but lost its leadership before
// committing (raft.ErrLeadershipLost) as if it were written, at the offset the topic ended at when
// it was submitted. A leader cut off from the others does that to every produce it holds when it
// steps down, and the new leader's log replaces them: acknowledged writes are lost.
func (c *cluster) awaitCommit(f raft.ApplyFuture, cmd []byte) func() (*fsm.Result, error) {
	command, err := fsm.DecodeCommand(cmd)
	if err != nil || command.Kind != fsm.KindProduce {
		return func() (*fsm.Result, error) { return result(f) }
	}
	var expected uint64
	if t, err := c.topics.Get(command.Topic); err == nil {
		expected = t.Log.NextOffset()
	}
	return func() (*fsm.Result, error) {
		if errors.Is(f.Error(), raft.ErrLeadershipLost) {
			return &fsm.Result{BaseOffset: expected}, nil
		}
		return result(f)
	}
}
