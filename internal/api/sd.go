package api

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/internal/registry"
)

// targetGroup is one entry of Prometheus' http_sd_configs format.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// prometheusSD lists healthy instances as Prometheus targets, one group per
// instance, labelled like Consul's SD (__meta_cairn_*). The port scraped is
// the one named by ?port=, else the one named "metrics", else the first.
func (s *Server) prometheusSD(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := registry.Filter{Namespace: q.Get("namespace"), Service: q.Get("service"), Tag: q.Get("tag"), HealthyOnly: true}
	for _, p := range []struct{ field, v string }{{"namespace", f.Namespace}, {"service", f.Service}, {"port", q.Get("port")}} {
		if p.v != "" {
			if fe := registry.ValidateName(p.field, p.v); fe != nil {
				s.writeError(w, fe)
				return
			}
		}
	}
	portName := q.Get("port")
	insts, rev := s.reg.Instances(f)
	groups := make([]targetGroup, 0, len(insts))
	for _, in := range insts {
		p, ok := scrapePort(in, portName)
		if !ok {
			continue
		}
		groups = append(groups, targetGroup{
			Targets: []string{net.JoinHostPort(in.Address, strconv.Itoa(p.Port))},
			Labels:  sdLabels(in, p),
		})
	}
	writeIndexed(w, http.StatusOK, rev, groups)
}

func scrapePort(in *registry.Instance, name string) (registry.Port, bool) {
	if name != "" {
		return in.PortNamed(name)
	}
	if p, ok := in.PortNamed("metrics"); ok {
		return p, true
	}
	if len(in.Ports) == 0 {
		return registry.Port{}, false
	}
	return in.Ports[0], true
}

func sdLabels(in *registry.Instance, p registry.Port) map[string]string {
	l := map[string]string{
		"__meta_cairn_namespace":   in.Namespace,
		"__meta_cairn_service":     in.Service,
		"__meta_cairn_instance_id": in.ID,
		"__meta_cairn_address":     in.Address,
		"__meta_cairn_port_name":   p.Name,
		"__meta_cairn_source":      in.Source,
		"__meta_cairn_status":      string(in.EffectiveStatus()),
		"__meta_cairn_health":      string(in.Health),
	}
	if in.Zone != "" {
		l["__meta_cairn_zone"] = in.Zone
	}
	if in.Region != "" {
		l["__meta_cairn_region"] = in.Region
	}
	if in.Cluster != "" {
		l["__meta_cairn_cluster"] = in.Cluster
	}
	if len(in.Tags) > 0 {
		// Leading and trailing separators let a regex match whole tags (",canary,").
		l["__meta_cairn_tags"] = "," + strings.Join(in.Tags, ",") + ","
	}
	for k, v := range in.Metadata {
		l["__meta_cairn_metadata_"+labelName(k)] = v
	}
	return l
}

// labelName turns a metadata key into a valid Prometheus label name suffix.
func labelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
