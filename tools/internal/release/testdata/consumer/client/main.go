// Command client is a user of github.com/dislog/dislog/client: it connects to a server with a
// client certificate, creates a topic, produces a record and reads it back.
//
//	client ADDR CA CERT KEY
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dislog/dislog/client"
)

func main() {
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "client consumer:", err)
		os.Exit(1)
	}
	fmt.Println("client: a record produced and consumed")
}

func run(addr, ca, cert, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(addr, client.WithTLSFiles(ca, cert, key))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "from-go", client.TopicConfig{}); err != nil {
		return err
	}
	off, err := c.Produce(ctx, "from-go", client.Record{Value: []byte("hello")})
	if err != nil {
		return err
	}
	rec, err := c.Consume(ctx, "from-go", off)
	if err != nil {
		return err
	}
	if string(rec.Value) != "hello" {
		return fmt.Errorf("read %q at offset %d, want hello", rec.Value, off)
	}
	return nil
}
