package health

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// Defaults applied when a CheckSpec reaches the checker without having
// passed registry.NormalizeInstance (it always should; these keep a bad
// record from producing a busy loop).
const (
	defaultInterval           = 10 * time.Second
	maxTimeout                = 2 * time.Second
	defaultUnhealthyThreshold = 3
)

// target is what one probe checks: the check spec of an instance and the
// host:port it resolves to. Two targets are equal exactly when a running
// probe can keep going, so a changed target means a restart.
type target struct {
	key  registry.InstanceKey
	spec registry.CheckSpec
	addr string // host:port, IPv6-safe
}

// targetOf derives the probe target of an instance with a check. It fails
// when the check names a port the instance does not have.
func targetOf(in *registry.Instance) (target, error) {
	if in.Check == nil {
		return target{}, fmt.Errorf("instance %s has no check", in.Key())
	}
	spec := *in.Check // copy: the probe must not see later changes through the pointer
	name := spec.Port
	if name == "" && len(in.Ports) > 0 {
		name = in.Ports[0].Name
	}
	p, ok := in.PortNamed(name)
	if !ok {
		return target{}, fmt.Errorf("instance %s: check port %q not found", in.Key(), name)
	}
	spec.Port = name
	if spec.Interval <= 0 {
		spec.Interval = registry.Duration(defaultInterval)
	}
	if spec.Timeout <= 0 || spec.Timeout > spec.Interval {
		spec.Timeout = registry.Duration(min(maxTimeout, spec.Interval.D()))
	}
	if spec.HealthyThreshold < 1 {
		spec.HealthyThreshold = 1
	}
	if spec.UnhealthyThreshold < 1 {
		spec.UnhealthyThreshold = defaultUnhealthyThreshold
	}
	if spec.Path == "" {
		spec.Path = "/"
	}
	return target{
		key:  in.Key(),
		spec: spec,
		addr: net.JoinHostPort(in.Address, strconv.Itoa(p.Port)),
	}, nil
}
