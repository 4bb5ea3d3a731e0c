package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fleetMetrics are fleet's Prometheus metrics, for a dashboard beside the
// server's own while a load runs.
type fleetMetrics struct {
	reg        *prometheus.Registry
	started    prometheus.Gauge
	registered prometheus.Gauge
	exchanges  *prometheus.CounterVec
	latency    prometheus.Histogram
	errors     *prometheus.CounterVec
}

func newFleetMetrics() *fleetMetrics {
	m := &fleetMetrics{reg: prometheus.NewRegistry()}
	m.started = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tether_fleet_devices_started", Help: "Devices started."})
	m.registered = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tether_fleet_devices_registered", Help: "Devices the server holds a registration of, at the last summary."})
	m.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_fleet_exchanges_total", Help: "Registers and Updates that succeeded."}, []string{"op"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tether_fleet_exchange_seconds", Help: "How long a Register or an Update took, to its answer.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tether_fleet_errors_total", Help: "Errors the devices met, by operation."}, []string{"op"})
	m.reg.MustRegister(m.started, m.registered, m.exchanges, m.latency, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// serve serves /metrics and /healthz on ln until ctx ends.
func (m *fleetMetrics) serve(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	hs.Serve(ln)
}
