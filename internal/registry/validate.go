package registry

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/config"
)

// DefaultTTL is the lease given to API registrations that do not name one
// (Eureka's default lease).
const DefaultTTL = 90 * time.Second

// FieldError says which field of an input is wrong. Every edge (HTTP API,
// CLI, Eureka) turns it into a 4xx that names the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Sentinel errors of the registry; the API maps them to status codes in one table.
var (
	ErrNotFound     = errors.New("registry: not found")
	ErrClosed       = errors.New("registry: closed")
	ErrUnavailable  = errors.New("registry: store unavailable")
	ErrHasInstances = errors.New("registry: service has instances")
)

// Limits on input sizes. They keep one bad client from bloating every
// reader's snapshot.
const (
	maxIDLen       = 253
	maxMetaEntries = 64
	maxMetaKey     = 128
	maxMetaValue   = 1024
	maxTags        = 64
	maxTagLen      = 128
	maxPorts       = 32
	maxWeight      = 10000
	maxTTL         = 24 * time.Hour
	minTTL         = time.Second
	defaultWeight  = 1
)

var (
	locationRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// isLabel reports whether s is a lowercase DNS label (config.IsLabel).
func isLabel(s string) bool { return config.IsLabel(s) }

// ValidateName checks a namespace, service or port name: a lowercase DNS
// label (RFC 1123), because DNS names are built from them.
func ValidateName(field, s string) *FieldError {
	switch {
	case s == "":
		return fieldErr(field, "is required")
	case len(s) > 63:
		return fieldErr(field, "must be at most 63 characters")
	case !isLabel(s):
		return fieldErr(field, "must be a lowercase DNS label: a-z, 0-9 and '-', starting and ending with a letter or digit")
	}
	return nil
}

// ValidateID checks an instance id: printable ASCII without '/', '?', '#',
// '%' or spaces, so it is safe in URL paths.
func ValidateID(field, s string) *FieldError {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if len(s) > maxIDLen {
		return fieldErr(field, "must be at most %d characters", maxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("/?#%\\", c) >= 0 {
			return fieldErr(field, "must be printable ASCII without spaces or any of / ? # %% \\")
		}
	}
	return nil
}

// ValidateAddress checks an IP address or a DNS host name.
func ValidateAddress(field, s string) *FieldError {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	if len(s) > 253 {
		return fieldErr(field, "must be an IP address or a host name of at most 253 characters")
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if len(l) == 0 || len(l) > 63 || !locationRE.MatchString(l) || strings.Contains(l, "_") {
			return fieldErr(field, "must be an IP address or a host name")
		}
	}
	return nil
}

var protocols = map[string]bool{"tcp": true, "udp": true, "http": true, "https": true, "http2": true, "grpc": true}

func validateMeta(field string, m map[string]string) *FieldError {
	if len(m) > maxMetaEntries {
		return fieldErr(field, "must have at most %d entries", maxMetaEntries)
	}
	for k, v := range m {
		if k == "" || len(k) > maxMetaKey {
			return fieldErr(field, "keys must be 1 to %d characters", maxMetaKey)
		}
		if strings.ContainsAny(k, " \t\r\n=") {
			return fieldErr(field+"."+k, "key must not contain spaces or '='")
		}
		if len(v) > maxMetaValue {
			return fieldErr(field+"."+k, "value must be at most %d characters", maxMetaValue)
		}
	}
	return nil
}

func validateTags(field string, tags []string) *FieldError {
	if len(tags) > maxTags {
		return fieldErr(field, "must have at most %d tags", maxTags)
	}
	for i, t := range tags {
		if t == "" || len(t) > maxTagLen || strings.ContainsAny(t, " \t\r\n,") {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "must be 1 to %d characters without spaces or commas", maxTagLen)
		}
	}
	return nil
}

// NormalizeService validates s and fills defaults. It does not touch revisions.
func NormalizeService(s *Service) *FieldError {
	if err := ValidateName("namespace", s.Namespace); err != nil {
		return err
	}
	if err := ValidateName("name", s.Name); err != nil {
		return err
	}
	if err := validateMeta("metadata", s.Metadata); err != nil {
		return err
	}
	return validateTags("tags", s.Tags)
}

// NormalizeInstance validates a registration and fills defaults (weight,
// status, source, TTL, health). It is the single gate every writer passes.
func NormalizeInstance(in *Instance) *FieldError {
	if in.Namespace == "" {
		in.Namespace = "default"
	}
	if err := ValidateName("namespace", in.Namespace); err != nil {
		return err
	}
	if err := ValidateName("service", in.Service); err != nil {
		return err
	}
	if err := ValidateID("id", in.ID); err != nil {
		return err
	}
	if err := ValidateAddress("address", in.Address); err != nil {
		return err
	}
	if len(in.Ports) > maxPorts {
		return fieldErr("ports", "must have at most %d entries", maxPorts)
	}
	seen := map[string]bool{}
	for i := range in.Ports {
		p := &in.Ports[i]
		f := fmt.Sprintf("ports[%d]", i)
		if p.Name == "" && len(in.Ports) == 1 {
			p.Name = "default"
		}
		if err := ValidateName(f+".name", p.Name); err != nil {
			return err
		}
		if seen[p.Name] {
			return fieldErr(f+".name", "duplicate port name %q", p.Name)
		}
		seen[p.Name] = true
		if p.Port < 1 || p.Port > 65535 {
			return fieldErr(f+".port", "must be between 1 and 65535")
		}
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if !protocols[p.Protocol] {
			return fieldErr(f+".protocol", "must be one of tcp, udp, http, https, http2, grpc")
		}
	}
	for _, loc := range []struct{ field, v string }{{"zone", in.Zone}, {"region", in.Region}, {"cluster", in.Cluster}} {
		if loc.v != "" && (len(loc.v) > 63 || !locationRE.MatchString(loc.v)) {
			return fieldErr(loc.field, "must be 1 to 63 letters, digits, '-', '_' or '.'")
		}
	}
	if in.Weight == 0 {
		in.Weight = defaultWeight
	}
	if in.Weight < 0 || in.Weight > maxWeight {
		return fieldErr("weight", "must be between 1 and %d", maxWeight)
	}
	if err := validateMeta("metadata", in.Metadata); err != nil {
		return err
	}
	if err := validateTags("tags", in.Tags); err != nil {
		return err
	}
	if in.Source == "" {
		in.Source = "api"
	}
	if err := ValidateName("source", in.Source); err != nil {
		return err
	}
	if in.Status == "" {
		in.Status = StatusUp
	}
	in.Status = Status(strings.ToUpper(string(in.Status)))
	if !in.Status.Valid() {
		return fieldErr("status", "must be one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN")
	}
	if in.StatusOverride != "" {
		in.StatusOverride = Status(strings.ToUpper(string(in.StatusOverride)))
		if !in.StatusOverride.Valid() {
			return fieldErr("statusOverride", "must be one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN")
		}
		if in.StatusOverride == StatusUnknown { // Eureka: UNKNOWN means "no override"
			in.StatusOverride = ""
		}
	}
	if in.TTL < 0 {
		return fieldErr("ttl", "must not be negative")
	}
	if in.TTL != 0 && (in.TTL.D() < minTTL || in.TTL.D() > maxTTL) {
		return fieldErr("ttl", "must be 0 (no lease) or between %s and %s", minTTL, maxTTL)
	}
	if in.RenewInterval < 0 || (in.TTL != 0 && in.RenewInterval.D() > in.TTL.D()) {
		return fieldErr("renewInterval", "must be between 0 and the ttl")
	}
	if in.TTL != 0 && in.RenewInterval == 0 {
		in.RenewInterval = in.TTL / 3
	}
	if in.TTL == 0 {
		in.RenewInterval = 0
	}
	if in.Check != nil {
		if err := normalizeCheck(in.Check, in); err != nil {
			return err
		}
	}
	return nil
}

func normalizeCheck(c *CheckSpec, in *Instance) *FieldError {
	c.Type = strings.ToLower(c.Type)
	switch c.Type {
	case "http", "https", "tcp", "grpc":
	default:
		return fieldErr("check.type", "must be one of http, https, tcp, grpc")
	}
	if len(in.Ports) == 0 {
		return fieldErr("check.port", "the instance has no ports to check")
	}
	if c.Port == "" {
		c.Port = in.Ports[0].Name
	}
	if _, ok := in.PortNamed(c.Port); !ok {
		return fieldErr("check.port", "no port named %q", c.Port)
	}
	if c.Type == "http" || c.Type == "https" {
		if c.Path == "" {
			c.Path = "/"
		}
		if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \t\r\n") {
			return fieldErr("check.path", "must start with '/' and contain no spaces")
		}
	} else if c.Path != "" {
		return fieldErr("check.path", "only applies to http and https checks")
	}
	if c.Interval == 0 {
		c.Interval = Duration(10 * time.Second)
	}
	if c.Interval.D() < 100*time.Millisecond || c.Interval.D() > time.Hour {
		return fieldErr("check.interval", "must be between 100ms and 1h")
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(min(2*time.Second, c.Interval.D()))
	}
	if c.Timeout.D() < 10*time.Millisecond || c.Timeout > c.Interval {
		return fieldErr("check.timeout", "must be between 10ms and the interval")
	}
	if c.HealthyThreshold == 0 {
		c.HealthyThreshold = 1
	}
	if c.UnhealthyThreshold == 0 {
		c.UnhealthyThreshold = 3
	}
	if c.HealthyThreshold < 1 || c.HealthyThreshold > 100 {
		return fieldErr("check.healthyThreshold", "must be between 1 and 100")
	}
	if c.UnhealthyThreshold < 1 || c.UnhealthyThreshold > 100 {
		return fieldErr("check.unhealthyThreshold", "must be between 1 and 100")
	}
	return nil
}

// ValidateStatus checks an override status; UNKNOWN clears the override.
func ValidateStatus(field string, s Status) (Status, *FieldError) {
	s = Status(strings.ToUpper(string(s)))
	if !s.Valid() {
		return "", fieldErr(field, "must be one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN")
	}
	return s, nil
}
