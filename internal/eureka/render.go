package eureka

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairnhq/cairn/internal/registry"
)

// einst is a Cairn instance as Eureka clients see it. It is made once per
// change of the instance; its encodings are made on first use and kept.
type einst struct {
	in       *registry.Instance
	app      string
	status   registry.Status
	hostName string
	vip      string
	svip     string
	// action and updated are the instance's last change as Netflix's
	// server keeps them on the instance: ADDED until it is modified, and
	// when the view saw the change (its lastUpdatedTimestamp).
	action  registry.EventType
	updated time.Time

	json, xml []byte // fragments with action, made lazily under the view's lock
}

// eurekaStatus is the status Eureka clients see. They route to UP
// instances only, so an instance that says UP but fails (or has not yet
// passed) Cairn's active health check is shown DOWN (or STARTING).
func eurekaStatus(in *registry.Instance) registry.Status {
	s := in.EffectiveStatus()
	if s == registry.StatusUp {
		switch in.Health {
		case registry.HealthFailing:
			return registry.StatusDown
		case registry.HealthUnknown:
			return registry.StatusStarting
		}
	}
	return s
}

// render makes the Eureka form of in, last changed by action at updated
// (a zero time: when it registered).
func (v *view) render(in *registry.Instance, action registry.EventType, updated time.Time) *einst {
	k := in.Key().ServiceKey()
	if updated.IsZero() {
		updated = in.RegisteredAt
	}
	e := &einst{in: in, app: v.appName(k), status: eurekaStatus(in), action: action, updated: updated}
	e.hostName = or(in.Metadata[metaHostName], in.Address)
	def := v.defaultVIP(k)
	e.vip = or(in.Metadata[metaVIP], def)
	e.svip = or(in.Metadata[metaSecureVIP], def)
	return e
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ports picks Eureka's port and securePort from the instance's ports:
// "http"/"https" by name, else by protocol, else the first other port.
func ports(in *registry.Instance) (port, secure registry.Port) {
	for _, p := range in.Ports {
		switch {
		case p.Name == "https" || (secure.Port == 0 && p.Protocol == "https"):
			secure = p
		case p.Name == "http" || port.Port == 0:
			if port.Name != "http" {
				port = p
			}
		}
	}
	return port, secure
}

// fields is the instance as Eureka's field list, in the order Netflix's
// codecs write it. Both encoders walk it, so JSON and XML agree.
type fields struct {
	e                                 *einst
	port, secure                      registry.Port
	country                           string
	dcName, dcClass                   string
	dcMeta, meta                      map[string]string
	renewSecs, durationSecs           int64
	registered, renewed               int64
	homePage, statusPage, healthCheck string
	secureHealthCheck, appGroup, asg  string
	lastDirty                         int64
	override                          registry.Status
}

func (e *einst) fields() fields {
	in := e.in
	f := fields{e: e, override: in.StatusOverride}
	if f.override == "" {
		f.override = registry.StatusUnknown
	}
	f.port, f.secure = ports(in)
	f.country = "1"
	if n, err := strconv.Atoi(in.Metadata[metaCountry]); err == nil && n >= 0 {
		f.country = strconv.Itoa(n) // written into JSON as a number: never unchecked text
	}
	f.dcName = or(in.Metadata[metaDataCenter], defaultDataCenter)
	f.dcClass = or(in.Metadata[metaDataCenterClass], dataCenterClass(f.dcName))
	for k, v := range in.Metadata {
		if dk, ok := strings.CutPrefix(k, metaDataCenterMeta); ok {
			if f.dcMeta == nil {
				f.dcMeta = map[string]string{}
			}
			f.dcMeta[dk] = v
		}
	}
	f.meta = userMetadata(in)
	f.renewSecs = int64(in.RenewInterval.D().Seconds())
	f.durationSecs = int64(in.TTL.D().Seconds())
	f.registered = millis(in.RegisteredAt)
	f.renewed = millis(in.LastRenewedAt)
	f.homePage = in.Metadata[metaHomePage]
	f.statusPage = in.Metadata[metaStatusPage]
	f.healthCheck = in.Metadata[metaHealthCheck]
	f.secureHealthCheck = in.Metadata[metaSecureHealth]
	if in.Source != sourceEureka {
		// Instances from the native API or Kubernetes: URLs from their ports
		// and health check, as a Eureka client of theirs would have sent.
		if f.homePage == "" && f.port.Port != 0 {
			f.homePage = "http://" + hostPort(e.hostName, f.port.Port) + "/"
		}
		if c := in.Check; c != nil && f.healthCheck == "" && (c.Type == "http" || c.Type == "https") {
			if p, ok := in.PortNamed(c.Port); ok || c.Port == "" {
				if !ok && len(in.Ports) > 0 {
					p = in.Ports[0]
				}
				f.healthCheck = c.Type + "://" + hostPort(e.hostName, p.Port) + or(c.Path, "/")
			}
		}
	}
	f.appGroup = in.Metadata[metaAppGroup]
	f.asg = in.Metadata[metaASG]
	f.lastDirty = lastDirty(in)
	if f.lastDirty == 0 {
		f.lastDirty = f.registered
	}
	return f
}

// millis is t in Unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 0)
}

