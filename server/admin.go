package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gometricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// adminHandler serves /metrics, /debug/pprof/, /livez, /readyz and /healthz.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// /livez: the process runs and is not shutting down; a failure means restart it.
	mux.HandleFunc("/livez", func(w http.ResponseWriter, r *http.Request) {
		if s.stopping.Err() != nil {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	// /readyz: the server knows a leader and has applied what the cluster committed, so its reads
	// are current; a failure means send it no traffic yet.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := s.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			http.Error(w, "not serving", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

// readyMaxLag is how many committed Raft entries a ready server may have left to apply: a follower
// under load always trails by a few, one restoring a snapshot or replaying its log by many more.
const readyMaxLag = 1024

// notReady says why the server is not ready, or "" if it is.
func (s *Server) notReady() string {
	if s.stopping.Err() != nil {
		return "shutting down"
	}
	if _, addr := s.cluster.leader(); addr == "" {
		return "no leader known"
	}
	commit, applied := s.cluster.raft.CommitIndex(), s.cluster.raft.AppliedIndex()
	if commit > applied+readyMaxLag {
		return fmt.Sprintf("catching up: applied %d of %d committed Raft entries", applied, commit)
	}
	return ""
}

// exportRaftMetrics sends the metrics hashicorp/raft reports through go-metrics (commit and apply
// times, leader changes, replication per follower, ...) to reg, through go-metrics' own Prometheus
// sink: dislog_raft_commitTime, dislog_raft_leader_lastContact, dislog_raft_replication_appendEntries_rpc
// and the rest, as raft documents them. go-metrics has one process-wide sink, so in a process that
// runs several servers (tests) the last one started gets them.
func exportRaftMetrics(reg prometheus.Registerer) error {
	sink, err := gometricsprom.NewPrometheusSinkFrom(gometricsprom.PrometheusOpts{
		Registerer: reg,
		// A metric not reported for this long is dropped: a follower's replication metrics after
		// it left, a former leader's.
		Expiration: time.Minute,
	})
	if err != nil {
		return err
	}
	conf := gometrics.DefaultConfig("dislog")
	// The Go collector already exports the runtime; the host name is the scrape target's.
	conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
	_, err = gometrics.NewGlobal(conf, sink)
	return err
}

// partitionCollector exports each local partition replica's offsets, size and role when
// Prometheus scrapes.
type partitionCollector struct{ c *cluster }

var (
	partitionLabels        = []string{"topic", "partition"}
	partitionLowestDesc    = prometheus.NewDesc("dislog_partition_lowest_offset", "Offset of the oldest record a partition replica holds.", partitionLabels, nil)
	partitionNextDesc      = prometheus.NewDesc("dislog_partition_next_offset", "Offset after the last committed record of a partition replica.", partitionLabels, nil)
	partitionBytesDesc     = prometheus.NewDesc("dislog_partition_bytes", "Bytes of a partition replica's log segment files, framing included.", partitionLabels, nil)
	partitionSegmentsDesc  = prometheus.NewDesc("dislog_partition_segments", "Segment files of a partition replica's log.", partitionLabels, nil)
	partitionLeaderDesc    = prometheus.NewDesc("dislog_partition_leader", "1 if this server leads the partition, else 0.", partitionLabels, nil)
	partitionInSyncDesc    = prometheus.NewDesc("dislog_partition_in_sync_replicas", "Replicas of the partition that are up, as this server sees them (0 while it has no leader).", partitionLabels, nil)
	partitionReplicasDesc  = prometheus.NewDesc("dislog_partition_replicas", "Replicas the partition is assigned.", partitionLabels, nil)
	partitionLagDesc       = prometheus.NewDesc("dislog_partition_apply_lag_entries", "Raft entries this replica holds and has not applied yet.", partitionLabels, nil)
	partitionViolationDesc = prometheus.NewDesc("dislog_partition_sequence_violations_total", "Idempotent batches the state machine found out of sequence when it applied them (must stay 0).", partitionLabels, nil)
)

func (partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{partitionLowestDesc, partitionNextDesc, partitionBytesDesc, partitionSegmentsDesc,
		partitionLeaderDesc, partitionInSyncDesc, partitionReplicasDesc, partitionLagDesc, partitionViolationDesc} {
		ch <- d
	}
}

func (pc partitionCollector) Collect(ch chan<- prometheus.Metric) {
	if pc.c.replicas == nil {
		return
	}
	pc.c.replicas.each(func(l localReplica) {
		labels := []string{l.topic, strconv.Itoa(l.p)}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		st := l.rep.Stats()
		gauge(partitionLowestDesc, float64(st.Lowest))
		gauge(partitionNextDesc, float64(st.Next))
		gauge(partitionBytesDesc, float64(st.Bytes))
		gauge(partitionSegmentsDesc, float64(st.Segments))
		leader := 0.0
		if st.Leader {
			leader = 1
		}
		gauge(partitionLeaderDesc, leader)
		id, _ := l.rep.Leader()
		gauge(partitionInSyncDesc, float64(len(pc.c.inSync(l.state.Replicas[l.p], string(id)))))
		gauge(partitionReplicasDesc, float64(len(l.state.Replicas[l.p])))
		gauge(partitionLagDesc, float64(st.LastIndex-min(st.LastIndex, st.Applied)))
		ch <- prometheus.MustNewConstMetric(partitionViolationDesc, prometheus.CounterValue, float64(st.SequenceViolations), labels...)
	})
}
