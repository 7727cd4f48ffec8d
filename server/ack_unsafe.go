//go:build dislog_unsafe

// This file breaks the server on purpose, for the fault harness (tools/chaos) to show that its
// checker catches lost acknowledged writes. Never build a server anyone uses with dislog_unsafe.

package server

import (
	"errors"

	"github.com/dislog/dislog/server/internal/partition"
	"github.com/hashicorp/raft"
)

// awaitProduce acknowledges a produce that a partition's leader proposed but lost its leadership
// before committing (raft.ErrLeadershipLost) as if it were written, at the offset the partition
// ended at when it was proposed. A leader cut off from the others does that to every produce it
// holds when it steps down, and the new leader's log replaces them: acknowledged writes are lost.
func awaitProduce(rep *partition.Replica, wait func() (partition.Result, error)) func() (partition.Result, error) {
	_, expected := rep.Offsets()
	return func() (partition.Result, error) {
		res, err := wait()
		if errors.Is(err, raft.ErrLeadershipLost) {
			return partition.Result{BaseOffset: expected}, nil
		}
		return res, err
	}
}