func hostPort(host string, port int) string {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---- JSON ----

// appendJSON writes the instance object (without a wrapper).
func (e *einst) appendJSON(b []byte, action registry.EventType) []byte {
	f := e.fields()
	in := e.in
	b = append(b, `{"instanceId":`...)
	b = appendJSONString(b, in.ID)
	b = appendJSONField(b, "hostName", e.hostName)
	b = appendJSONField(b, "app", e.app)
	b = appendJSONField(b, "ipAddr", in.Address)
	b = appendJSONField(b, "status", string(e.status))
	b = appendJSONField(b, "overriddenStatus", string(f.override))
	b = appendJSONField(b, "overriddenstatus", string(f.override)) // the old spelling, for older clients
	b = appendJSONPort(b, "port", f.port.Port, f.port.Port != 0)
	b = appendJSONPort(b, "securePort", or443(f.secure.Port), f.secure.Port != 0)
	b = append(b, `,"countryId":`...)
	b = append(b, f.country...)
	b = append(b, `,"dataCenterInfo":{"@class":`...)
	b = appendJSONString(b, f.dcClass)
	b = appendJSONField(b, "name", f.dcName)
	if len(f.dcMeta) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendJSONMap(b, f.dcMeta)
	}
	b = append(b, `},"leaseInfo":{"renewalIntervalInSecs":`...)
	b = strconv.AppendInt(b, f.renewSecs, 10)
	b = append(b, `,"durationInSecs":`...)
	b = strconv.AppendInt(b, f.durationSecs, 10)
	b = append(b, `,"registrationTimestamp":`...)
	b = strconv.AppendInt(b, f.registered, 10)
	b = append(b, `,"lastRenewalTimestamp":`...)
	b = strconv.AppendInt(b, f.renewed, 10)
	b = append(b, `,"evictionTimestamp":0,"serviceUpTimestamp":`...)
	b = strconv.AppendInt(b, f.registered, 10)
	b = append(b, `},"metadata":`...)
	if len(f.meta) == 0 {
		b = append(b, `{"@class":"java.util.Collections$EmptyMap"}`...)
	} else {
		b = appendJSONMap(b, f.meta)
	}
	b = appendJSONOptional(b, "homePageUrl", f.homePage)
	b = appendJSONOptional(b, "statusPageUrl", f.statusPage)
	b = appendJSONOptional(b, "healthCheckUrl", f.healthCheck)
	b = appendJSONOptional(b, "secureHealthCheckUrl", f.secureHealthCheck)
	b = appendJSONField(b, "vipAddress", e.vip)
	b = appendJSONField(b, "secureVipAddress", e.svip)
	b = append(b, `,"isCoordinatingDiscoveryServer":"false","lastUpdatedTimestamp":"`...)
	b = strconv.AppendInt(b, millis(e.updated), 10)
	b = append(b, `","lastDirtyTimestamp":"`...)
	b = strconv.AppendInt(b, f.lastDirty, 10)
	b = append(b, `","actionType":"`...)
	b = append(b, action...)
	b = append(b, '"')
	b = appendJSONOptional(b, "appGroupName", f.appGroup)
	b = appendJSONOptional(b, "asgName", f.asg)
	return append(b, '}')
}

// or443 is the securePort shown when there is none: Spring's default.
func or443(p int) int {
	if p == 0 {
		return 443
	}
	return p
}

func appendJSONPort(b []byte, name string, port int, enabled bool) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":{"$":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	if enabled {
		return append(b, `,"@enabled":"true"}`...)
	}
	return append(b, `,"@enabled":"false"}`...)
}

func appendJSONField(b []byte, name, v string) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return appendJSONString(b, v)
}

func appendJSONOptional(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONField(b, name, v)
}

