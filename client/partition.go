package client

// KeyPartition returns the partition of a topic of partitions partitions that a record with key goes
// to: Kafka's default partitioner, murmur2 of the key with its sign bit cleared, modulo the partition
// count. Records with the same key land on the same partition, and on the same partition that a Kafka
// client would choose, so users can predict and reproduce the placement. partitions must be at least
// one. Records without a key do not use it: a producer sends them to one partition per batch.
func KeyPartition(key []byte, partitions int) int {
	return int(murmur2(key)&0x7fffffff) % partitions
}

// murmur2 is the 32-bit MurmurHash2 as Kafka's Java client computes it (Utils.murmur2, seed
// 0x9747b28c): the tests pin it to that client's own vectors.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := seed ^ uint32(len(data))
	n := len(data) &^ 3
	for i := 0; i < n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) & 3 {
	case 3:
		h ^= uint32(data[n+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[n+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[n])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
