// Package client is the Go client of Dislog, a distributed commit log.
//
// Dial a server with the client's certificate, then produce and consume records:
//
//	c, err := client.Dial("127.0.0.1:7070", client.WithTLSFiles("ca.pem", "dev.pem", "dev-key.pem"))
//	if err != nil { ... }
//	defer c.Close()
//	offset, err := c.Produce(ctx, "orders", client.Record{Key: []byte("o-17"), Value: []byte("paid")})
//	rec, err := c.Consume(ctx, "orders", offset)
//
// A target "dislog:///host1:port,host2:port" is a cluster: the client asks those servers for the
// others, sends produces to the leader and consumes to the followers, and follows leader changes
// without a restart. Produces are idempotent: a batch carries a producer id and a sequence number,
// and is sent again after a failure that leaves its outcome unknown, and the cluster writes it
// once; a batch whose retries run out fails with ErrUnknownOutcome.
//
// A topic has one or more partitions (TopicConfig.Partitions), each a Raft group of its own with
// its own leader, replicas and offsets. A record with a key goes to KeyPartition(key, partitions):
// murmur2 of the key, as Kafka's default partitioner, so the same key always lands on the same
// partition and users can predict it. The client learns each partition's leader and in-sync
// replicas from DescribeTopic, keeps them per topic, and asks again after the refresh interval,
// when the cluster's servers change, when a server refuses a produce as not the leader, and when a
// produce waits unanswered; it sends a partition's produces to its leader and its reads to one of
// its in-sync followers, over the one connection per server it keeps. A topic that a server
// describes without partitions (a server from before them) is used as before: produces go to the
// cluster's leader, naming no partition. Produce, ProduceBatch, Consume, CommitOffset and
// FetchOffset act on partition 0 (a keyed ProduceBatch on the partition of its first key);
// ProduceTo, ConsumePartition, CommitPartitionOffset, FetchPartitionOffset and the Partition
// option of Subscribe name one, and SubscribeAll reads them all.
//
// Calls return the server's gRPC status errors unchanged: status.Code(err) is codes.NotFound for an
// unknown topic, codes.OutOfRange for an offset the topic does not hold, codes.PermissionDenied when
// the ACL refuses the call, and so on (the list is in api/v1/dislog.proto). The messages say what
// to do about them.
//
// Client covers the synchronous calls. Producer is the asynchronous, batching producer for
// throughput: Send returns at once with a Result per record; it chooses each record's partition
// (by key, a sticky partition per batch for keyless records, or a Partitioner), and each
// partition's batches go pipelined on a ProduceStream to that partition's leader. Subscribe is a Go iterator over a topic's records from an offset, a time, the
// earliest or the latest record, which follows the tail and resumes after a dropped connection
// without skipping or repeating a record. For anything else, API returns the generated
// LogService stub on the same connection.
package client
