package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/dislog/dislog/client"
	"github.com/matryer/is"
)

// topic describes P partitions whose leaders and replica sets are given.
func topic(rf int, leaders []string, replicas [][]string) client.TopicInfo {
	info := client.TopicInfo{Topic: "t", Partitions: len(leaders), ReplicationFactor: rf}
	for p, l := range leaders {
		info.PartitionInfo = append(info.PartitionInfo, client.PartitionInfo{Partition: p, Leader: l, Replicas: replicas[p]})
	}
	return info
}

func TestCountLeaders(t *testing.T) {
	all := []string{"n1", "n2", "n3"}
	tests := []struct {
		name      string
		info      client.TopicInfo
		servers   []string
		leads     map[string]int
		replicas  map[string]int
		balanced  bool
		leaderles int
	}{
		{"three partitions of three replicas, one led by each server",
			topic(3, []string{"n1", "n2", "n3"}, [][]string{all, all, all}), all,
			map[string]int{"n1": 1, "n2": 1, "n3": 1}, map[string]int{"n1": 3, "n2": 3, "n3": 3}, true, 0},
		{"four partitions on three servers: one server may lead two",
			topic(3, []string{"n1", "n2", "n3", "n1"}, [][]string{all, all, all, all}), all,
			map[string]int{"n1": 2, "n2": 1, "n3": 1}, map[string]int{"n1": 4, "n2": 4, "n3": 4}, true, 0},
		{"one server leading everything is not balanced",
			topic(3, []string{"n1", "n1", "n1", "n1"}, [][]string{all, all, all, all}), all,
			map[string]int{"n1": 4, "n2": 0, "n3": 0}, map[string]int{"n1": 4, "n2": 4, "n3": 4}, false, 0},
		{"a server of the cluster that holds nothing is counted, and unbalances the replicas",
			topic(1, []string{"n1", "n2", "n1"}, [][]string{{"n1"}, {"n2"}, {"n1"}}), all,
			map[string]int{"n1": 2, "n2": 1, "n3": 0}, map[string]int{"n1": 2, "n2": 1, "n3": 0}, true, 0},
		{"a partition without a leader is counted and unbalances the topic",
			topic(3, []string{"n1", "", "n3"}, [][]string{all, all, all}), all,
			map[string]int{"n1": 1, "n2": 0, "n3": 1}, map[string]int{"n1": 3, "n2": 3, "n3": 3}, false, 1},
		{"a replica on a server the list lacks adds it",
			topic(1, []string{"n1", "n9"}, [][]string{{"n1"}, {"n9"}}), []string{"n1"},
			map[string]int{"n1": 1, "n9": 1}, map[string]int{"n1": 1, "n9": 1}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			l := CountLeaders(tc.info, tc.servers)
			is.Equal(l.Partitions, tc.info.Partitions)
			is.Equal(len(l.Servers), len(tc.leads))
			for i, s := range l.Servers {
				if i > 0 {
					is.True(l.Servers[i-1].Server < s.Server) // sorted by name
				}
				is.Equal(s.Leads, tc.leads[s.Server])
				is.Equal(s.Replicas, tc.replicas[s.Server])
			}
			is.Equal(l.Leaderless, tc.leaderles)
			is.Equal(l.Balanced, tc.balanced)
		})
	}
}

func TestKeysAreDistinctAndOfKeyBytes(t *testing.T) {
	is := is.New(t)
	seen := map[string]bool{}
	for _, client := range []int{0, 7, 12345} {
		k := &keys{client: client}
		for range 1000 {
			key := k.next()
			is.Equal(len(key), KeyBytes)
			is.True(!seen[string(key)]) // no key twice, across clients too
			seen[string(key)] = true
		}
	}
	// Keys spread over partitions: 3,000 keys leave no one of 12 partitions empty or crowded.
	counts := make([]int, 12)
	for key := range seen {
		counts[client.KeyPartition([]byte(key), 12)]++
	}
	for p, n := range counts {
		if n < 150 || n > 350 {
			t.Errorf("partition %d got %d of 3000 keys", p, n)
		}
	}
}

func TestUsageOfThisProcess(t *testing.T) {
	is := is.New(t)
	self := func() ([]Process, error) { return []Process{{Name: "me", PID: os.Getpid()}}, nil }
	u := startUsage(self)
	// Some CPU and a file written and synced, so that both counters move.
	f, err := os.CreateTemp(t.TempDir(), "w")
	is.NoErr(err)
	buf := make([]byte, 1<<20)
	for i := range 4 {
		buf[0] = byte(i)
		_, err := f.Write(buf)
		is.NoErr(err)
	}
	is.NoErr(f.Sync())
	is.NoErr(f.Close())
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	_ = x
	servers, total, err := u.finish(1, 1000, 4<<20)
	is.NoErr(err)
	is.Equal(len(servers), 1)
	s := servers[0]
	is.Equal(s.Name, "me")
	is.True(!s.Restarted)
	// The file's 4 MiB, unless the temporary directory is in memory (tmpfs sends nothing to
	// the storage layer).
	is.True(s.WriteBytes >= 0)
	is.Equal(s.WritePerRecordByte, float64(s.WriteBytes)/float64(4<<20))
	is.Equal(s.CPUOfMean, 1.0) // the only server is the mean
	is.Equal(s.WriteOfMean, 1.0)
	is.True(s.RSSBytes > 0)
	is.Equal(total.Servers, 1)
	is.Equal(total.CPUSeconds, s.CPUSeconds)
	is.Equal(total.CPUMicrosPerRecord, s.CPUSeconds*1e6/1000)
}

func TestUsageOfAProcessReplacedDuringTheRunIsLeftOut(t *testing.T) {
	is := is.New(t)
	pid := os.Getpid()
	list := func() ([]Process, error) { return []Process{{Name: "node1", PID: pid}}, nil }
	u := startUsage(list)
	pid = 1 << 30 // node1 is another process now (and none at that pid)
	servers, total, err := u.finish(1, 10, 10)
	is.NoErr(err)
	is.True(servers[0].Restarted)
	is.Equal(total.Servers, 0)
	var b strings.Builder
	(&Report{Servers: servers, Cluster: total}).writeUsage(&b)
	is.True(strings.Contains(b.String(), "restarted during the run, not measured"))
}
