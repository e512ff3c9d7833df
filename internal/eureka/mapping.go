package eureka

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// The mapping between Eureka and Cairn (README, "Using Cairn as a Eureka
// server"):
//
//	Eureka app ORDERS            ↔ service orders in the Eureka namespace (default "default")
//	Eureka app ORDERS.SHOP       ↔ service orders in namespace shop
//	instanceId                   ↔ instance id
//	ipAddr                       ↔ address
//	port / securePort (enabled)  ↔ ports "http" / "https"
//	status / overriddenStatus    ↔ status / statusOverride
//	leaseInfo.durationInSecs     ↔ ttl; renewalIntervalInSecs ↔ renewInterval
//	metadata                     ↔ metadata; metadata "zone" also sets zone
//	everything else Eureka-only  ↔ metadata keys under "eureka." (hidden from Eureka clients)
const metaPrefix = "eureka."

const (
	metaHostName        = metaPrefix + "hostName"
	metaVIP             = metaPrefix + "vipAddress"
	metaSecureVIP       = metaPrefix + "secureVipAddress"
	metaHomePage        = metaPrefix + "homePageUrl"
	metaStatusPage      = metaPrefix + "statusPageUrl"
	metaHealthCheck     = metaPrefix + "healthCheckUrl"
	metaSecureHealth    = metaPrefix + "secureHealthCheckUrl"
	metaLastDirty       = metaPrefix + "lastDirtyTimestamp"
	metaDataCenter      = metaPrefix + "dataCenterInfo"
	metaDataCenterClass = metaPrefix + "dataCenterInfo.class"
	metaDataCenterMeta  = metaPrefix + "dataCenterInfo.metadata." // + key (Amazon's instance-id, ami-id, ...)
	metaCountry         = metaPrefix + "countryId"
	metaAppGroup        = metaPrefix + "appGroupName"
	metaASG             = metaPrefix + "asgName"

	sourceEureka = "eureka"

	defaultDataCenter      = "MyOwn"
	defaultDataCenterClass = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
	amazonDataCenterClass  = "com.netflix.appinfo.AmazonInfo"

	defaultLease   = 90 * time.Second
	defaultRenewal = 30 * time.Second
	maxLease       = 24 * time.Hour
)

// appName is the Eureka application name of a Cairn service.
func (v *view) appName(k registry.ServiceKey) string {
	if k.Namespace == v.ns {
		return strings.ToUpper(k.Name)
	}
	return strings.ToUpper(k.Name + "." + k.Namespace)
}

// defaultVIP is the vipAddress of a service whose instances did not name one.
func (v *view) defaultVIP(k registry.ServiceKey) string {
	if k.Namespace == v.ns {
		return k.Name
	}
	return k.Name + "." + k.Namespace
}

// serviceOf maps a Eureka app name to a Cairn service: "ORDERS" is orders
// in the Eureka namespace, "ORDERS.SHOP" is orders in namespace shop.
func serviceOf(ns, app string) (registry.ServiceKey, *registry.FieldError) {
	name := strings.ToLower(app)
	if i := strings.IndexByte(name, '.'); i >= 0 {
		ns, name = name[i+1:], name[:i]
		if fe := registry.ValidateName("app", ns); fe != nil {
			return registry.ServiceKey{}, &registry.FieldError{Field: "app", Message: fmt.Sprintf("%q: the part after '.' names a Cairn namespace and %s", app, fe.Message)}
		}
	}
	if fe := registry.ValidateName("app", name); fe != nil {
		return registry.ServiceKey{}, &registry.FieldError{Field: "app", Message: fmt.Sprintf("%q must map to a Cairn service name: letters, digits and '-' (optionally \".namespace\"), at most 63 characters", app)}
	}
	return registry.ServiceKey{Namespace: ns, Name: name}, nil
}

