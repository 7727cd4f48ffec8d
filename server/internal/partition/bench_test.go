package partition

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkProduce produces 1 KiB records to a single-replica group from concurrent callers, in
// batches of 64 and of 1. It reports records/s, the Raft log's bytes per record byte and, where
// /proc/self/io counts them, the bytes the process wrote to storage per record byte.
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{64, 1} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			c := newTestCluster(b, 1, nil)
			leader := c.leader()
			recs := make([][]byte, size)
			for i := range recs {
				recs[i] = bytes.Repeat([]byte{'r'}, 1024)
			}
			ctx := context.Background()
			logBefore, ioBefore := leader.Stats().Bytes, writeBytes()
			b.SetBytes(int64(size * 1024))
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := leader.Produce(ctx, Batch{Records: recs}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			recordBytes := float64(b.N * size * 1024)
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(leader.Stats().Bytes-logBefore)/recordBytes, "log-bytes/record-byte")
			if ioBefore >= 0 {
				b.ReportMetric(float64(writeBytes()-ioBefore)/recordBytes, "io-bytes/record-byte")
			}
		})
	}
}

// writeBytes is the write_bytes of /proc/self/io (bytes this process caused to be written to
// storage), or -1 where there is none.
func writeBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
