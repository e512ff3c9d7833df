package balancer

import (
	"sync"
	"time"
)

// OutlierConfig configures outlier detection (Envoy's consecutive-5xx
// ejection): an endpoint that fails Consecutive times in a row is ejected
// for BaseEjection times the number of its ejections so far, at most
// MaxEjection; at most MaxEjectedPercent of the endpoints are out at once,
// but always at least one may be.
type OutlierConfig struct {
	Consecutive       int           // default 5
	BaseEjection      time.Duration // default 30s
	MaxEjection       time.Duration // default 300s
	MaxEjectedPercent int           // default 10
}

func (c *OutlierConfig) defaults() {
	if c.Consecutive <= 0 {
		c.Consecutive = 5
	}
	if c.BaseEjection <= 0 {
		c.BaseEjection = 30 * time.Second
	}
	if c.MaxEjection <= 0 {
		c.MaxEjection = 300 * time.Second
	}
	if c.MaxEjection < c.BaseEjection {
		c.MaxEjection = c.BaseEjection
	}
	if c.MaxEjectedPercent <= 0 {
		c.MaxEjectedPercent = 10
	}
	c.MaxEjectedPercent = min(c.MaxEjectedPercent, 100)
}

// Outliers ejects failing endpoints of one backend. Result is called for
// every request; it touches only the endpoint's counters unless an
// ejection is due.
type Outliers struct {
	cfg OutlierConfig

	mu  sync.Mutex // ejection decisions
	eps []*Endpoint
}

// NewOutliers returns a detector over the backend's endpoints.
func NewOutliers(cfg OutlierConfig, eps []*Endpoint) *Outliers {
	cfg.defaults()
	return &Outliers{cfg: cfg, eps: eps}
}

// SetEndpoints replaces the endpoint set (their counters carry over).
func (o *Outliers) SetEndpoints(eps []*Endpoint) {
	o.mu.Lock()
	o.eps = eps
	o.mu.Unlock()
}

// Result records how a request to e went: ok is false for a connection
// failure, a reset or a 5xx answer. It reports whether e was ejected now.
func (o *Outliers) Result(e *Endpoint, ok bool, now time.Time) bool {
	if ok {
		e.failures.Store(0)
		// A quiet period as long as the base ejection after the last
		// ejection ended earns one ejection back (Envoy's decrement).
		if n := e.ejections.Load(); n > 0 {
			if until := e.ejection.Load(); until != 0 && now.UnixNano()-until > int64(o.cfg.BaseEjection) {
				if e.ejections.CompareAndSwap(n, n-1) {
					e.ejection.CompareAndSwap(until, now.UnixNano())
				}
			}
		}
		return false
	}
	if e.failures.Add(1) < int32(o.cfg.Consecutive) {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if e.Ejected(now) || e.failures.Load() < int32(o.cfg.Consecutive) {
		return false
	}
	out := 0
	for _, x := range o.eps {
		if x.Ejected(now) {
			out++
		}
	}
	if out+1 > max(1, len(o.eps)*o.cfg.MaxEjectedPercent/100) {
		return false // too many out already: keep it, its failures keep counting
	}
	n := e.ejections.Add(1)
	d := min(time.Duration(n)*o.cfg.BaseEjection, o.cfg.MaxEjection)
	e.Eject(now.Add(d))
	e.failures.Store(0)
	return true
}
