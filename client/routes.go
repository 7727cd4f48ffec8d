package client

import (
	"context"
	"sync"
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/client/internal/cluster"
)

// Timing of the topic descriptions the client routes by.
const (
	// describeTimeout bounds one round of DescribeTopic calls that learns a topic's leaders.
	describeTimeout = 2 * time.Second
	// describeAttempts is how many servers a round asks at most, one more every hedgeAfter while
	// none has answered: a frozen server must not hold up the news that another leads.
	describeAttempts = 3
)

// topicRoutes is what the client knows of a topic's partitions, from one DescribeTopic answer. It
// is never changed once made: a newer answer replaces it, and closes replaced.
type topicRoutes struct {
	// partitions is the topic's partition count; 0 when the server described none, as a server
	// from before partitions does: then every call goes as it did then (to the cluster's
	// leader, without a partition).
	partitions int
	parts      []*dislogv1.PartitionInfo
	// epoch is the cluster's Leader.Epoch when the answer was asked for.
	epoch   uint64
	fetched time.Time
	// replaced is closed when a newer answer replaces this one, or it is found out of date.
	replaced chan struct{}
}

// known reports whether the server described the topic's partitions.
func (t *topicRoutes) known() bool { return t != nil && t.partitions > 0 }

// count returns the partition count, 1 when unknown.
func (t *topicRoutes) count() int {
	if t.known() {
		return t.partitions
	}
	return 1
}

// leader returns the ID of the server that leads partition p, "" if unknown or in an election.
func (t *topicRoutes) leader(p int) string {
	if !t.known() || p < 0 || p >= len(t.parts) {
		return ""
	}
	return t.parts[p].GetLeader()
}

// route returns where the calls of partition p go; ok is false when the topic's partitions are
// unknown or p is not one of them: such calls go by the servers' cluster roles.
func (t *topicRoutes) route(p int) (r cluster.Route, ok bool) {
	if !t.known() || p < 0 || p >= len(t.parts) {
		return cluster.Route{}, false
	}
	info := t.parts[p]
	return cluster.Route{Leader: info.GetLeader(), LeaderAddr: info.GetLeaderAddr(), Replicas: info.GetInSync()}, true
}

// routeCache keeps the latest description of each topic the client routes calls of. A
// description is renewed when it is older than the resolver's refresh interval, when the
// cluster's server list changes, when a call finds it wrong (a server refuses a produce as not
// the leader, or does not answer), and when a waiting produce asks who leads now.
type routeCache struct {
	c   *Client
	ttl time.Duration

	mu     sync.Mutex
	topics map[string]*routeEntry
}

type routeEntry struct {
	routes *topicRoutes // nil before the first answer
	stale  bool
	// fetching is closed when the round under way ends; nil when none is.
	fetching chan struct{}
	// err is the last round's error, and failed when it ended.
	err    error
	failed time.Time
}

func newRouteCache(c *Client, ttl time.Duration) *routeCache {
	if ttl <= 0 {
		ttl = cluster.DefaultRefresh
	}
	return &routeCache{c: c, ttl: ttl, topics: map[string]*routeEntry{}}
}

func (rc *routeCache) epoch() uint64 {
	if rc.c.leader == nil {
		return 0
	}
	return rc.c.leader.Epoch()
}

// fresh reports whether e's description may be used without asking again.
func (rc *routeCache) fresh(e *routeEntry) bool {
	return e.routes != nil && !e.stale && time.Since(e.routes.fetched) < rc.ttl && e.routes.epoch == rc.epoch()
}

// get returns the topic's description, asking the cluster (avoiding server avoid while another
// answers) when the one it has is out of date.
func (rc *routeCache) get(ctx context.Context, topic, avoid string) (*topicRoutes, error) {
	rc.mu.Lock()
	e := rc.entry(topic)
	if rc.fresh(e) {
		defer rc.mu.Unlock()
		return e.routes, nil
	}
	if e.routes == nil && refused(e.err) && time.Since(e.failed) < rc.ttl {
		// The cluster refused to describe it (an ACL that allows produces and not this, a topic
		// that does not exist): ask again only after the refresh interval.
		defer rc.mu.Unlock()
		return nil, e.err
	}
	rc.mu.Unlock()
	return rc.refresh(ctx, topic, avoid)
}

