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
	"github.com/tether-iot/tether/sock/dtlssock"
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
	accepted   atomic.Int64 // DTLS sessions accepted, full or resumed
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
// each DTLS session accepted, which watchDTLS splits into full and
// resumed from the listener's own count; DTLS failures are seen
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
	case t == fileserver.DTLS:
		// Full or resumed: the listener knows (watchDTLS); counted
		// there as tether_serve_dtls_sessions_total.
		m.accepted.Add(1)
	default:
		m.handshakes.WithLabelValues(string(t), "full", "").Inc()
	}
}

// watchDTLS adds the DTLS listener's own counts: sessions by how they
// began (a full handshake, or resumed by session ID from the store),
// handshakes that the limits displaced, expired or refused, sessions
// closed idle or evicted, and the sessions live now.
func (m *serveMetrics) watchDTLS(ln net.Listener) {
	counts := func() dtlssock.ListenerStats { c, _ := dtlssock.Counts(ln); return c }
	counter := func(name, help string, f func(dtlssock.ListenerStats) int) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(counts())) })
	}
	sessions := prometheus.NewDesc("tether_serve_dtls_sessions_total", "DTLS sessions accepted, by how they began: a full handshake, or resumed by session ID.", []string{"kind"}, nil)
	m.reg.MustRegister(
		collectorFunc{desc: sessions, collect: func(ch chan<- prometheus.Metric) {
			c := counts()
			full := max(m.accepted.Load()-int64(c.Resumed), 0)
			ch <- prometheus.MustNewConstMetric(sessions, prometheus.CounterValue, float64(full), "full")
			ch <- prometheus.MustNewConstMetric(sessions, prometheus.CounterValue, float64(c.Resumed), "resumed")
		}},
		counter("tether_serve_dtls_handshakes_displaced_total", "Unproven DTLS handshakes ended by a newer ClientHello (the caps were full).", func(c dtlssock.ListenerStats) int { return c.Displaced }),
		counter("tether_serve_dtls_handshakes_expired_total", "Unproven DTLS handshakes that expired.", func(c dtlssock.ListenerStats) int { return c.Expired }),
		counter("tether_serve_dtls_handshakes_refused_total", "ClientHellos dropped: the caps were full of proven handshakes.", func(c dtlssock.ListenerStats) int { return c.Refused }),
		counter("tether_serve_dtls_sessions_idled_total", "DTLS sessions closed after the idle time (their secrets kept to resume).", func(c dtlssock.ListenerStats) int { return c.Idled }),
		counter("tether_serve_dtls_sessions_evicted_total", "DTLS sessions closed to stay within the live sessions' bound.", func(c dtlssock.ListenerStats) int { return c.Evicted }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tether_serve_dtls_live_sessions", Help: "DTLS sessions held now."},
			func() float64 { return float64(counts().Live) }),
	)
}

// collectorFunc is a Collector of one metric family made at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

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