func appendJSONMap(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // the rare slow path: escapes, non-ASCII
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ---- XML ----

func (e *einst) appendXML(b []byte, action registry.EventType) []byte {
	f := e.fields()
	in := e.in
	b = append(b, "<instance>"...)
	b = appendXMLElem(b, "instanceId", in.ID)
	b = appendXMLElem(b, "hostName", e.hostName)
	b = appendXMLElem(b, "app", e.app)
	b = appendXMLElem(b, "ipAddr", in.Address)
	b = appendXMLElem(b, "status", string(e.status))
	b = appendXMLElem(b, "overriddenstatus", string(f.override))
	b = appendXMLPort(b, "port", f.port.Port, f.port.Port != 0)
	b = appendXMLPort(b, "securePort", or443(f.secure.Port), f.secure.Port != 0)
	b = appendXMLElem(b, "countryId", f.country)
	b = append(b, `<dataCenterInfo class="`...)
	b = appendXMLText(b, f.dcClass)
	b = append(b, `">`...)
	b = appendXMLElem(b, "name", f.dcName)
	if len(f.dcMeta) > 0 {
		b = appendXMLMap(b, f.dcMeta)
	}
	b = append(b, "</dataCenterInfo><leaseInfo><renewalIntervalInSecs>"...)
	b = strconv.AppendInt(b, f.renewSecs, 10)
	b = append(b, "</renewalIntervalInSecs><durationInSecs>"...)
	b = strconv.AppendInt(b, f.durationSecs, 10)
	b = append(b, "</durationInSecs><registrationTimestamp>"...)
	b = strconv.AppendInt(b, f.registered, 10)
	b = append(b, "</registrationTimestamp><lastRenewalTimestamp>"...)
	b = strconv.AppendInt(b, f.renewed, 10)
	b = append(b, "</lastRenewalTimestamp><evictionTimestamp>0</evictionTimestamp><serviceUpTimestamp>"...)
	b = strconv.AppendInt(b, f.registered, 10)
	b = append(b, "</serviceUpTimestamp></leaseInfo>"...)
	if len(f.meta) == 0 {
		b = append(b, `<metadata class="java.util.Collections$EmptyMap"/>`...)
	} else {
		b = appendXMLMap(b, f.meta)
	}
	b = appendXMLOptional(b, "homePageUrl", f.homePage)
	b = appendXMLOptional(b, "statusPageUrl", f.statusPage)
	b = appendXMLOptional(b, "healthCheckUrl", f.healthCheck)
	b = appendXMLOptional(b, "secureHealthCheckUrl", f.secureHealthCheck)
	b = appendXMLElem(b, "vipAddress", e.vip)
	b = appendXMLElem(b, "secureVipAddress", e.svip)
	b = append(b, "<isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer><lastUpdatedTimestamp>"...)
	b = strconv.AppendInt(b, millis(e.updated), 10)
	b = append(b, "</lastUpdatedTimestamp><lastDirtyTimestamp>"...)
	b = strconv.AppendInt(b, f.lastDirty, 10)
	b = append(b, "</lastDirtyTimestamp><actionType>"...)
	b = append(b, action...)
	b = append(b, "</actionType>"...)
	b = appendXMLOptional(b, "appGroupName", f.appGroup)
	b = appendXMLOptional(b, "asgName", f.asg)
	return append(b, "</instance>"...)
}

func appendXMLPort(b []byte, name string, port int, enabled bool) []byte {
	b = append(b, '<')
	b = append(b, name...)
	if enabled {
		b = append(b, ` enabled="true">`...)
	} else {
		b = append(b, ` enabled="false">`...)
	}
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

func appendXMLElem(b []byte, name, v string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = appendXMLText(b, v)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

func appendXMLOptional(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendXMLElem(b, name, v)
}

// appendXMLMap writes <metadata><k>v</k>...</metadata>. Keys that are not
// XML names cannot be elements; they are left out of the XML form.
func appendXMLMap(b []byte, m map[string]string) []byte {
	b = append(b, "<metadata>"...)
	for _, k := range sortedKeys(m) {
		if isXMLName(k) {
			b = appendXMLElem(b, k, m[k])
		}
	}
	return append(b, "</metadata>"...)
}

// isXMLName is a conservative check for an XML element name: ASCII letters,
// '_' first, then letters, digits, '-', '_' and '.'.
func isXMLName(s string) bool {
	if s == "" || strings.HasPrefix(strings.ToLower(s), "xml") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// appendXMLText appends s escaped as XML character data (also safe in
// attribute values). Characters XML cannot carry become U+FFFD.
func appendXMLText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '"':
				b = append(b, "&quot;"...)
			case c == '\'':
				b = append(b, "&apos;"...)
			case c == '\t' || c == '\n':
				b = append(b, c)
			case c == '\r':
				b = append(b, "&#xD;"...)
			case c < 0x20 || c == 0x7f:
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}
