//go:build !dislog_unsafe

package server

import (
	"github.com/dislog/dislog/server/internal/fsm"
	"github.com/hashicorp/raft"
)

// awaitCommit returns the wait for a command the leader appended: the FSM's result, once Raft has
// committed and applied it. (The dislog_unsafe build tag swaps in the deliberately broken one of
// ack_unsafe.go, with which tools/chaos shows that its checker catches lost writes.)
func (c *cluster) awaitCommit(f raft.ApplyFuture, _ []byte) func() (*fsm.Result, error) {
	return func() (*fsm.Result, error) { return result(f) }
}
