package bench

import (
	"errors"
	"fmt"
	"time"
)

// Workload is what the clients of a run do.
type Workload string

// The workloads.
const (
	// Sync produces one record at a time with Client.Produce: one record in flight per client. Its
	// latency is each call's.
	Sync Workload = "sync"
	// Async produces through a client.Producer with up to Window records sent and not yet
	// acknowledged per client. Its latency is from Send to the record's result.
	Async Workload = "async"
	// Batch produces Batch records per Client.ProduceBatch call, one call in flight per client. Its
	// latency is each call's.
	Batch Workload = "batch"
	// Replay reads the topic from offset 0 with Client.Subscribe (ConsumeStream), each client on
	// its own stream. Its latency is the time the reading loop waited for each record.
	Replay Workload = "replay"
	// Mixed runs Async producers and Consumers subscribers that follow the topic from where it ended
	// when the run began. The consume latency is end to end: from Send to the subscriber, read from
	// a time stamp in the first 8 bytes of each value.
	Mixed Workload = "mixed"
)

// Workloads lists every workload, in the order the documentation gives them.
var Workloads = []Workload{Sync, Async, Batch, Replay, Mixed}

// Defaults of Config.
const (
	DefaultTopic      = "dislog-bench"
	DefaultRecordSize = 1024
	DefaultWindow     = 1024
	DefaultBatch      = 100
	DefaultPreload    = 100_000
)

// KeyBytes is the size of the key Config.Keys gives each record.
const KeyBytes = 16

// ErrConfig is wrapped by the errors of Config.Validate.
var ErrConfig = errors.New("bench: invalid configuration")

// Config is one run. Exactly one of Count and Duration is set.
type Config struct {
	Workload Workload
	// Topic is created if it does not exist. Default DefaultTopic.
	Topic string
	// Partitions and ReplicationFactor shape the topic if the run creates it: 0 is one partition,
	// on the cluster's default replication factor. A topic that exists is used as it is.
	Partitions        int
	ReplicationFactor int
	// Keys gives every record produced a key of KeyBytes bytes, a different one each, so that
	// records go to the partitions their keys hash to (client.KeyPartition). Without keys, Async
	// and Mixed producers send each batch to a sticky partition (client.Producer's default), and
	// Sync and Batch clients name the topic's partitions in turn (Client.ProduceTo). A Batch call
	// goes to one partition: its records share a key.
	Keys bool
	// Leaders makes the report count, at the end of the run, the partitions each server leads
	// and holds (Report.Leaders).
	Leaders bool
	// Processes, if set, lists the server processes on this machine whose CPU time, disk writes
	// and memory the run measures from /proc (Report.Servers). It is called when the measurement
	// starts and when it ends.
	Processes func() ([]Process, error)
	// RecordSize is the size of each value. Default DefaultRecordSize; Mixed needs at least 8.
	RecordSize int
	// Count is how many records the run produces (or, for Replay, reads) in all, shared among the
	// clients; failed ones count. For Mixed, each consumer reads every record produced.
	Count int64
	// Duration is how long the clients produce or read. A Replay client reads the topic from 0 to
	// its end over and over until then.
	Duration time.Duration
	// Rate limits the records produced (Replay: read) per second by all clients together; 0 is no
	// limit.
	Rate float64
	// Clients is how many clients produce (Replay: read), each on its own connection. Default 1.
	Clients int
	// Window is how many records each Async or Mixed producer has in flight. Default DefaultWindow.
	Window int
	// Linger is the Async and Mixed producers' client.ProducerOptions.Linger: 0 is the client's
	// default, negative sends a batch as soon as the producer may.
	Linger time.Duration
	// Batch is how many records a Batch call carries. Default DefaultBatch.
	Batch int
	// Preload is how many records a Replay run with a Duration makes sure the topic has before it
	// starts. Default DefaultPreload. (With a Count, the topic is topped up to what each client reads.)
	Preload int64
	// Consumers is how many subscribers a Mixed run has. Default 1.
	Consumers int
	// Failover, if set, kills the leader during a Sync, Async or Batch run with a Duration; the
	// report's Failover says how long produce stopped each time.
	Failover *Failover
	// OnProgress, if set, is called about five times a second while the run measures, from one
	// goroutine.
	OnProgress func(Progress)
}

