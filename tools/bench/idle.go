package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/tools/internal/proc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// IdleConfig is a run of the idle benchmark: what many partitions cost when nothing is written to
// them. It creates a topic and times its partitions' elections, measures what each server uses
// while the topic sits idle, and, with Restart, stops every server, starts them again and times
// the elections again.
type IdleConfig struct {
	// Topic is created by the run and must not exist. Default DefaultTopic.
	Topic string
	// Partitions and ReplicationFactor shape the topic; ReplicationFactor 0 is the cluster's
	// default.
	Partitions, ReplicationFactor int
	// Duration is how long the run measures the idle servers. Default 60 s.
	Duration time.Duration
	// LeaderTimeout bounds each wait for every partition to have a leader. Default 2 minutes.
	LeaderTimeout time.Duration
	// Clients is how many connections the run dials to describe the topic (each description
	// goes to some server; more connections reach more of them). Default 3.
	Clients int
	// Processes lists the server processes to measure. Required.
	Processes func() ([]Process, error)
	// Restart, if set, stops every server and returns a function that starts them again; the
	// run times from that call to every partition having a leader.
	Restart func(ctx context.Context) (start func(context.Context) error, err error)
}

// IdleReport is the outcome of an idle run.
type IdleReport struct {
	Topic             string `json:"topic"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	// Target says what the run talked to, for people.
	Target string `json:"target,omitempty"`
	// CreateSeconds is from CreateTopic's call to every partition having a leader;
	// CreateCallSeconds the call alone.
	CreateSeconds     float64 `json:"create_seconds"`
	CreateCallSeconds float64 `json:"create_call_seconds"`
	// IdleSeconds is how long the servers were measured idle, and Servers what each used then;
	// Cluster adds them up.
	IdleSeconds float64       `json:"idle_seconds"`
	Servers     []IdleServer  `json:"servers"`
	Cluster     *ClusterUsage `json:"cluster"`
	// Leaders is the partitions' spread once every partition first had a leader, LeadersIdle at
	// the end of the idle measurement (the preferred-leader election may have moved some since),
	// and LeadersRestart once every partition had a leader again after the restart.
	Leaders        *Leaders `json:"leaders"`
	LeadersIdle    *Leaders `json:"leaders_after_idle"`
	LeadersRestart *Leaders `json:"leaders_after_restart,omitempty"`
	// StopSeconds is how long stopping every server took, and RestartSeconds from starting them
	// again to every partition having a leader; both 0 without a restart.
	StopSeconds    float64 `json:"stop_seconds,omitempty"`
	RestartSeconds float64 `json:"restart_seconds,omitempty"`
}

// IdleServer is one server's use while idle.
type IdleServer struct {
	ServerUsage
	// RSSBeforeBytes is its resident memory before the topic was created; RSSPerReplicaBytes the
	// growth since, over the replicas it holds, and RSSPerPartitionBytes its whole RSS over the
	// topic's partitions.
	RSSBeforeBytes       int64 `json:"rss_before_bytes"`
	Replicas             int   `json:"replicas"`
	RSSPerReplicaBytes   int64 `json:"rss_per_replica_bytes"`
	RSSPerPartitionBytes int64 `json:"rss_per_partition_bytes"`
}

func (c *IdleConfig) validate() error {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Duration == 0 {
		c.Duration = time.Minute
	}
	if c.LeaderTimeout == 0 {
		c.LeaderTimeout = 2 * time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 3
	}
	var errs []error
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("%w: %d partitions: want 1 to %d", ErrConfig, c.Partitions, MaxPartitions))
	}
	if c.Duration < 0 || c.LeaderTimeout < 0 || c.Clients < 0 || c.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("%w: negative duration, timeout, clients or replication factor", ErrConfig))
	}
	if c.Processes == nil {
		errs = append(errs, fmt.Errorf("%w: the idle run measures server processes on this machine: give them", ErrConfig))
	}
	return errors.Join(errs...)
}

// Idle runs the idle benchmark against the servers that dial reaches.
func Idle(ctx context.Context, dial Dial, cfg IdleConfig) (*IdleReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	clients, err := dialClients(dial, cfg.Clients)
	defer closeClients(clients)
	if err != nil {
		return nil, err
	}
	procs, err := cfg.Processes()
	if err != nil {
		return nil, err
	}
	before := map[string]int64{}
	for _, p := range procs {
		u, err := proc.Read(p.PID)
		if err != nil {
			return nil, fmt.Errorf("bench: server %s: %w", p.Name, err)
		}
		before[p.Name] = u.RSSBytes
	}
	servers, err := serverNames(ctx, clients[0])
	if err != nil {
		return nil, err
	}

	rep := &IdleReport{Topic: cfg.Topic}
	start := time.Now()
	_, err = clients[0].CreateTopic(ctx, cfg.Topic, client.TopicConfig{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	if status.Code(err) == codes.AlreadyExists {
		return nil, fmt.Errorf("bench: topic %q exists: the idle run times its creation, so give a new one", cfg.Topic)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: create topic %q: %w", cfg.Topic, err)
	}
	rep.CreateCallSeconds = time.Since(start).Seconds()
	info, err := AwaitLeaders(ctx, clients, cfg.Topic, cfg.LeaderTimeout)
	if err != nil {
		return nil, err
	}
	rep.CreateSeconds = time.Since(start).Seconds()
	rep.Partitions, rep.ReplicationFactor = info.Partitions, info.ReplicationFactor
	rep.Leaders = CountLeaders(info, servers)

	usage := startUsage(func() ([]Process, error) { return procs, nil })
	idleStart := time.Now()
	t := time.NewTimer(cfg.Duration)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	case <-t.C:
	}
	rep.IdleSeconds = time.Since(idleStart).Seconds()
	used, total, err := usage.finish(rep.IdleSeconds, 0, 0)
	if err != nil {
		return nil, err
	}
	if info, err = Describe(ctx, clients, cfg.Topic); err != nil {
		return nil, err
	}
	rep.LeadersIdle = CountLeaders(info, servers)
	rep.Cluster = total
	held := map[string]int{}
	for _, s := range rep.Leaders.Servers {
		held[s.Server] = s.Replicas
	}
	for _, u := range used {
		s := IdleServer{ServerUsage: u, RSSBeforeBytes: before[u.Name], Replicas: held[u.Name]}
		if s.Replicas > 0 {
			s.RSSPerReplicaBytes = (s.RSSBytes - s.RSSBeforeBytes) / int64(s.Replicas)
		}
		s.RSSPerPartitionBytes = s.RSSBytes / int64(rep.Partitions)
		rep.Servers = append(rep.Servers, s)
	}

	if cfg.Restart == nil {
		return rep, nil
	}
	closeClients(clients)
	clients = nil
	stopAt := time.Now()
	startAll, err := cfg.Restart(ctx)
	if err != nil {
		return rep, fmt.Errorf("bench: stop the servers: %w", err)
	}
	rep.StopSeconds = time.Since(stopAt).Seconds()
	restartAt := time.Now()
	if err := startAll(ctx); err != nil {
		return rep, fmt.Errorf("bench: start the servers again: %w", err)
	}
	if clients, err = dialClients(dial, cfg.Clients); err != nil {
		return rep, err
	}
	// The servers may not all answer at first: ask until the topic is described, within the
	// timeout.
	info, err = AwaitLeaders(ctx, clients, cfg.Topic, cfg.LeaderTimeout)
	if err != nil {
		return rep, err
	}
	rep.RestartSeconds = time.Since(restartAt).Seconds()
	rep.LeadersRestart = CountLeaders(info, servers)
	return rep, nil
}

func dialClients(dial Dial, n int) ([]*client.Client, error) {
	var clients []*client.Client
	for range n {
		c, err := dial()
		if err != nil {
			return clients, fmt.Errorf("bench: dial: %w", err)
		}
		clients = append(clients, c)
	}
	return clients, nil
}

func closeClients(clients []*client.Client) {
	for _, c := range clients {
		c.Close()
	}
}

// WriteText writes the report for people.
func (r *IdleReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "idle: topic %q, %s of %d replicas\n", r.Topic, plural(r.Partitions, "partition"), r.ReplicationFactor)
	if r.Target != "" {
		fmt.Fprintf(&b, "target: %s\n", r.Target)
	}
	fmt.Fprintf(&b, "create   every partition had a leader %s after CreateTopic was called (the call took %s)\n",
		seconds(r.CreateSeconds), seconds(r.CreateCallSeconds))
	writeLeaders(&b, "leaders ", r.Leaders)
	fmt.Fprintf(&b, "idle     for %s:\n", seconds(r.IdleSeconds))
	for _, s := range r.Servers {
		if s.Restarted {
			fmt.Fprintf(&b, "server   %s (pid %d): restarted during the run, not measured\n", s.Name, s.PID)
			continue
		}
		fmt.Fprintf(&b, "server   %s (pid %d): CPU %.2fs, %.1f%% of a core; wrote %s; RSS %s (%s before the topic): %s per replica held (%d), %s per partition\n",
			s.Name, s.PID, s.CPUSeconds, 100*s.Cores, mib(s.WriteBytes), mib(s.RSSBytes), mib(s.RSSBeforeBytes),
			kib(s.RSSPerReplicaBytes), s.Replicas, kib(s.RSSPerPartitionBytes))
	}
	if r.LeadersIdle != nil {
		writeLeaders(&b, "leaders ", r.LeadersIdle)
	}
	if r.RestartSeconds > 0 {
		fmt.Fprintf(&b, "restart  every server stopped in %s; every partition had a leader %s after they were started again\n",
			seconds(r.StopSeconds), seconds(r.RestartSeconds))
		writeLeaders(&b, "leaders ", r.LeadersRestart)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }
