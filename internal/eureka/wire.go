package eureka

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// wireInstance is an instance as Eureka clients send it, after the
// tolerated variations (single objects for arrays, string or number ports,
// string or boolean flags, both override spellings) have been folded away.
type wireInstance struct {
	InstanceID       string
	HostName         string
	App              string
	IPAddr           string
	Status           string
	OverriddenStatus string
	Port             wirePort
	SecurePort       wirePort
	CountryID        string
	DataCenter       *wireDataCenter
	Lease            wireLease
	Metadata         map[string]string
	HomePageURL      string
	StatusPageURL    string
	HealthCheckURL   string
	SecureHealthURL  string
	VIPAddress       string
	SecureVIPAddress string
	AppGroupName     string
	ASGName          string
	LastDirty        int64
}

type wirePort struct {
	Port    int
	Enabled bool
	Set     bool // the element was present
}

type wireDataCenter struct {
	Class    string
	Name     string
	Metadata map[string]string
}

type wireLease struct {
	RenewalInterval int64
	Duration        int64
}

// decodeError is a body the decoder could not read; Field names where.
type decodeError struct {
	Field string
	Msg   string
}

func (e *decodeError) Error() string { return e.Field + ": " + e.Msg }

// ---- JSON ----

// flexString reads a JSON string, number, boolean or null as a string.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '{' || b[0] == '[':
		return errors.New("must be a string, not an object or array")
	default: // number or boolean, as written
		*f = flexString(b)
	}
	return nil
}

