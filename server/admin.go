package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/dislog/dislog/server/internal/topics"
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

// topicCollector exports each topic's offsets and size when Prometheus scrapes.
type topicCollector struct{ topics *topics.Registry }

var (
	topicLowestDesc   = prometheus.NewDesc("dislog_topic_lowest_offset", "Offset of the oldest record a topic holds.", []string{"topic"}, nil)
	topicNextDesc     = prometheus.NewDesc("dislog_topic_next_offset", "Offset the next record produced to a topic gets.", []string{"topic"}, nil)
	topicBytesDesc    = prometheus.NewDesc("dislog_topic_bytes", "Bytes of a topic's segment files, framing included.", []string{"topic"}, nil)
	topicSegmentsDesc = prometheus.NewDesc("dislog_topic_segments", "Segment files of a topic.", []string{"topic"}, nil)
)

func (topicCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- topicLowestDesc
	ch <- topicNextDesc
	ch <- topicBytesDesc
	ch <- topicSegmentsDesc
}

func (c topicCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.topics.List() {
		st := t.Log.Stats()
		ch <- prometheus.MustNewConstMetric(topicLowestDesc, prometheus.GaugeValue, float64(st.LowestOffset), t.Name)
		ch <- prometheus.MustNewConstMetric(topicNextDesc, prometheus.GaugeValue, float64(st.NextOffset), t.Name)
		ch <- prometheus.MustNewConstMetric(topicBytesDesc, prometheus.GaugeValue, float64(st.Bytes), t.Name)
		ch <- prometheus.MustNewConstMetric(topicSegmentsDesc, prometheus.GaugeValue, float64(st.Segments), t.Name)
	}
}
