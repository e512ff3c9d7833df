package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewMetricsRegistry returns a Prometheus registry with the Go runtime and
// process collectors; components add theirs.
func NewMetricsRegistry() *prometheus.Registry {
	pr := prometheus.NewRegistry()
	pr.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return pr
}

func metricsHandler(pr *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(pr, promhttp.HandlerOpts{})
}

type metrics struct {
	latency   *prometheus.HistogramVec
	observers sync.Map // observerKey -> prometheus.Observer
}

type observerKey struct {
	route, method string
	code          int
}

func newMetrics(pr *prometheus.Registry, reg *registry.Registry) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_api_request_duration_seconds",
			Help:    "Latency of native API requests by route pattern, method and status code (blocking queries include their wait).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120},
		}, []string{"route", "method", "code"}),
	}
	pr.MustRegister(m.latency, &registryCollector{reg: reg})
	return m
}

// observe records one request. Observers are cached per label set so the
// request path does not hash labels every time.
func (m *metrics) observe(route, method string, code int, d time.Duration) {
	k := observerKey{route, method, code}
	o, ok := m.observers.Load(k)
	if !ok {
		o, _ = m.observers.LoadOrStore(k, m.latency.WithLabelValues(route, method, strconv.Itoa(code)))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

// registryCollector reads the registry's counters at scrape time, so the
// write path carries no metric updates beyond its own atomics.
type registryCollector struct{ reg *registry.Registry }

var (
	descServices  = prometheus.NewDesc("cairn_registry_services", "Services in the registry.", nil, nil)
	descConfigs   = prometheus.NewDesc("cairn_registry_configs", "Config documents (routes, ...) in the registry.", nil, nil)
	descInstances = prometheus.NewDesc("cairn_registry_instances", "Instances by effective status and health.", []string{"status", "health"}, nil)
	descRevision  = prometheus.NewDesc("cairn_registry_revision", "Revision of the newest change.", nil, nil)
	descRenewals  = prometheus.NewDesc("cairn_registry_renewals_total", "Lease renewals accepted.", nil, nil)
	descEvictions = prometheus.NewDesc("cairn_registry_evictions_total", "Instances evicted because their lease expired.", nil, nil)
	descSPActive  = prometheus.NewDesc("cairn_registry_self_preservation_active", "1 while self-preservation pauses evictions.", nil, nil)
	descSPExpect  = prometheus.NewDesc("cairn_registry_renewals_expected_window", "Renewals expected in the self-preservation window.", nil, nil)
	descSPActual  = prometheus.NewDesc("cairn_registry_renewals_window", "Renewals seen in the self-preservation window.", nil, nil)
	descSubs      = prometheus.NewDesc("cairn_feed_subscribers", "Readers following the change feed (watch streams and blocking queries).", nil, nil)
	descLag       = prometheus.NewDesc("cairn_feed_max_lag_revisions", "Largest distance in revisions between the feed head and a subscriber.", nil, nil)
	descOldest    = prometheus.NewDesc("cairn_feed_oldest_revision", "Oldest revision the feed still holds; older readers resync.", nil, nil)
)

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServices, descConfigs, descInstances, descRevision, descRenewals, descEvictions, descSPActive, descSPExpect, descSPActual, descSubs, descLag, descOldest} {
		ch <- d
	}
}

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.reg.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descServices, float64(st.Services))
	gauge(descConfigs, float64(st.Configs))
	for _, s := range []registry.Status{registry.StatusUp, registry.StatusDown, registry.StatusStarting, registry.StatusOutOfService, registry.StatusUnknown} {
		for _, h := range []registry.Health{registry.HealthNone, registry.HealthUnknown, registry.HealthPassing, registry.HealthFailing} {
			gauge(descInstances, float64(st.Counts[registry.StatusHealth{Status: s, Health: h}]), string(s), string(h))
		}
	}
	gauge(descRevision, float64(st.Revision))
	ch <- prometheus.MustNewConstMetric(descRenewals, prometheus.CounterValue, float64(st.Renewals))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(st.Evictions))
	active := 0.0
	if st.SelfPreservation.Active {
		active = 1
	}
	gauge(descSPActive, active)
	gauge(descSPExpect, float64(st.SelfPreservation.ExpectedRenewals))
	gauge(descSPActual, float64(st.SelfPreservation.RenewalsLastWindow))
	subs, lag := c.reg.Feed().Subscribers()
	gauge(descSubs, float64(subs))
	gauge(descLag, float64(lag))
	gauge(descOldest, float64(c.reg.Feed().Oldest()))
}