// parseJSONPort reads {"$":8080,"@enabled":"true"}; a bare number or
// string is accepted as an enabled port.
func parseJSONPort(field string, b json.RawMessage) (wirePort, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return wirePort{}, nil
	}
	var value, enabled flexString
	if b[0] == '{' {
		var o struct {
			Value   flexString `json:"$"`
			Enabled flexString `json:"@enabled"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return wirePort{}, &decodeError{field, "must be {\"$\": port, \"@enabled\": \"true\"|\"false\"}"}
		}
		value, enabled = o.Value, o.Enabled
	} else if err := json.Unmarshal(b, &value); err != nil {
		return wirePort{}, &decodeError{field, "must be a port number or {\"$\": port, \"@enabled\": ...}"}
	}
	n, err := parsePort(string(value))
	if err != nil {
		return wirePort{}, &decodeError{field, err.Error()}
	}
	return wirePort{Port: n, Enabled: parseEnabled(string(enabled), true), Set: true}, nil
}

func parsePort(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("must be a port number between 0 and 65535, not %q", s)
	}
	return n, nil
}

// parseEnabled reads "true"/"false" (any case); empty means def.
func parseEnabled(s string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// jsonMeta reads a metadata object, skipping Jackson's "@class" marker.
type jsonMeta map[string]string

func (m *jsonMeta) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return &decodeError{"metadata", "must be an object of strings"}
	}
	out := make(jsonMeta, len(raw))
	for k, rv := range raw {
		if k == "@class" {
			continue
		}
		var v flexString
		if err := json.Unmarshal(rv, &v); err != nil {
			return &decodeError{"metadata." + k, "must be a string"}
		}
		out[k] = string(v)
	}
	*m = out
	return nil
}

type jsonInstance struct {
	InstanceID          flexString      `json:"instanceId"`
	HostName            flexString      `json:"hostName"`
	App                 flexString      `json:"app"`
	IPAddr              flexString      `json:"ipAddr"`
	Status              flexString      `json:"status"`
	OverriddenStatus    flexString      `json:"overriddenStatus"`
	OverriddenStatusOld flexString      `json:"overriddenstatus"`
	Port                json.RawMessage `json:"port"`
	SecurePort          json.RawMessage `json:"securePort"`
	CountryID           flexString      `json:"countryId"`
	DataCenterInfo      *struct {
		Class    flexString `json:"@class"`
		Name     flexString `json:"name"`
		Metadata jsonMeta   `json:"metadata"`
	} `json:"dataCenterInfo"`
	LeaseInfo *struct {
		RenewalIntervalInSecs flexString `json:"renewalIntervalInSecs"`
		DurationInSecs        flexString `json:"durationInSecs"`
	} `json:"leaseInfo"`
	Metadata             jsonMeta   `json:"metadata"`
	HomePageURL          flexString `json:"homePageUrl"`
	StatusPageURL        flexString `json:"statusPageUrl"`
	HealthCheckURL       flexString `json:"healthCheckUrl"`
	SecureHealthCheckURL flexString `json:"secureHealthCheckUrl"`
	VIPAddress           flexString `json:"vipAddress"`
	SecureVIPAddress     flexString `json:"secureVipAddress"`
	AppGroupName         flexString `json:"appGroupName"`
	ASGName              flexString `json:"asgName"`
	LastDirtyTimestamp   flexString `json:"lastDirtyTimestamp"`
}

// decodeJSONInstance reads {"instance":{...}} (or a bare instance object).
func decodeJSONInstance(body []byte) (*wireInstance, error) {
	var root map[string]json.RawMessage
	if err := json.Unmarshal(body, &root); err != nil {
		return nil, jsonDecodeError(err)
	}
	raw := body
	if inner, ok := root["instance"]; ok {
		raw = inner
	}
	var ji jsonInstance
	if err := json.Unmarshal(raw, &ji); err != nil {
		return nil, jsonDecodeError(err)
	}
	w := &wireInstance{
		InstanceID: string(ji.InstanceID), HostName: string(ji.HostName), App: string(ji.App),
		IPAddr: string(ji.IPAddr), Status: string(ji.Status), OverriddenStatus: string(ji.OverriddenStatus),
		CountryID: string(ji.CountryID),
		Metadata:  ji.Metadata, HomePageURL: string(ji.HomePageURL), StatusPageURL: string(ji.StatusPageURL),
		HealthCheckURL: string(ji.HealthCheckURL), SecureHealthURL: string(ji.SecureHealthCheckURL),
		VIPAddress: string(ji.VIPAddress), SecureVIPAddress: string(ji.SecureVIPAddress),
		AppGroupName: string(ji.AppGroupName), ASGName: string(ji.ASGName),
	}
	if w.OverriddenStatus == "" {
		w.OverriddenStatus = string(ji.OverriddenStatusOld)
	}
	var err error
	if w.Port, err = parseJSONPort("port", ji.Port); err != nil {
		return nil, err
	}
	if w.SecurePort, err = parseJSONPort("securePort", ji.SecurePort); err != nil {
		return nil, err
	}
	if d := ji.DataCenterInfo; d != nil {
		w.DataCenter = &wireDataCenter{Class: string(d.Class), Name: string(d.Name), Metadata: d.Metadata}
	}
	if l := ji.LeaseInfo; l != nil {
		if w.Lease.RenewalInterval, err = parseSeconds("leaseInfo.renewalIntervalInSecs", string(l.RenewalIntervalInSecs)); err != nil {
			return nil, err
		}
		if w.Lease.Duration, err = parseSeconds("leaseInfo.durationInSecs", string(l.DurationInSecs)); err != nil {
			return nil, err
		}
	}
	return w, w.parseDirty(string(ji.LastDirtyTimestamp))
}

func (w *wireInstance) parseDirty(s string) error {
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return &decodeError{"lastDirtyTimestamp", "must be a number of milliseconds"}
	}
	w.LastDirty = n
	return nil
}

func parseSeconds(field, s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, &decodeError{field, "must be a non-negative number of seconds"}
	}
	return n, nil
}

// jsonDecodeError names the field a JSON decoding error is about.
func jsonDecodeError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var de *decodeError
	switch {
	case errors.As(err, &de):
		return de
	case errors.As(err, &se):
		return &decodeError{"body", fmt.Sprintf("malformed JSON at offset %d: %v", se.Offset, se)}
	case errors.As(err, &te):
		f := te.Field
		if f == "" {
			f = "body"
		}
		return &decodeError{f, "must not be a JSON " + te.Value}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &decodeError{"body", "truncated JSON"}
	}
	msg := err.Error()
	field := "body"
	if i := strings.Index(msg, "Go struct field "); i >= 0 {
		rest := msg[i+len("Go struct field "):]
		if j := strings.IndexByte(rest, ' '); j > 0 {
			f := rest[:j]
			if k := strings.IndexByte(f, '.'); k >= 0 {
				f = f[k+1:]
			}
			field = strings.ToLower(f[:1]) + f[1:]
		}
		if k := strings.LastIndex(msg, ": "); k >= 0 {
			msg = msg[k+2:]
		}
	}
	return &decodeError{field, msg}
}

// ---- XML ----

type xmlPort struct {
	Enabled string `xml:"enabled,attr"`
	Value   string `xml:",chardata"`
}

// xmlMeta reads <metadata><key>value</key>...</metadata>.
type xmlMeta map[string]string

func (m *xmlMeta) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out := xmlMeta{}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var v string
			if err := d.DecodeElement(&v, &t); err != nil {
				return err
			}
			out[t.Name.Local] = v
		case xml.EndElement:
			*m = out
			return nil
		}
	}
}

type xmlInstance struct {
	XMLName             xml.Name `xml:"instance"`
	InstanceID          string   `xml:"instanceId"`
	HostName            string   `xml:"hostName"`
	App                 string   `xml:"app"`
	IPAddr              string   `xml:"ipAddr"`
	Status              string   `xml:"status"`
	OverriddenStatus    string   `xml:"overriddenStatus"`
	OverriddenStatusOld string   `xml:"overriddenstatus"`
	Port                *xmlPort `xml:"port"`
	SecurePort          *xmlPort `xml:"securePort"`
	CountryID           string   `xml:"countryId"`
	DataCenterInfo      *struct {
		Class    string  `xml:"class,attr"`
		Name     string  `xml:"name"`
		Metadata xmlMeta `xml:"metadata"`
	} `xml:"dataCenterInfo"`
	LeaseInfo *struct {
		RenewalIntervalInSecs string `xml:"renewalIntervalInSecs"`
		DurationInSecs        string `xml:"durationInSecs"`
	} `xml:"leaseInfo"`
	Metadata             xmlMeta `xml:"metadata"`
	HomePageURL          string  `xml:"homePageUrl"`
	StatusPageURL        string  `xml:"statusPageUrl"`
	HealthCheckURL       string  `xml:"healthCheckUrl"`
	SecureHealthCheckURL string  `xml:"secureHealthCheckUrl"`
	VIPAddress           string  `xml:"vipAddress"`
	SecureVIPAddress     string  `xml:"secureVipAddress"`
	AppGroupName         string  `xml:"appGroupName"`
	ASGName              string  `xml:"asgName"`
	LastDirtyTimestamp   string  `xml:"lastDirtyTimestamp"`
}

// decodeXMLInstance reads an <instance> document.
func decodeXMLInstance(body []byte) (*wireInstance, error) {
	var xi xmlInstance
	dec := xml.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&xi); err != nil {
		var se *xml.SyntaxError
		var ue xml.UnmarshalError
		switch {
		case errors.As(err, &se):
			return nil, &decodeError{"body", fmt.Sprintf("malformed XML at line %d: %s", se.Line, se.Msg)}
		case errors.As(err, &ue):
			return nil, &decodeError{"body", "the root element must be <instance>: " + string(ue)}
		case errors.Is(err, io.EOF):
			return nil, &decodeError{"body", "is empty; an <instance> document is required"}
		}
		return nil, &decodeError{"body", "malformed XML: " + err.Error()}
	}
	w := &wireInstance{
		InstanceID: xi.InstanceID, HostName: xi.HostName, App: xi.App, IPAddr: xi.IPAddr,
		Status: xi.Status, OverriddenStatus: xi.OverriddenStatus, CountryID: xi.CountryID,
		Metadata: xi.Metadata, HomePageURL: xi.HomePageURL, StatusPageURL: xi.StatusPageURL,
		HealthCheckURL: xi.HealthCheckURL, SecureHealthURL: xi.SecureHealthCheckURL,
		VIPAddress: xi.VIPAddress, SecureVIPAddress: xi.SecureVIPAddress,
		AppGroupName: xi.AppGroupName, ASGName: xi.ASGName,
	}
	if w.OverriddenStatus == "" {
		w.OverriddenStatus = xi.OverriddenStatusOld
	}
	for _, p := range []struct {
		field string
		in    *xmlPort
		out   *wirePort
	}{{"port", xi.Port, &w.Port}, {"securePort", xi.SecurePort, &w.SecurePort}} {
		if p.in == nil {
			continue
		}
		n, err := parsePort(p.in.Value)
		if err != nil {
			return nil, &decodeError{p.field, err.Error()}
		}
		*p.out = wirePort{Port: n, Enabled: parseEnabled(p.in.Enabled, true), Set: true}
	}
	if d := xi.DataCenterInfo; d != nil {
		w.DataCenter = &wireDataCenter{Class: d.Class, Name: d.Name, Metadata: d.Metadata}
	}
	if l := xi.LeaseInfo; l != nil {
		var err error
		if w.Lease.RenewalInterval, err = parseSeconds("leaseInfo.renewalIntervalInSecs", l.RenewalIntervalInSecs); err != nil {
			return nil, err
		}
		if w.Lease.Duration, err = parseSeconds("leaseInfo.durationInSecs", l.DurationInSecs); err != nil {
			return nil, err
		}
	}
	return w, w.parseDirty(xi.LastDirtyTimestamp)
}
