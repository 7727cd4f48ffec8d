package client

import (
	"fmt"
	"testing"

	"github.com/matryer/is"
)

// The vectors of Kafka's UtilsTest.testMurmur2: a key lands where a Kafka client would put it.
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		{"\x0c\x2a\x38\x18\x6d\x6f", 274204207},
	} {
		if got := int32(murmur2([]byte(tc.key))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d (Kafka's)", tc.key, got, tc.want)
		}
	}
}

func TestKeyPartitionSpreadsKeysAndStaysInRange(t *testing.T) {
	is := is.New(t)
	is.Equal(KeyPartition([]byte("foobar"), 12), int((-790332482)&0x7fffffff)%12)
	counts := make([]int, 12)
	for i := range 12000 {
		p := KeyPartition(fmt.Appendf(nil, "key-%d", i), 12)
		is.True(p >= 0 && p < 12)
		counts[p]++
	}
	for p, n := range counts {
		if n < 800 || n > 1200 {
			t.Fatalf("partition %d got %d of 12,000 keys, want about 1,000: %v", p, n, counts)
		}
	}
}
