package kube

import (
	"github.com/prometheus/client_golang/prometheus"
)

// syncErrors counts reconciliations that failed (and were retried), by
// direction ("import", "export"); the importer and exporter share it.
func newSyncErrors(r prometheus.Registerer) (*prometheus.CounterVec, error) {
	return syncRegister(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_kube_sync_errors_total",
		Help: "Reconciliations of the Kubernetes service sync that failed and were retried, by direction (import, export).",
	}, []string{"direction"}))
}

// importMetrics are the importer's metrics.
type importMetrics struct {
	services  prometheus.Gauge
	instances prometheus.Gauge
	dropped   prometheus.Gauge
	errors    prometheus.Counter
}

func newImportMetrics(r prometheus.Registerer) (*importMetrics, error) {
	m := &importMetrics{}
	var err error
	if m.services, err = syncRegister(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_kube_imported_services",
		Help: "Kubernetes Services imported into the registry.",
	})); err != nil {
		return nil, err
	}
	if m.instances, err = syncRegister(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_kube_imported_instances",
		Help: "Registry instances imported from ready EndpointSlice endpoints.",
	})); err != nil {
		return nil, err
	}
	if m.dropped, err = syncRegister(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_kube_import_dropped",
		Help: "Endpoints and ports of imported Services the registry cannot hold, left out (the log says why).",
	})); err != nil {
		return nil, err
	}
	errs, err := newSyncErrors(r)
	if err != nil {
		return nil, err
	}
	m.errors = errs.WithLabelValues("import")
	return m, nil
}
