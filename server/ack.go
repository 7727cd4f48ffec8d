//go:build !dislog_unsafe

package server

import "github.com/dislog/dislog/server/internal/partition"

// awaitProduce returns the wait for a produce a partition's leader proposed: the result once Raft
// has committed and applied it. (The dislog_unsafe build tag swaps in the deliberately broken one
// of ack_unsafe.go, with which tools/chaos shows that its checker catches lost writes.)
func awaitProduce(_ *partition.Replica, wait func() (partition.Result, error)) func() (partition.Result, error) {
	return wait
}