// peek returns the description the client has of topic, nil if none, without asking; if it is out
// of date, it asks in the background.
func (rc *routeCache) peek(topic string) *topicRoutes {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := rc.entry(topic)
	if !rc.fresh(e) && e.routes != nil {
		rc.startLocked(topic, e, "")
	}
	return e.routes
}

// refreshAsync asks for the topic's description in the background.
func (rc *routeCache) refreshAsync(topic, avoid string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.startLocked(topic, rc.entry(topic), avoid)
}

// refresh asks the cluster for the topic's description, or waits for the round under way, and
// returns the answer; if the round found none, the description it had, or else the round's error.
func (rc *routeCache) refresh(ctx context.Context, topic, avoid string) (*topicRoutes, error) {
	rc.mu.Lock()
	e := rc.entry(topic)
	done := rc.startLocked(topic, e, avoid)
	rc.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e.routes == nil {
		return nil, e.err
	}
	return e.routes, nil
}

// invalidate marks the topic's description out of date: a call found it wrong.
func (rc *routeCache) invalidate(topic string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.entry(topic).stale = true
}

// learn takes a description the caller got itself (DescribeTopic).
func (rc *routeCache) learn(info *dislogv1.TopicInfo, epoch uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.setLocked(rc.entry(info.GetTopic()), newTopicRoutes(info, epoch))
}

func (rc *routeCache) entry(topic string) *routeEntry {
	e := rc.topics[topic]
	if e == nil {
		e = &routeEntry{}
		rc.topics[topic] = e
	}
	return e
}

func newTopicRoutes(info *dislogv1.TopicInfo, epoch uint64) *topicRoutes {
	t := &topicRoutes{epoch: epoch, fetched: time.Now(), replaced: make(chan struct{})}
	if parts := info.GetPartitionInfo(); len(parts) > 0 {
		t.partitions, t.parts = len(parts), parts
	}
	return t
}

func (rc *routeCache) setLocked(e *routeEntry, t *topicRoutes) {
	old := e.routes
	e.routes, e.stale, e.err = t, false, nil
	if old != nil {
		close(old.replaced)
	}
}

// startLocked starts a round of DescribeTopic for topic unless one is under way, and returns the
// channel closed when the round ends.
func (rc *routeCache) startLocked(topic string, e *routeEntry, avoid string) <-chan struct{} {
	if e.fetching != nil {
		return e.fetching
	}
	done := make(chan struct{})
	e.fetching = done
	go func() {
		info, err := rc.describe(topic, avoid)
		// The epoch after the answer: before the first resolution, which a call waits for,
		// the epoch before would make the answer out of date at once.
		epoch := rc.epoch()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		e.fetching = nil
		if err != nil {
			e.err, e.failed = err, time.Now()
		} else {
			rc.setLocked(e, newTopicRoutes(info, epoch))
		}
		close(done)
	}()
	return done
}

// describe asks for a topic's description: one server, then, while none has answered, another
// every hedgeAfter, up to describeAttempts (the picker spreads the calls over the servers, away
// from avoid), and returns the first answer. It runs on its own context: the round serves every
// caller waiting for it.
func (rc *routeCache) describe(topic, avoid string) (*dislogv1.TopicInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	if avoid != "" {
		ctx = cluster.WithRoute(ctx, cluster.Route{Avoid: avoid})
	}
	attempts := 1
	if rc.c.leader != nil {
		attempts = describeAttempts
	}
	type answer struct {
		info *dislogv1.TopicInfo
		err  error
	}
	answers := make(chan answer, attempts)
	ask := func() {
		resp, err := rc.c.api.DescribeTopic(ctx, &dislogv1.DescribeTopicRequest{Topic: topic})
		answers <- answer{resp.GetTopic(), err}
	}
	go ask()
	asked, failed := 1, 0
	hedge := time.NewTicker(hedgeAfter)
	defer hedge.Stop()
	var lastErr error
	for {
		select {
		case a := <-answers:
			if a.err == nil {
				return a.info, nil
			}
			lastErr = a.err
			if failed++; failed == asked && (asked == attempts || refused(a.err)) {
				return nil, lastErr
			}
			if failed == asked {
				asked++
				go ask()
			}
		case <-hedge.C:
			if asked < attempts {
				asked++
				go ask()
			}
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return nil, lastErr
		}
	}
}