// toInstance checks a registration the way Netflix's server does (the
// same fields are required) and maps it to a Cairn instance of service k.
// vip is the vipAddress the view shows when the instance names none.
func toInstance(w *wireInstance, pathApp string, k registry.ServiceKey, vip string) (registry.Instance, error) {
	id := w.InstanceID
	if id == "" && w.DataCenter != nil && w.DataCenter.Name == "Amazon" {
		id = w.DataCenter.Metadata["instance-id"]
	}
	if id == "" {
		id = w.HostName // Netflix's InstanceInfo.getId() falls back the same way
	}
	switch {
	case strings.TrimSpace(id) == "":
		return registry.Instance{}, fieldErr("instanceId", "is required")
	case strings.TrimSpace(w.HostName) == "":
		return registry.Instance{}, fieldErr("hostName", "is required")
	case strings.TrimSpace(w.IPAddr) == "":
		return registry.Instance{}, fieldErr("ipAddr", "is required")
	case strings.TrimSpace(w.App) == "":
		return registry.Instance{}, fieldErr("app", "is required")
	case !strings.EqualFold(w.App, pathApp):
		return registry.Instance{}, fieldErr("app", "mismatched app: the path names %s but the body %s", strings.ToUpper(pathApp), strings.ToUpper(w.App))
	case w.DataCenter == nil:
		return registry.Instance{}, fieldErr("dataCenterInfo", "is required")
	case w.DataCenter.Name == "":
		return registry.Instance{}, fieldErr("dataCenterInfo.name", "is required")
	}
	in := registry.Instance{
		ID: id, Namespace: k.Namespace, Service: k.Name, Address: w.IPAddr, Source: sourceEureka,
		Status: registry.StatusUp,
	}
	if w.Status != "" {
		s, fe := registry.ValidateStatus("status", registry.Status(strings.ToUpper(w.Status)))
		if fe != nil {
			return registry.Instance{}, fe
		}
		in.Status = s
	}
	if w.OverriddenStatus != "" {
		s, fe := registry.ValidateStatus("overriddenStatus", registry.Status(strings.ToUpper(w.OverriddenStatus)))
		if fe != nil {
			return registry.Instance{}, fe
		}
		if s != registry.StatusUnknown {
			in.StatusOverride = s
		}
	}
	for _, p := range []struct {
		field, name string
		wp          wirePort
	}{{"port", "http", w.Port}, {"securePort", "https", w.SecurePort}} {
		if !p.wp.Set || !p.wp.Enabled {
			continue
		}
		if p.wp.Port < 1 {
			return registry.Instance{}, fieldErr(p.field, "must be between 1 and 65535 when enabled")
		}
		in.Ports = append(in.Ports, registry.Port{Name: p.name, Port: p.wp.Port, Protocol: p.name})
	}
	ttl := time.Duration(w.Lease.Duration) * time.Second
	if ttl <= 0 {
		ttl = defaultLease // Netflix: a missing or zero duration is the default
	}
	ttl = min(max(ttl, time.Second), maxLease)
	renew := time.Duration(w.Lease.RenewalInterval) * time.Second
	if renew <= 0 {
		renew = defaultRenewal
	}
	in.TTL, in.RenewInterval = registry.Duration(ttl), registry.Duration(min(renew, ttl))

	meta := make(map[string]string, len(w.Metadata)+8)
	for k, v := range w.Metadata {
		if strings.HasPrefix(k, metaPrefix) {
			return registry.Instance{}, fieldErr("metadata."+k, "keys starting with %q are reserved for the Eureka mapping", metaPrefix)
		}
		meta[k] = v
	}
	set := func(key, v, def string) {
		if v != "" && v != def {
			meta[key] = v
		}
	}
	set(metaHostName, w.HostName, w.IPAddr)
	set(metaVIP, w.VIPAddress, vip)
	set(metaSecureVIP, w.SecureVIPAddress, vip)
	set(metaHomePage, w.HomePageURL, "")
	set(metaStatusPage, w.StatusPageURL, "")
	set(metaHealthCheck, w.HealthCheckURL, "")
	set(metaSecureHealth, w.SecureHealthURL, "")
	set(metaDataCenter, w.DataCenter.Name, defaultDataCenter)
	set(metaDataCenterClass, w.DataCenter.Class, dataCenterClass(w.DataCenter.Name))
	for dk, dv := range w.DataCenter.Metadata {
		set(metaDataCenterMeta+dk, dv, "")
	}
	if n, err := strconv.Atoi(strings.TrimSpace(w.CountryID)); err == nil && n >= 0 {
		set(metaCountry, strconv.Itoa(n), "1")
	}
	set(metaAppGroup, w.AppGroupName, "")
	set(metaASG, w.ASGName, "")
	if w.LastDirty > 0 {
		meta[metaLastDirty] = strconv.FormatInt(w.LastDirty, 10)
	}
	if len(meta) > 0 {
		in.Metadata = meta
	}
	zone := w.Metadata["zone"]
	if zone == "" && w.DataCenter.Metadata != nil {
		zone = w.DataCenter.Metadata["availability-zone"]
	}
	if isLocation(zone) {
		in.Zone = zone // Spring Cloud's zone preference reads the same key
	}
	return in, nil
}

// isLocation reports whether s is a valid Cairn zone: 1 to 63 letters,
// digits, '-', '_' or '.', starting and ending with a letter or digit.
// Other values stay in metadata only.
func isLocation(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return alnum(s[0]) && alnum(s[len(s)-1])
}

func dataCenterClass(name string) string {
	if name == "Amazon" {
		return amazonDataCenterClass
	}
	return defaultDataCenterClass
}

func fieldErr(field, format string, args ...any) *registry.FieldError {
	return &registry.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// eurekaField renames the registry's field names to Eureka's in errors
// about a registration.
func eurekaField(err error) error {
	var fe *registry.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	rename := map[string]string{
		"address": "ipAddr", "id": "instanceId", "service": "app", "namespace": "app",
		"statusOverride": "overriddenStatus", "ttl": "leaseInfo.durationInSecs",
		"renewInterval": "leaseInfo.renewalIntervalInSecs", "zone": "metadata.zone",
	}
	if to, ok := rename[fe.Field]; ok {
		return &registry.FieldError{Field: to, Message: fe.Message}
	}
	return err
}

// lastDirty is the lastDirtyTimestamp the instance registered with, or 0.
func lastDirty(in *registry.Instance) int64 {
	n, _ := strconv.ParseInt(in.Metadata[metaLastDirty], 10, 64)
	return n
}

// userMetadata is the metadata Eureka clients see: the instance's own,
// without the mapping's keys, and with the zone when it has one.
func userMetadata(in *registry.Instance) map[string]string {
	var out map[string]string
	for k, v := range in.Metadata {
		if strings.HasPrefix(k, metaPrefix) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(in.Metadata))
		}
		out[k] = v
	}
	if in.Zone != "" {
		if _, ok := out["zone"]; !ok {
			out = maps.Clone(out)
			if out == nil {
				out = map[string]string{}
			}
			out["zone"] = in.Zone
		}
	}
	return out
}
