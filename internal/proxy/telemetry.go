package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// logRecord is what the access log and metrics learn about one request.
type logRecord struct {
	start           time.Time
	requestID       string
	route           string
	backend         string // the route's backend: service.namespace or address
	upstream        string // the instance: host:port
	status          int
	bytes           int64
	duration        time.Duration
	upstreamLatency time.Duration // to the response head of the try that answered
	retries         int
	err             string
}

// AccessLog writes one JSON line per request. Lines are buffered and
// flushed every second (and on Close), so logging costs no write system
// call per request.
type AccessLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	c    io.Closer
	done chan struct{}
	pool sync.Pool
}

// NewAccessLog starts an access log on w; c, if not nil, is closed by Close.
func NewAccessLog(w io.Writer, c io.Closer) *AccessLog {
	l := &AccessLog{w: bufio.NewWriterSize(w, 64<<10), c: c, done: make(chan struct{})}
	l.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	go l.flusher()
	return l
}

func (l *AccessLog) flusher() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			_ = l.w.Flush()
			l.mu.Unlock()
		case <-l.done:
			return
		}
	}
}

// Close flushes and stops the log.
func (l *AccessLog) Close() error {
	close(l.done)
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if l.c != nil {
		if cerr := l.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func (l *AccessLog) write(r *http.Request, rec *logRecord) {
	bp := l.pool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = rec.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, rec.requestID)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, rec.route)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.Path)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, r.Proto)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, r.RemoteAddr)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.status), 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, rec.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(rec.duration.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"upstream_ms":`...)
	b = strconv.AppendFloat(b, float64(rec.upstreamLatency.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, rec.backend)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, rec.upstream)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(rec.retries), 10)
	if rec.err != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, rec.err)
	}
	b = append(b, "}\n"...)
	l.mu.Lock()
	_, _ = l.w.Write(b)
	l.mu.Unlock()
	*bp = b
	l.pool.Put(bp)
}

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// Metrics are the proxy's Prometheus metrics. Per-route and per-backend
// series are resolved when a config is built, so a request touches only
// counters it already holds.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	upstream   *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	ejections  *prometheus.CounterVec
	overflows  *prometheus.CounterVec
	limited    *prometheus.CounterVec
	configRev  prometheus.Gauge
	configs    *prometheus.CounterVec
	noRoute    prometheus.Counter
	loop       *prometheus.CounterVec // the event loops: exchanges, hand-overs, full sockets
	engine     *Engine
	mu         sync.Mutex
	lastRoutes map[string]bool
}

// NewMetrics registers the proxy's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_requests_total", Help: "Requests proxied, by route, backend and status class (1xx-5xx).",
		}, []string{"route", "backend", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_proxy_request_duration_seconds", Help: "Time from request to the end of the response, by route and backend.", Buckets: buckets,
		}, []string{"route", "backend"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_proxy_upstream_latency_seconds", Help: "Time from sending a try upstream to its response head, by route and backend.", Buckets: buckets,
		}, []string{"route", "backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_retries_total", Help: "Retries, by route.",
		}, []string{"route"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_outlier_ejections_total", Help: "Instances ejected by outlier detection, by route and backend.",
		}, []string{"route", "backend"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_circuit_open_total", Help: "Requests refused at once because an instance was at a circuit-breaking limit, by route and backend.",
		}, []string{"route", "backend"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_rate_limited_total", Help: "Requests refused with 429 by the route's rate limit, by route.",
		}, []string{"route"}),
		configRev: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_proxy_config_revision", Help: "Registry revision of the running proxy config.",
		}),
		configs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_config_updates_total", Help: "Config updates, by result (applied, rejected).",
		}, []string{"result"}),
		noRoute: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_proxy_unrouted_requests_total", Help: "Requests no route matched (404).",
		}),
		loop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_proxy_event_loop_total",
			Help: "What the plain listener's event loops did: exchanges served, connections handed to a goroutine (handoff), writes that found a client's socket full (blocked).",
		}, []string{"event"}),
		lastRoutes: map[string]bool{},
	}
	reg.MustRegister(m.requests, m.duration, m.upstream, m.retries, m.ejections, m.overflows, m.limited, m.configRev, m.configs, m.noRoute, m.loop, upstreamCollector{m})
	return m
}

// Rejected counts a config update that was refused.
func (m *Metrics) Rejected() { m.configs.WithLabelValues("rejected").Inc() }

type routeMetrics struct {
	retries prometheus.Counter
	limited prometheus.Counter // refused by the rate limit
	none    *backendMetrics    // requests that reached no backend
}

type backendMetrics struct {
	classes   [6]prometheus.Counter // 0: unknown, 1-5: 1xx-5xx
	duration  prometheus.Observer
	upstream  prometheus.Observer
	ejections prometheus.Counter
	overflows prometheus.Counter
}

func (m *Metrics) forRoute(name string, bes []*backend) *routeMetrics {
	rm := &routeMetrics{retries: m.retries.WithLabelValues(name), limited: m.limited.WithLabelValues(name)}
	mk := func(be string) *backendMetrics {
		bm := &backendMetrics{
			duration:  m.duration.WithLabelValues(name, be),
			upstream:  m.upstream.WithLabelValues(name, be),
			ejections: m.ejections.WithLabelValues(name, be),
			overflows: m.overflows.WithLabelValues(name, be),
		}
		for i := 1; i <= 5; i++ {
			bm.classes[i] = m.requests.WithLabelValues(name, be, strconv.Itoa(i)+"xx")
		}
		bm.classes[0] = bm.classes[5]
		return bm
	}
	for _, b := range bes {
		b.metrics = mk(b.name) // on the backend: a request finds its series without a lookup
	}
	rm.none = mk("")
	return rm
}

func (rm *routeMetrics) of(be *backend) *backendMetrics {
	if be != nil && be.metrics != nil {
		return be.metrics
	}
	return rm.none
}

func (rm *routeMetrics) observe(be *backend, status int, d, upstream time.Duration) {
	bm := rm.of(be)
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	bm.classes[c].Inc()
	bm.duration.Observe(d.Seconds())
	if upstream > 0 {
		bm.upstream.Observe(upstream.Seconds())
	}
}

func (rm *routeMetrics) ejected(be *backend) { rm.of(be).ejections.Inc() }
func (rm *routeMetrics) shed(be *backend)    { rm.of(be).overflows.Inc() }

func (m *Metrics) unrouted(status int) {
	if status == http.StatusNotFound {
		m.noRoute.Inc()
	}
}

// configApplied records a new config and drops the series of routes it no
// longer has.
func (m *Metrics) configApplied(st *state) {
	m.configs.WithLabelValues("applied").Inc()
	m.configRev.Set(float64(st.revision))
	m.mu.Lock()
	defer m.mu.Unlock()
	now := map[string]bool{}
	for _, r := range st.routes {
		now[r.name] = true
	}
	for name := range m.lastRoutes {
		if !now[name] {
			l := prometheus.Labels{"route": name}
			m.requests.DeletePartialMatch(l)
			m.duration.DeletePartialMatch(l)
			m.upstream.DeletePartialMatch(l)
			m.retries.DeletePartialMatch(l)
			m.ejections.DeletePartialMatch(l)
			m.overflows.DeletePartialMatch(l)
			m.limited.DeletePartialMatch(l)
		}
	}
	m.lastRoutes = now
}

// upstreamCollector reports per-instance gauges at scrape time.
type upstreamCollector struct{ m *Metrics }

var (
	upActiveDesc  = prometheus.NewDesc("cairn_proxy_upstream_active_requests", "Requests in flight to a backend instance.", []string{"instance"}, nil)
	upConnsDesc   = prometheus.NewDesc("cairn_proxy_upstream_connections", "Open connections to a backend instance.", []string{"instance"}, nil)
	upEjectedDesc = prometheus.NewDesc("cairn_proxy_upstream_ejected", "1 while outlier detection keeps a backend instance out of rotation.", []string{"instance"}, nil)
	upCircuitDesc = prometheus.NewDesc("cairn_proxy_upstream_circuit_open", "1 while a backend instance is at its request limit (new requests get a fast 503).", []string{"instance"}, nil)
)

func (c upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upActiveDesc
	ch <- upConnsDesc
	ch <- upEjectedDesc
	ch <- upCircuitDesc
}

func (c upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.m.engine
	if e == nil {
		return
	}
	now := time.Now()
	type entry struct {
		u  *upstream
		ep interface{ Ejected(time.Time) bool }
	}
	e.mu.Lock()
	ups := make([]entry, 0, len(e.upstreams))
	for _, u := range e.upstreams {
		ups = append(ups, entry{u, u.ep})
	}
	e.mu.Unlock()
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, x := range ups {
		u := x.u
		ch <- prometheus.MustNewConstMetric(upActiveDesc, prometheus.GaugeValue, float64(u.requests.Load()), u.key)
		ch <- prometheus.MustNewConstMetric(upConnsDesc, prometheus.GaugeValue, float64(u.conns.Load()), u.key)
		ch <- prometheus.MustNewConstMetric(upEjectedDesc, prometheus.GaugeValue, b2f(x.ep.Ejected(now)), u.key)
		ch <- prometheus.MustNewConstMetric(upCircuitDesc, prometheus.GaugeValue, b2f(u.requests.Load() >= u.maxRequests.Load()), u.key)
	}
}
