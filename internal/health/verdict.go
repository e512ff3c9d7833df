package health

import "github.com/cairnhq/cairn/internal/registry"

// verdict applies the healthy and unhealthy thresholds to a stream of check
// results. The zero value with health set is ready to use.
type verdict struct {
	health registry.Health
	passes int // consecutive passes
	fails  int // consecutive failures
}

// observe records one result and returns the new health and whether it
// differs from the previous one. The verdict turns passing after
// healthyThreshold consecutive passes and failing after unhealthyThreshold
// consecutive failures; until then it keeps its current value (unknown
// for a fresh probe). observe does not change v.health: the caller stores
// the new health once the registry has recorded it, so a failed write is
// retried on the next result.
func (v *verdict) observe(pass bool, healthyThreshold, unhealthyThreshold int) (registry.Health, bool) {
	next := v.health
	if pass {
		v.fails = 0
		v.passes++
		if v.passes >= healthyThreshold {
			next = registry.HealthPassing
		}
	} else {
		v.passes = 0
		v.fails++
		if v.fails >= unhealthyThreshold {
			next = registry.HealthFailing
		}
	}
	return next, next != v.health
}
