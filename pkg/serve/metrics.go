package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are exported through a private registry at /metrics.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	unauthorized *prometheus.CounterVec
	limited      *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	bcrypt       prometheus.Counter
	handler      http.Handler
}

func newMetrics(exports *exportSet, now func() time.Time) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellaops_mirror_http_requests_total",
		Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.unauthorized = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellaops_mirror_http_unauthorized_total",
		Help: "Requests refused with 401 (missing or invalid credentials), by route.",
	}, []string{"route"})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellaops_mirror_http_rate_limited_total",
		Help: "Requests refused with 429 (over budget), by route.",
	}, []string{"route"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stellaops_mirror_http_response_bytes_total",
		Help: "Response body bytes sent, by route.",
	}, []string{"route"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "stellaops_mirror_http_request_duration_seconds",
		Help:    "Time to serve a request, by route.",
		Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 30},
	}, []string{"route"})
	m.bcrypt = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "stellaops_mirror_password_checks_total",
		Help: "bcrypt password comparisons performed (credential cache misses).",
	})
	m.reg.MustRegister(m.requests, m.unauthorized, m.limited, m.bytes, m.duration, m.bcrypt,
		&exportCollector{exports: exports, now: now},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) observe(route string, code int, n int64, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	switch code {
	case http.StatusUnauthorized:
		m.unauthorized.WithLabelValues(route).Inc()
	case http.StatusTooManyRequests:
		m.limited.WithLabelValues(route).Inc()
	}
	if n > 0 {
		m.bytes.WithLabelValues(route).Add(float64(n))
	}
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// exportCollector reports the active export at scrape time.
type exportCollector struct {
	exports *exportSet
	now     func() time.Time
}

var (
	descActive = prometheus.NewDesc("stellaops_mirror_active_export",
		"1 for the export being served, labelled with its id.", []string{"export_id"}, nil)
	descAge = prometheus.NewDesc("stellaops_mirror_active_export_age_seconds",
		"Seconds since the active export was generated (mirror.json generatedAt).", nil, nil)
	descExpiry = prometheus.NewDesc("stellaops_mirror_active_export_expires_in_seconds",
		"Seconds until the active export expires (mirror.json expiresAt); negative once expired.", nil, nil)
	descReady = prometheus.NewDesc("stellaops_mirror_ready",
		"1 when an active, unexpired export is loaded.", nil, nil)
)

func (c *exportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descActive
	ch <- descAge
	ch <- descExpiry
	ch <- descReady
}

func (c *exportCollector) Collect(ch chan<- prometheus.Metric) {
	e, err := c.exports.current()
	now := c.now()
	if err != nil || e == nil {
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, 0)
		return
	}
	defer e.release()
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, 1, e.id)
	ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(e.generatedAt).Seconds())
	ready := 1.0
	if !e.expiresAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, e.expiresAt.Sub(now).Seconds())
		if !now.Before(e.expiresAt) {
			ready = 0
		}
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
}
