package bench

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; empty for none
	}{
		{"a count with defaults", Config{Workload: Sync, Count: 10}, ""},
		{"a duration with defaults", Config{Workload: Mixed, Duration: time.Second}, ""},
		{"an unknown workload", Config{Workload: "fetch", Count: 1}, `unknown workload "fetch"`},
		{"neither count nor duration", Config{Workload: Sync}, "give a count or a duration, not both or neither"},
		{"both count and duration", Config{Workload: Sync, Count: 1, Duration: time.Second}, "give a count or a duration, not both or neither"},
		{"a negative count", Config{Workload: Sync, Count: -1}, "negative count -1"},
		{"a negative record size", Config{Workload: Sync, Count: 1, RecordSize: -1}, "record size -1"},
		{"a mixed record too small for its send time", Config{Workload: Mixed, Count: 1, RecordSize: 7}, "needs at least 8 bytes"},
		{"a negative rate", Config{Workload: Sync, Count: 1, Rate: -1}, "negative rate"},
		{"negative clients", Config{Workload: Sync, Count: 1, Clients: -2}, "none may be negative"},
		{"partitions", Config{Workload: Async, Count: 1, Partitions: 12, ReplicationFactor: 3, Keys: true}, ""},
		{"too many partitions", Config{Workload: Sync, Count: 1, Partitions: 1025}, "1025 partitions: want 1 to 1024"},
		{"a negative replication factor", Config{Workload: Sync, Count: 1, ReplicationFactor: -1}, "replication factor -1"},
		{"keys for a replay", Config{Workload: Replay, Count: 1, Keys: true}, "the replay workload produces no records to key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := tc.cfg.Validate()
			if tc.want == "" {
				is.NoErr(err)
				is.Equal(tc.cfg.Topic, DefaultTopic)
				is.Equal(tc.cfg.RecordSize, DefaultRecordSize)
				is.Equal(tc.cfg.Clients, 1)
				return
			}
			is.True(errors.Is(err, ErrConfig))
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestShareSpreadsTheCount(t *testing.T) {
	is := is.New(t)
	for _, count := range []int64{0, 1, 7, 100, 101} {
		for n := 1; n <= 4; n++ {
			var sum int64
			for i := range n {
				s := share(count, i, n)
				is.True(s == count/int64(n) || s == count/int64(n)+1) // even
				sum += s
			}
			is.Equal(sum, count) // all of it
		}
	}
}

func TestBurstCoversABatchAndTimerGranularity(t *testing.T) {
	is := is.New(t)
	is.Equal(burst(Config{Workload: Sync, Rate: 50}), 1)
	is.Equal(burst(Config{Workload: Sync, Rate: 1000}), 10)
	is.Equal(burst(Config{Workload: Async, Rate: 250_000}), 2500)
	is.Equal(burst(Config{Workload: Batch, Rate: 1000, Batch: 256}), 256)
}
