package client_test

import (
	"context"
	"fmt"
	"log"
	"slices"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/client/internal/fakelog"
)

// exampleClient dials a fake server holding an empty topic "orders". An application dials its
// cluster instead:
//
//	c, err := client.Dial("127.0.0.1:7070", client.WithTLSFiles(
//		"dislog-data/pki/dev/ca.pem", "dislog-data/pki/dev/dev.pem", "dislog-data/pki/dev/dev-key.pem"))
func exampleClient() (c *client.Client, closeAll func()) {
	srv, err := fakelog.New()
	if err != nil {
		log.Fatal(err)
	}
	srv.AddTopic("orders")
	c, err = client.Dial(srv.Addr, client.WithTLSConfig(srv.ClientTLS))
	if err != nil {
		log.Fatal(err)
	}
	return c, func() {
		c.Close()
		srv.Close()
	}
}

func ExampleProducer() {
	c, closeAll := exampleClient()
	defer closeAll()
	ctx := context.Background()

	p, err := client.NewProducer(c, "orders", client.ProducerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	var results []client.Result
	for _, v := range []string{"placed", "paid", "shipped"} {
		results = append(results, p.Send(ctx, client.Record{Key: []byte("o-17"), Value: []byte(v)}))
	}
	// Close sends what is queued and waits for every result.
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		off, err := r.Wait(ctx)
		if err != nil {
			log.Printf("not written: %v", err)
			continue
		}
		fmt.Println("offset", off)
	}
	// Output:
	// offset 0
	// offset 1
	// offset 2
}

func ExampleClient_Subscribe() {
	c, closeAll := exampleClient()
	defer closeAll()
	ctx := context.Background()
	if _, err := c.ProduceBatch(ctx, "orders", []client.Record{{Value: []byte("placed")}, {Value: []byte("paid")}, {Value: []byte("shipped")}}); err != nil {
		log.Fatal(err)
	}

	// Without StopAtEnd the loop would go on with each new record, until ctx ends or it breaks.
	for rec, err := range c.Subscribe(ctx, "orders", client.AtOffset(1), client.StopAtEnd()) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Offset, string(rec.Value))
	}
	// Output:
	// 1 paid
	// 2 shipped
}

func ExampleDial_cluster() {
	cluster, err := fakelog.NewCluster(3)
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	cluster.AddTopic("orders")
	ctx := context.Background()

	// A few servers of the cluster are enough as seeds: the client asks them for the others,
	// sends produces to the leader and spreads consumes over the followers. Here the target is
	// "dislog:///127.0.0.1:<port>,127.0.0.1:<port>".
	c, err := client.Dial(cluster.Target(0, 1), client.WithTLSConfig(cluster.ClientTLS))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	off, err := c.Produce(ctx, "orders", client.Record{Value: []byte("paid")})
	if err != nil {
		log.Fatal(err)
	}
	servers, err := c.GetServers(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("offset %d, written on a cluster of %d servers\n", off, len(servers))
	// Output:
	// offset 0, written on a cluster of 3 servers
}

// A topic of several partitions: records with a key land on the key's partition, and
// SubscribeAll reads every partition.
func ExampleClient_SubscribeAll() {
	c, closeAll := exampleClient()
	defer closeAll()
	ctx := context.Background()

	if _, err := c.CreateTopic(ctx, "clicks", client.TopicConfig{Partitions: 4}); err != nil {
		log.Fatal(err)
	}
	p, err := client.NewProducer(c, "clicks", client.ProducerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, user := range []string{"ann", "frank", "ann"} {
		p.Send(ctx, client.Record{Key: []byte(user), Value: []byte("click by " + user)})
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for rec, err := range c.SubscribeAll(ctx, "clicks", client.Earliest(), client.StopAtEnd()) {
		if err != nil {
			log.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("partition %d offset %d: %s", rec.Partition, rec.Offset, rec.Value))
	}
	slices.Sort(lines) // the partitions interleave in no set order
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Println("ann's partition:", client.KeyPartition([]byte("ann"), 4))
	// Output:
	// partition 2 offset 0: click by ann
	// partition 2 offset 1: click by ann
	// partition 3 offset 0: click by frank
	// ann's partition: 2
}
