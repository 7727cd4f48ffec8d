package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/dislog/dislog/server/internal/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// adminHandler serves /metrics, /debug/pprof/ and /healthz.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
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
