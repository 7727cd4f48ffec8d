// Package refusal counts and logs what a server refuses: TLS handshakes that fail (on the client
// port, for gRPC, and for Raft) and calls the ACL denies. Each is a Prometheus counter
// (dislog_tls_handshake_failures_total{reason}, dislog_authz_denied_total{action}) and a WARN log
// line with the peer's address and subject, at most a few a second, so that a misconfigured
// client retrying in a loop shows in the log without flooding it.
package refusal

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/credentials"
)

// Reasons a handshake failed, the values of the reason label.
const (
	// ReasonUnknownAuthority: the peer's certificate is not signed by the cluster's CA.
	ReasonUnknownAuthority = "unknown_authority"
	// ReasonInvalidCertificate: the certificate is expired, not yet valid, or not for its use.
	ReasonInvalidCertificate = "invalid_certificate"
	// ReasonNoCertificate: the peer sent no client certificate.
	ReasonNoCertificate = "no_certificate"
	// ReasonNotServer: a Raft connection with a certificate that is not a server's.
	ReasonNotServer = "not_server_certificate"
	// ReasonNotTLS: the peer does not speak TLS (plain HTTP/2, a port scanner).
	ReasonNotTLS = "not_tls"
	// ReasonPeerAlert: the peer ended the handshake with an alert, typically because it does not
	// trust this server's certificate.
	ReasonPeerAlert = "peer_alert"
	// ReasonClosed: the peer closed the connection during the handshake (a TCP health check).
	ReasonClosed = "closed"
	// ReasonTimeout: the handshake did not finish in time.
	ReasonTimeout = "timeout"
	// ReasonOther: anything else (a protocol version or cipher mismatch, ...).
	ReasonOther = "other"
)

// Logs at most logBurst lines at once and one every logEvery after: the counters count the rest.
const (
	logEvery = time.Second
	logBurst = 5
)

// Recorder counts and logs refusals. It is safe for concurrent use.
type Recorder struct {
	log        *slog.Logger
	handshakes *prometheus.CounterVec
	denials    *prometheus.CounterVec
	logs       *rate.Limiter
}

// New returns a Recorder that logs to log.
func New(log *slog.Logger) *Recorder {
	return &Recorder{
		log: log,
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dislog_tls_handshake_failures_total",
			Help: "TLS handshakes refused or failed, by reason (unknown_authority, invalid_certificate, no_certificate, not_server_certificate, not_tls, peer_alert, closed, timeout, other).",
		}, []string{"reason"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dislog_authz_denied_total",
			Help: "Calls denied with PermissionDenied, by the action they needed (produce, consume, admin, server, none).",
		}, []string{"action"}),
		logs: rate.NewLimiter(rate.Every(logEvery), logBurst),
	}
}

// Collectors are the counters, to register on the server's registry.
func (r *Recorder) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.handshakes, r.denials}
}

// Handshake records a failed handshake of a connection from remote, for what ("gRPC", "Raft").
// subject is the peer certificate's common name where it is known.
func (r *Recorder) Handshake(what, remote, subject, reason string, err error) {
	r.handshakes.WithLabelValues(reason).Inc()
	// A peer that connects and hangs up (a load balancer's TCP check) is not worth a warning.
	level := slog.LevelWarn
	if reason == ReasonClosed {
		level = slog.LevelDebug
	}
	ctx := context.Background()
	if !r.log.Enabled(ctx, level) || !r.logs.Allow() {
		return
	}
	r.log.Log(ctx, level, "refused a TLS handshake",
		slog.String("conn", what), slog.String("remote", remote), slog.String("subject", subject),
		slog.String("reason", reason), slog.Any("error", err))
}

// Denied records a call denied with PermissionDenied.
func (r *Recorder) Denied(remote, subject, method, action string, err error) {
	r.denials.WithLabelValues(action).Inc()
	if !r.logs.Allow() {
		return
	}
	r.log.Warn("denied a call", slog.String("remote", remote), slog.String("subject", subject),
		slog.String("method", method), slog.String("action", action), slog.Any("error", err))
}

// Classify returns the reason a handshake failed with err, and the common name of the peer's
// certificate where the error carries it.
func Classify(err error) (reason, subject string) {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var alert tls.AlertError
	var netErr net.Error
	switch {
	case errors.As(err, &unknown):
		if unknown.Cert != nil {
			subject = unknown.Cert.Subject.CommonName
		}
		return ReasonUnknownAuthority, subject
	case errors.As(err, &invalid):
		if invalid.Cert != nil {
			subject = invalid.Cert.Subject.CommonName
		}
		return ReasonInvalidCertificate, subject
	case errors.As(err, &header):
		return ReasonNotTLS, ""
	case errors.As(err, &alert):
		return ReasonPeerAlert, ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ReasonClosed, ""
	case errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout, ""
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		// crypto/tls has no error type for it.
		return ReasonNoCertificate, ""
	}
	return ReasonOther, ""
}

// Credentials wraps the server's gRPC transport credentials so that each failed handshake is
// recorded.
func (r *Recorder) Credentials(inner credentials.TransportCredentials) credentials.TransportCredentials {
	return &recordingCredentials{TransportCredentials: inner, r: r}
}

type recordingCredentials struct {
	credentials.TransportCredentials
	r *Recorder
}

func (c *recordingCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		reason, subject := Classify(err)
		c.r.Handshake("gRPC", conn.RemoteAddr().String(), subject, reason, err)
	}
	return out, info, err
}

func (c *recordingCredentials) Clone() credentials.TransportCredentials {
	return &recordingCredentials{TransportCredentials: c.TransportCredentials.Clone(), r: c.r}
}