// Progress is how far a run has got.
type Progress struct {
	// Records is how many records have been produced or read, failed ones included, by every client
	// and consumer.
	Records int64
	// Elapsed is the time since the measurement started.
	Elapsed time.Duration
}

// Total is the Progress.Records a run with a Count ends at, or 0 for a run with a Duration.
func (c *Config) Total() int64 {
	if c.Workload == Mixed {
		return c.Count * int64(1+c.Consumers)
	}
	return c.Count
}

// setDefaults fills the zero fields with their defaults.
func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.RecordSize == 0 {
		c.RecordSize = DefaultRecordSize
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Preload == 0 {
		c.Preload = DefaultPreload
	}
	if c.Consumers == 0 {
		c.Consumers = 1
	}
}

// Validate sets the defaults and checks the configuration.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	switch c.Workload {
	case Sync, Async, Batch, Replay, Mixed:
	default:
		bad("unknown workload %q (want one of %v)", c.Workload, Workloads)
	}
	switch {
	case c.Count < 0 || c.Duration < 0:
		bad("negative count %d or duration %s", c.Count, c.Duration)
	case (c.Count > 0) == (c.Duration > 0):
		bad("give a count or a duration, not both or neither (count %d, duration %s)", c.Count, c.Duration)
	}
	if c.RecordSize < 1 || c.Workload == Mixed && c.RecordSize < stampBytes {
		bad("record size %d: the %s workload needs at least %d bytes", c.RecordSize, c.Workload, minRecordSize(c.Workload))
	}
	if c.Rate < 0 {
		bad("negative rate %g", c.Rate)
	}
	if c.Clients < 0 || c.Window < 0 || c.Batch < 0 || c.Preload < 0 || c.Consumers < 0 {
		bad("clients %d, window %d, batch %d, preload %d, consumers %d: none may be negative",
			c.Clients, c.Window, c.Batch, c.Preload, c.Consumers)
	}
	if c.Partitions < 0 || c.Partitions > MaxPartitions {
		bad("%d partitions: want 1 to %d", c.Partitions, MaxPartitions)
	}
	if c.ReplicationFactor < 0 {
		bad("replication factor %d: want 1, 3 or 5 (or 0 for the cluster's default)", c.ReplicationFactor)
	}
	if c.Keys && c.Workload == Replay {
		bad("the replay workload produces no records to key")
	}
	if f := c.Failover; f != nil {
		switch {
		case c.Workload != Sync && c.Workload != Async && c.Workload != Batch:
			bad("the %s workload cannot measure a failover (sync, async and batch can)", c.Workload)
		case c.Duration == 0:
			bad("a failover run needs a duration")
		case f.Kills < 1 || f.Every <= 0 || f.Cluster == nil:
			bad("a failover needs at least one kill, a time between kills and a cluster (kills %d, every %s)", f.Kills, f.Every)
		case c.Duration < time.Duration(f.Kills+1)*f.Every:
			bad("duration %s is too short for %d kills %s apart: give at least %s", c.Duration, f.Kills, f.Every, time.Duration(f.Kills+1)*f.Every)
		}
	}
	return errors.Join(errs...)
}

// MaxPartitions is the most partitions a topic can have.
const MaxPartitions = 1024

// minRecordSize is the smallest value a workload can write: Mixed stamps each with its send time.
func minRecordSize(w Workload) int {
	if w == Mixed {
		return stampBytes
	}
	return 1
}

// share is how many of the Count records client i of n handles: the records are spread as evenly
// as they go.
func share(count int64, i, n int) int64 {
	s := count / int64(n)
	if int64(i) < count%int64(n) {
		s++
	}
	return s
}
