package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

// exportMetrics are the exporter's metrics.
type exportMetrics struct {
	services  prometheus.Gauge
	endpoints prometheus.Gauge
	skipped   prometheus.Gauge
	conflicts prometheus.Gauge
	writes    *prometheus.CounterVec
	errors    prometheus.Counter
}

func newExportMetrics(r prometheus.Registerer) (*exportMetrics, error) {
	m := &exportMetrics{}
	gauges := []struct {
		dst        *prometheus.Gauge
		name, help string
	}{
		{&m.services, "cairn_kube_exported_services", "Registry services written to Kubernetes as Services with EndpointSlices."},
		{&m.endpoints, "cairn_kube_exported_endpoints", "Endpoints in the EndpointSlices Cairn writes."},
		{&m.skipped, "cairn_kube_export_skipped", "Instances (without an IP address) and ports of exported services left out of Kubernetes."},
		{&m.conflicts, "cairn_kube_export_conflicts", "Registry services to export whose name a Service not managed by Cairn already has."},
	}
	for _, g := range gauges {
		v, err := syncRegister(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: g.name, Help: g.help}))
		if err != nil {
			return nil, err
		}
		*g.dst = v
	}
	var err error
	if m.writes, err = syncRegister(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_kube_export_writes_total",
		Help: "Writes of the exporter to the Kubernetes API, by resource, verb and result (ok, error).",
	}, []string{"resource", "verb", "result"})); err != nil {
		return nil, err
	}
	errs, err := newSyncErrors(r)
	if err != nil {
		return nil, err
	}
	m.errors = errs.WithLabelValues("export")
	return m, nil
}

// write counts one write to the API.
func (m *exportMetrics) write(resource, verb string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.writes.WithLabelValues(resource, verb, result).Inc()
}
