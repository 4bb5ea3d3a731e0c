package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/fileserver"
)

// serveMetrics are serve's Prometheus metrics: the file server's Observer
// (the library links no Prometheus; the command does).
type serveMetrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	blocks     *prometheus.CounterVec
	transfers  *prometheus.CounterVec
	conns      *prometheus.GaugeVec
	handshakes *prometheus.CounterVec
	refused    *prometheus.CounterVec
	draining   atomic.Bool
}

func newServeMetrics() *serveMetrics {
	m := &serveMetrics{reg: prometheus.NewRegistry()}
	tr := []string{"transport"}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_requests_total",
		Help: "Requests answered, by transport and response code (a Non-confirmable request rejected with a Reset counts as 4.02)."}, []string{"transport", "code"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_body_bytes_total",
		Help: "Body bytes sent, blocks sent again included."}, tr)
	m.blocks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_blocks_total",
		Help: "Responses that carried a part of a body."}, tr)
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_transfers_total",
		Help: "Lines of the access log: transfers ended, by result (2.05, incomplete, or an error response's code)."}, []string{"transport", "result"})
	m.conns = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tether_serve_connections",
		Help: "Live TCP and TLS connections and DTLS sessions being served."}, tr)
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_handshakes_total",
		Help: "TLS and DTLS handshakes seen by the server: full, resumed or failed, with the reason of a failure."}, []string{"transport", "kind", "reason"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_serve_refused_total",
		Help: "Connections and sessions turned away by the server's own limits, by reason (max_conns, draining)."}, []string{"transport", "reason"})
	m.reg.MustRegister(m.requests, m.bytes, m.blocks, m.transfers, m.conns, m.handshakes, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, t := range []fileserver.Transport{fileserver.TCP, fileserver.TLS, fileserver.DTLS} {
		m.conns.WithLabelValues(string(t)) // present at zero from the start
	}
	return m
}

func (m *serveMetrics) Request(t fileserver.Transport, code coap.Code) {
	m.requests.WithLabelValues(string(t), codeLabel(code)).Inc()
}

func (m *serveMetrics) Block(t fileserver.Transport, n int) {
	m.blocks.WithLabelValues(string(t)).Inc()
	m.bytes.WithLabelValues(string(t)).Add(float64(n))
}

func (m *serveMetrics) Transfer(x fileserver.Transfer) {
	m.transfers.WithLabelValues(string(x.Transport), x.Result).Inc()
}

func (m *serveMetrics) Conn(t fileserver.Transport, _ net.Conn, open bool) {
	if open {
		m.conns.WithLabelValues(string(t)).Inc()
	} else {
		m.conns.WithLabelValues(string(t)).Dec()
	}
}

// Handshake counts a TLS handshake by whether it resumed a session, and
// each DTLS session accepted as a full handshake: tether's DTLS server
// keeps no session store, so every handshake it completes is full (a
// session restored by Connection ID runs none); its failures are seen
// where the command sees them (an unknown PSK identity, handshakeFailed).
func (m *serveMetrics) Handshake(t fileserver.Transport, c net.Conn, err error) {
	switch {
	case err != nil:
		m.handshakeFailed(t, failureReason(err))
	case t == fileserver.TLS:
		kind := "full"
		if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().DidResume {
			kind = "resumed"
		}
		m.handshakes.WithLabelValues(string(t), kind, "").Inc()
	default:
		m.handshakes.WithLabelValues(string(t), "full", "").Inc()
	}
}

func (m *serveMetrics) handshakeFailed(t fileserver.Transport, reason string) {
	m.handshakes.WithLabelValues(string(t), "failed", reason).Inc()
}

func (m *serveMetrics) Refused(t fileserver.Transport, reason string) {
	m.refused.WithLabelValues(string(t), reason).Inc()
}

// failureReason names why a TLS handshake failed, for a label.
func failureReason(err error) string {
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.As(err, &rec):
		return "not_tls"
	case errors.As(err, &alert):
		return "alert"
	}
	return "error"
}

// codeLabel formats a response code as "2.05".
func codeLabel(c coap.Code) string {
	return string([]byte{'0' + byte(c>>5), '.', '0' + byte(c&31)/10, '0' + byte(c&31)%10})
}

// serve serves /metrics and /healthz on ln until ctx ends. /healthz
// answers 200 while the server serves and 503 once it drains, so that a
// balancer stops sending it new clients.
func (m *serveMetrics) serve(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if m.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	hs.Serve(ln)
}

// peerIdentity names the client of a DTLS session by its PSK identity,
// of a TLS connection by its certificate's subject, in the access log.
func peerIdentity(c net.Conn) string {
	switch c := c.(type) {
	case *dtls.Conn:
		if st, ok := c.ConnectionState(); ok {
			return string(st.IdentityHint)
		}
	case *tls.Conn:
		if certs := c.ConnectionState().PeerCertificates; len(certs) > 0 {
			return certs[0].Subject.String()
		}
	}
	return ""
}
