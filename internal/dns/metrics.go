package dns

import (
	"strconv"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries       *prometheus.CounterVec
	latency       prometheus.Histogram
	forwarded     *prometheus.CounterVec
	forwardErrors *prometheus.CounterVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_dns_queries_total", Help: "DNS queries answered, by query type and response code.",
		}, []string{"type", "rcode"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_dns_request_duration_seconds", Help: "Time to answer a DNS query (forwarded ones included).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_dns_forwarded_total", Help: "DNS queries forwarded (cache misses), to upstream resolvers or by cluster suffix.",
		}, []string{"to"}),
		forwardErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_dns_forward_errors_total", Help: "Forwarded DNS queries no server answered (SERVFAIL).",
		}, []string{"to"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_dns_cache_hits_total", Help: "Forwarded names answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_dns_cache_misses_total", Help: "Forwarded names not in the cache.",
		}),
	}
	if r != nil {
		r.MustRegister(m.queries, m.latency, m.forwarded, m.forwardErrors, m.cacheHits, m.cacheMisses)
	}
	return m
}

func (m *metrics) observe(qtype string, rcode int, d time.Duration) {
	rc, ok := mdns.RcodeToString[rcode]
	if !ok {
		rc = strconv.Itoa(rcode)
	}
	m.queries.WithLabelValues(qtype, rc).Inc()
	m.latency.Observe(d.Seconds())
}
