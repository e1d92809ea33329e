package serve

import (
	"net/http"
	"strconv"
	"sync"
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
	routes       sync.Map // route name -> *routeMetrics
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

// routeMetrics caches the children of the vectors for one route, so a
// request does not hash label values.
type routeMetrics struct {
	bytes        prometheus.Counter
	duration     prometheus.Observer
	unauthorized prometheus.Counter
	limited      prometheus.Counter
	codes        sync.Map // int -> prometheus.Counter
}

func (m *metrics) route(name string) *routeMetrics {
	if rm, ok := m.routes.Load(name); ok {
		return rm.(*routeMetrics)
	}
	rm := &routeMetrics{
		bytes:        m.bytes.WithLabelValues(name),
		duration:     m.duration.WithLabelValues(name),
		unauthorized: m.unauthorized.WithLabelValues(name),
		limited:      m.limited.WithLabelValues(name),
	}
	v, _ := m.routes.LoadOrStore(name, rm)
	return v.(*routeMetrics)
}

func (m *metrics) observe(route string, code int, n int64, d time.Duration) {
	rm := m.route(route)
	c, ok := rm.codes.Load(code)
	if !ok {
		c, _ = rm.codes.LoadOrStore(code, m.requests.WithLabelValues(route, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
	switch code {
	case http.StatusUnauthorized:
		rm.unauthorized.Inc()
	case http.StatusTooManyRequests:
		rm.limited.Inc()
	}
	if n > 0 {
		rm.bytes.Add(float64(n))
	}
	rm.duration.Observe(d.Seconds())
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
