package eureka

// Replays the requests a Spring Cloud Netflix Eureka client (and the Netflix
// eureka-client it wraps) sends, byte for byte, from testdata/spring/ (see its
// README.md for where every byte comes from), against /eureka/ and
// /eureka/v2/, and checks the answers a Netflix Eureka server would give, the
// Eureka view of the registered instance (JSON and XML) and the native view.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

const (
	springDir     = "testdata/spring"
	springApp     = "ORDERS-SERVICE"
	springID      = "192.168.1.23:orders-service:8081"
	springDirtyTS = "1718000003456" // lastDirtyTimestamp in the UP registrations and in every .headers query
)

var springPrefixes = []string{"/eureka/", "/eureka/v2/"}

// springRequest is one recorded request: a .headers file (request line and
// header lines, '#' comments) and, for registrations, the body file next to it.
type springRequest struct {
	name    string
	method  string
	target  string // path?query as recorded
	headers [][2]string
	body    []byte
}

func springLoad(t *testing.T, name string) springRequest {
	t.Helper()
	var hdrFile string
	var body []byte
	if strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".xml") {
		b, err := os.ReadFile(filepath.Join(springDir, name))
		if err != nil {
			t.Fatal(err)
		}
		body = b
		hdrFile = name + ".headers"
	} else {
		hdrFile = name + ".headers"
	}
	raw, err := os.ReadFile(filepath.Join(springDir, hdrFile))
	if err != nil {
		t.Fatal(err)
	}
	r := springRequest{name: name, body: body}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if r.method == "" {
			f := strings.Fields(line)
			if len(f) != 3 || f[2] != "HTTP/1.1" {
				t.Fatalf("%s: bad request line %q", hdrFile, line)
			}
			r.method, r.target = f[0], f[1]
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s: bad header line %q", hdrFile, line)
		}
		r.headers = append(r.headers, [2]string{k, v})
	}
	return r
}

func (r springRequest) header(name string) string {
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

// at returns the request with its /eureka/ or /eureka/v2/ base replaced by prefix.
func (r springRequest) at(prefix string) springRequest {
	rest, ok := strings.CutPrefix(r.target, "/eureka/v2/")
	if !ok {
		rest, ok = strings.CutPrefix(r.target, "/eureka/")
	}
	if !ok {
		panic("unexpected target " + r.target)
	}
	r.target = prefix + rest
	return r
}

// wire renders the request exactly as recorded: same request line, same
// headers in the same order (Host pointed at addr), the body framed as the
// recorded Content-Length or Transfer-Encoding says (chunked: one chunk, as
// Apache HttpClient 5 sent it).
func (r springRequest) wire(t *testing.T, addr string) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", r.method, r.target)
	for _, h := range r.headers {
		v := h[1]
		if strings.EqualFold(h[0], "Host") {
			v = addr
		}
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], v)
	}
	b.WriteString("\r\n")
	switch {
	case strings.EqualFold(r.header("Transfer-Encoding"), "chunked"):
		fmt.Fprintf(&b, "%x\r\n", len(r.body))
		b.Write(r.body)
		b.WriteString("\r\n0\r\n\r\n")
	case r.header("Content-Length") != "":
		if n, _ := strconv.Atoi(r.header("Content-Length")); n != len(r.body) {
			t.Fatalf("%s: Content-Length %d but body has %d bytes", r.name, n, len(r.body))
		}
		b.Write(r.body)
	case len(r.body) > 0:
		t.Fatalf("%s: body without framing", r.name)
	}
	return b.Bytes()
}

type springResp struct {
	status int
	header http.Header
	body   []byte
}

func (r springResp) String() string {
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// springSend writes the recorded bytes on a fresh connection and reads one response.
func springSend(t *testing.T, ts *testServer, r springRequest) springResp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(r.wire(t, ts.Addr)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.method})
	if err != nil {
		t.Fatalf("%s %s: reading response: %v", r.method, r.target, err)
	}
	defer resp.Body.Close()
	body, err := springReadBody(resp)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", r.method, r.target, err)
	}
	return springResp{status: resp.StatusCode, header: resp.Header, body: body}
}

func springReadBody(resp *http.Response) ([]byte, error) {
	var rd io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	}
	return io.ReadAll(rd)
}

// springExpect sends r and fails unless the status is one of want.
func springExpect(t *testing.T, ts *testServer, r springRequest, want ...int) springResp {
	t.Helper()
	got := springSend(t, ts, r)
	for _, w := range want {
		if got.status == w {
			return got
		}
	}
	t.Errorf("%s %s (%s): got %s, want %v", r.method, r.target, r.name, got, want)
	return got
}

// --- the Eureka view, parsed with encoding/json and encoding/xml only -----

// springInstance is what a client reads back, whatever the format.
type springInstance struct {
	InstanceID, App, HostName, IPAddr        string
	Status, OverriddenStatus                 string
	Port, SecurePort                         int
	PortEnabled, SecurePortEnabled           string
	VIPAddress, SecureVIPAddress             string
	HomePageURL, StatusPageURL, HealthURL    string
	DataCenterClass, DataCenterName          string
	RenewalIntervalInSecs, DurationInSecs    int
	Metadata                                 map[string]string
	LastDirtyTimestamp, LastUpdatedTimestamp string
	ActionType                               string
}

// springJSONScalar accepts a JSON string, number or bool and keeps its text.
type springJSONScalar string

func (s *springJSONScalar) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = springJSONScalar(str)
		return nil
	}
	*s = springJSONScalar(strings.TrimSpace(string(b)))
	return nil
}

type springJSONInstance struct {
	InstanceID          string           `json:"instanceId"`
	App                 string           `json:"app"`
	HostName            string           `json:"hostName"`
	IPAddr              string           `json:"ipAddr"`
	Status              string           `json:"status"`
	OverriddenStatus    string           `json:"overriddenStatus"`
	OverriddenStatusOld string           `json:"overriddenstatus"`
	Port                springJSONPort   `json:"port"`
	SecurePort          springJSONPort   `json:"securePort"`
	VIPAddress          string           `json:"vipAddress"`
	SecureVIPAddress    string           `json:"secureVipAddress"`
	HomePageURL         string           `json:"homePageUrl"`
	StatusPageURL       string           `json:"statusPageUrl"`
	HealthCheckURL      string           `json:"healthCheckUrl"`
	LastDirtyTimestamp  springJSONScalar `json:"lastDirtyTimestamp"`
	LastUpdatedTS       springJSONScalar `json:"lastUpdatedTimestamp"`
	ActionType          string           `json:"actionType"`
	DataCenterInfo      struct {
		Class string `json:"@class"`
		Name  string `json:"name"`
	} `json:"dataCenterInfo"`
	LeaseInfo struct {
		RenewalIntervalInSecs springJSONScalar `json:"renewalIntervalInSecs"`
		DurationInSecs        springJSONScalar `json:"durationInSecs"`
	} `json:"leaseInfo"`
	Metadata map[string]springJSONScalar `json:"metadata"`
}

type springJSONPort struct {
	Value   springJSONScalar `json:"$"`
	Enabled springJSONScalar `json:"@enabled"`
}

func (j springJSONInstance) common() springInstance {
	s := springInstance{
		InstanceID: j.InstanceID, App: j.App, HostName: j.HostName, IPAddr: j.IPAddr,
		Status: j.Status, OverriddenStatus: j.OverriddenStatus,
		PortEnabled: string(j.Port.Enabled), SecurePortEnabled: string(j.SecurePort.Enabled),
		VIPAddress: j.VIPAddress, SecureVIPAddress: j.SecureVIPAddress,
		HomePageURL: j.HomePageURL, StatusPageURL: j.StatusPageURL, HealthURL: j.HealthCheckURL,
		DataCenterClass: j.DataCenterInfo.Class, DataCenterName: j.DataCenterInfo.Name,
		LastDirtyTimestamp: string(j.LastDirtyTimestamp), LastUpdatedTimestamp: string(j.LastUpdatedTS),
		ActionType: j.ActionType, Metadata: map[string]string{},
	}
	if s.OverriddenStatus == "" {
		s.OverriddenStatus = j.OverriddenStatusOld
	}
	s.Port, _ = strconv.Atoi(string(j.Port.Value))
	s.SecurePort, _ = strconv.Atoi(string(j.SecurePort.Value))
	s.RenewalIntervalInSecs, _ = strconv.Atoi(string(j.LeaseInfo.RenewalIntervalInSecs))
	s.DurationInSecs, _ = strconv.Atoi(string(j.LeaseInfo.DurationInSecs))
	for k, v := range j.Metadata {
		if k == "@class" { // {"@class":"java.util.Collections$EmptyMap"} is how Eureka writes an empty map
			continue
		}
		s.Metadata[k] = string(v)
	}
	return s
}

type springXMLPort struct {
	Enabled string `xml:"enabled,attr"`
	Value   string `xml:",chardata"`
}

type springXMLInstance struct {
	InstanceID          string        `xml:"instanceId"`
	App                 string        `xml:"app"`
	HostName            string        `xml:"hostName"`
	IPAddr              string        `xml:"ipAddr"`
	Status              string        `xml:"status"`
	OverriddenStatusOld string        `xml:"overriddenstatus"`
	OverriddenStatus    string        `xml:"overriddenStatus"`
	Port                springXMLPort `xml:"port"`
	SecurePort          springXMLPort `xml:"securePort"`
	VIPAddress          string        `xml:"vipAddress"`
	SecureVIPAddress    string        `xml:"secureVipAddress"`
	HomePageURL         string        `xml:"homePageUrl"`
	StatusPageURL       string        `xml:"statusPageUrl"`
	HealthCheckURL      string        `xml:"healthCheckUrl"`
	LastDirtyTimestamp  string        `xml:"lastDirtyTimestamp"`
	LastUpdatedTS       string        `xml:"lastUpdatedTimestamp"`
	ActionType          string        `xml:"actionType"`
	DataCenterInfo      struct {
		Class string `xml:"class,attr"`
		Name  string `xml:"name"`
	} `xml:"dataCenterInfo"`
	LeaseInfo struct {
		RenewalIntervalInSecs string `xml:"renewalIntervalInSecs"`
		DurationInSecs        string `xml:"durationInSecs"`
	} `xml:"leaseInfo"`
	Metadata struct {
		Entries []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"metadata"`
}

func (x springXMLInstance) common() springInstance {
	s := springInstance{
		InstanceID: x.InstanceID, App: x.App, HostName: x.HostName, IPAddr: x.IPAddr,
		Status: x.Status, OverriddenStatus: x.OverriddenStatusOld,
		PortEnabled: x.Port.Enabled, SecurePortEnabled: x.SecurePort.Enabled,
		VIPAddress: x.VIPAddress, SecureVIPAddress: x.SecureVIPAddress,
		HomePageURL: x.HomePageURL, StatusPageURL: x.StatusPageURL, HealthURL: x.HealthCheckURL,
		DataCenterClass: x.DataCenterInfo.Class, DataCenterName: x.DataCenterInfo.Name,
		LastDirtyTimestamp: x.LastDirtyTimestamp, LastUpdatedTimestamp: x.LastUpdatedTS,
		ActionType: x.ActionType, Metadata: map[string]string{},
	}
	if s.OverriddenStatus == "" {
		s.OverriddenStatus = x.OverriddenStatus
	}
	s.Port, _ = strconv.Atoi(strings.TrimSpace(x.Port.Value))
	s.SecurePort, _ = strconv.Atoi(strings.TrimSpace(x.SecurePort.Value))
	s.RenewalIntervalInSecs, _ = strconv.Atoi(strings.TrimSpace(x.LeaseInfo.RenewalIntervalInSecs))
	s.DurationInSecs, _ = strconv.Atoi(strings.TrimSpace(x.LeaseInfo.DurationInSecs))
	for _, e := range x.Metadata.Entries {
		s.Metadata[e.XMLName.Local] = e.Value
	}
	return s
}

// Applications documents (GET /apps, /apps/delta).
type springJSONApps struct {
	Applications struct {
		VersionsDelta springJSONScalar `json:"versions__delta"`
		AppsHashcode  string           `json:"apps__hashcode"`
		Application   springOneOrMany[struct {
			Name     string                              `json:"name"`
			Instance springOneOrMany[springJSONInstance] `json:"instance"`
		}] `json:"application"`
	} `json:"applications"`
}

// springOneOrMany reads a JSON array or a single object (both occur in Eureka documents).
type springOneOrMany[T any] []T

func (m *springOneOrMany[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var s []T
		err := json.Unmarshal(b, &s)
		*m = s
		return err
	}
	if string(b) == "null" {
		*m = nil
		return nil
	}
	var one T
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*m = []T{one}
	return nil
}

type springXMLApps struct {
	XMLName       xml.Name `xml:"applications"`
	VersionsDelta string   `xml:"versions__delta"`
	AppsHashcode  string   `xml:"apps__hashcode"`
	Application   []struct {
		Name     string              `xml:"name"`
		Instance []springXMLInstance `xml:"instance"`
	} `xml:"application"`
}

func springFindJSON(apps springJSONApps, app, id string) (springInstance, bool) {
	for _, a := range apps.Applications.Application {
		for _, in := range a.Instance {
			if a.Name == app && in.InstanceID == id {
				return in.common(), true
			}
		}
	}
	return springInstance{}, false
}

// springGet reads prefix+path with the given Accept ("" = none: Eureka answers XML).
func springGet(t *testing.T, ts *testServer, path, accept string) springResp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := springReadBody(resp)
	if err != nil {
		t.Fatal(err)
	}
	return springResp{status: resp.StatusCode, header: resp.Header, body: body}
}

// springView reads the instance back as JSON and as XML; both must agree.
func springView(t *testing.T, ts *testServer, prefix string) (springInstance, bool) {
	t.Helper()
	path := prefix + "apps/" + springApp + "/" + springID
	jr := springGet(t, ts, path, "application/json")
	if jr.status == http.StatusNotFound {
		return springInstance{}, false
	}
	if jr.status != http.StatusOK {
		t.Fatalf("GET %s (json): %s", path, jr)
	}
	if ct := jr.header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("GET %s with Accept: application/json: Content-Type %q", path, ct)
	}
	var jdoc struct {
		Instance springJSONInstance `json:"instance"`
	}
	if err := json.Unmarshal(jr.body, &jdoc); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, jr.body)
	}
	xr := springGet(t, ts, path, "")
	if xr.status != http.StatusOK {
		t.Fatalf("GET %s (xml): %s", path, xr)
	}
	if ct := xr.header.Get("Content-Type"); !strings.Contains(ct, "xml") {
		t.Errorf("GET %s without Accept: Content-Type %q, Eureka's default is XML", path, ct)
	}
	var xdoc springXMLInstance
	if err := xml.Unmarshal(xr.body, &xdoc); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, xr.body)
	}
	j, x := jdoc.Instance.common(), xdoc.common()
	if d := springDiff(j, x); d != "" {
		t.Errorf("JSON and XML views disagree: %s\nJSON: %s\nXML: %s", d, jr.body, xr.body)
	}
	return j, true
}

func springDiff(a, b springInstance) string {
	var d []string
	as, bs := fmt.Sprintf("%+v", a), fmt.Sprintf("%+v", b)
	if as != bs {
		d = append(d, fmt.Sprintf("\n  %s\n  %s", as, bs))
	}
	return strings.Join(d, "")
}

// springExpected is what every fixture registers (see Serialize.java in README.md).
func springExpected(status string, metadata map[string]string) springInstance {
	return springInstance{
		InstanceID: springID, App: springApp, HostName: "orders-1.internal", IPAddr: "192.168.1.23",
		Status: status, OverriddenStatus: "UNKNOWN",
		Port: 8081, PortEnabled: "true", SecurePort: 443, SecurePortEnabled: "false",
		VIPAddress: "orders-service", SecureVIPAddress: "orders-service",
		HomePageURL:     "http://orders-1.internal:8081/",
		StatusPageURL:   "http://orders-1.internal:8081/actuator/info",
		HealthURL:       "http://orders-1.internal:8081/actuator/health",
		DataCenterClass: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", DataCenterName: "MyOwn",
		RenewalIntervalInSecs: 30, DurationInSecs: 90,
		Metadata: metadata,
	}
}

// springCheckRegistered compares the Eureka view with what was registered
// (fields a client sets; server-owned ones are checked loosely).
func springCheckRegistered(t *testing.T, got, want springInstance, wantDirty string) {
	t.Helper()
	type field struct {
		name      string
		got, want any
	}
	fields := []field{
		{"instanceId", got.InstanceID, want.InstanceID},
		{"app", got.App, want.App},
		{"hostName", got.HostName, want.HostName},
		{"ipAddr", got.IPAddr, want.IPAddr},
		{"status", got.Status, want.Status},
		{"overriddenStatus", got.OverriddenStatus, want.OverriddenStatus},
		{"port.$", got.Port, want.Port},
		{"port.@enabled", got.PortEnabled, want.PortEnabled},
		{"securePort.$", got.SecurePort, want.SecurePort},
		{"securePort.@enabled", got.SecurePortEnabled, want.SecurePortEnabled},
		{"vipAddress", got.VIPAddress, want.VIPAddress},
		{"secureVipAddress", got.SecureVIPAddress, want.SecureVIPAddress},
		{"homePageUrl", got.HomePageURL, want.HomePageURL},
		{"statusPageUrl", got.StatusPageURL, want.StatusPageURL},
		{"healthCheckUrl", got.HealthURL, want.HealthURL},
		{"dataCenterInfo.@class", got.DataCenterClass, want.DataCenterClass},
		{"dataCenterInfo.name", got.DataCenterName, want.DataCenterName},
		{"leaseInfo.renewalIntervalInSecs", got.RenewalIntervalInSecs, want.RenewalIntervalInSecs},
		{"leaseInfo.durationInSecs", got.DurationInSecs, want.DurationInSecs},
		{"metadata", fmt.Sprint(got.Metadata), fmt.Sprint(want.Metadata)},
	}
	if wantDirty != "" {
		fields = append(fields, field{"lastDirtyTimestamp", got.LastDirtyTimestamp, wantDirty})
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("Eureka view %s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if _, err := strconv.ParseInt(got.LastUpdatedTimestamp, 10, 64); err != nil {
		t.Errorf("Eureka view lastUpdatedTimestamp %q is not a number", got.LastUpdatedTimestamp)
	}
	for k := range got.Metadata {
		if strings.HasPrefix(k, "eureka.") {
			t.Errorf("Eureka view metadata shows Cairn-internal key %q", k)
		}
	}
}

func springNative(t *testing.T, ts *testServer) (*registry.Instance, bool) {
	t.Helper()
	in, _, err := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "orders-service", ID: springID})
	if err != nil || in == nil {
		return nil, false
	}
	return in, true
}

func springCheckNative(t *testing.T, ts *testServer, wantStatus registry.Status, userMeta map[string]string) {
	t.Helper()
	in, ok := springNative(t, ts)
	if !ok {
		t.Fatalf("native view: default/orders-service/%s not found", springID)
	}
	if in.Address != "192.168.1.23" {
		t.Errorf("native Address = %q, want the ipAddr 192.168.1.23", in.Address)
	}
	wantPorts := []registry.Port{{Name: "http", Port: 8081, Protocol: "http"}} // securePort 443 is disabled
	if fmt.Sprint(in.Ports) != fmt.Sprint(wantPorts) {
		t.Errorf("native Ports = %+v, want %+v", in.Ports, wantPorts)
	}
	if in.Status != wantStatus {
		t.Errorf("native Status = %q, want %q", in.Status, wantStatus)
	}
	if in.StatusOverride != "" {
		t.Errorf("native StatusOverride = %q, want none", in.StatusOverride)
	}
	if in.TTL.D() != 90*time.Second {
		t.Errorf("native TTL = %v, want 90s (leaseInfo.durationInSecs)", in.TTL.D())
	}
	if in.RenewInterval.D() != 30*time.Second {
		t.Errorf("native RenewInterval = %v, want 30s (leaseInfo.renewalIntervalInSecs)", in.RenewInterval.D())
	}
	if in.Source != "eureka" {
		t.Errorf("native Source = %q, want eureka", in.Source)
	}
	if z := userMeta["zone"]; in.Zone != z {
		t.Errorf("native Zone = %q, want %q (metadata zone)", in.Zone, z)
	}
	for k, v := range userMeta {
		if k == "zone" {
			continue // carried by Zone; whether it is also kept in Metadata is Cairn's choice
		}
		if in.Metadata[k] != v {
			t.Errorf("native Metadata[%q] = %q, want %q", k, in.Metadata[k], v)
		}
	}
	for k, v := range map[string]string{
		"eureka.hostName":       "orders-1.internal",
		"eureka.homePageUrl":    "http://orders-1.internal:8081/",
		"eureka.statusPageUrl":  "http://orders-1.internal:8081/actuator/info",
		"eureka.healthCheckUrl": "http://orders-1.internal:8081/actuator/health",
	} {
		if in.Metadata[k] != v {
			t.Errorf("native Metadata[%q] = %q, want %q", k, in.Metadata[k], v)
		}
	}
	// vipAddress equals the default Cairn derives from the service name, so
	// the mapping may leave it out; the Eureka view shows it either way.
	if v, ok := in.Metadata["eureka.vipAddress"]; ok && v != "orders-service" {
		t.Errorf("native Metadata[eureka.vipAddress] = %q, want orders-service (or absent)", v)
	}
	for k := range in.Metadata {
		if strings.HasPrefix(k, "@") {
			t.Errorf("native Metadata has codec artefact %q", k)
		}
	}
}

var springUserMeta = map[string]string{"management.port": "8081", "zone": "zone1"}

// TestSpringRecordedBodies checks that the fixtures say what the test expects
// (guards against a fixture edited by hand).
func TestSpringRecordedBodies(t *testing.T) {
	for _, name := range []string{"register-up.json", "register-starting.json", "register-empty-metadata.json",
		"netflix-register-up.json", "netflix-register-empty-metadata.json"} {
		var doc struct {
			Instance springJSONInstance `json:"instance"`
		}
		r := springLoad(t, name)
		if err := json.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc.Instance.InstanceID != springID || doc.Instance.App != springApp {
			t.Errorf("%s: unexpected instance %+v", name, doc.Instance)
		}
	}
	for _, name := range []string{"register-up.xml", "register-empty-metadata.xml"} {
		var x springXMLInstance
		if err := xml.Unmarshal(springLoad(t, name).body, &x); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if x.InstanceID != springID || x.Port.Enabled != "true" {
			t.Errorf("%s: unexpected instance %+v", name, x)
		}
	}
	// The Netflix server's own GET /apps documents parse with the same decoders.
	b, err := os.ReadFile(filepath.Join(springDir, "server-get-apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	var apps springJSONApps
	if err := json.Unmarshal(b, &apps); err != nil {
		t.Fatal(err)
	}
	in, ok := springFindJSON(apps, springApp, springID)
	if !ok || in.ActionType != "ADDED" || in.Metadata["zone"] != "zone1" {
		t.Errorf("server-get-apps.json: %+v %v", in, ok)
	}
	b, err = os.ReadFile(filepath.Join(springDir, "server-get-apps.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var xapps springXMLApps
	if err := xml.Unmarshal(b, &xapps); err != nil {
		t.Fatal(err)
	}
	if len(xapps.Application) != 1 || len(xapps.Application[0].Instance) != 1 ||
		springDiff(xapps.Application[0].Instance[0].common(), in) != "" {
		t.Errorf("server-get-apps.xml and .json disagree")
	}
}

// TestSpringRegister replays every recorded registration against both bases
// and checks the Eureka view (JSON and XML) and the native view.
func TestSpringRegister(t *testing.T) {
	cases := []struct {
		body   string
		status string
		dirty  string
		meta   map[string]string
	}{
		{"register-up.json", "UP", springDirtyTS, springUserMeta},
		{"register-starting.json", "STARTING", "1718000000000", springUserMeta},
		{"register-empty-metadata.json", "UP", springDirtyTS, map[string]string{}},
		{"netflix-register-up.json", "UP", springDirtyTS, springUserMeta},
		{"netflix-register-empty-metadata.json", "UP", springDirtyTS, map[string]string{}},
		{"register-up.xml", "UP", springDirtyTS, springUserMeta},
		{"register-empty-metadata.xml", "UP", springDirtyTS, map[string]string{}},
	}
	for _, c := range cases {
		for _, prefix := range springPrefixes {
			t.Run(c.body+prefix, func(t *testing.T) {
				ts := startTestServer(t, testOptions{})
				reg := springLoad(t, c.body).at(prefix)
				if r := springExpect(t, ts, reg, http.StatusNoContent); r.status != http.StatusNoContent {
					t.FailNow()
				}
				got, ok := springView(t, ts, prefix)
				if !ok {
					t.Fatalf("registered instance not found in the Eureka view")
				}
				springCheckRegistered(t, got, springExpected(c.status, c.meta), c.dirty)
				springCheckNative(t, ts, registry.Status(c.status), c.meta)

				// A second, identical registration (Spring re-registers on every
				// InstanceInfo change and after a 404 heartbeat) is accepted too.
				springExpect(t, ts, reg, http.StatusNoContent)
			})
		}
	}
}

// TestSpringLifecycle replays the client's life: heartbeat before
// registration, register, heartbeats (Spring 6.1 and 6.0 framing), status
// override and its removal, fetches, cancel.
func TestSpringLifecycle(t *testing.T) {
	for _, prefix := range springPrefixes {
		t.Run(prefix, func(t *testing.T) {
			ts := startTestServer(t, testOptions{})
			load := func(name string) springRequest { return springLoad(t, name).at(prefix) }

			// Unknown lease: Netflix answers 404 and the client registers.
			springExpect(t, ts, load("heartbeat"), http.StatusNotFound)

			springExpect(t, ts, load("register-up.json"), http.StatusNoContent)
			springExpect(t, ts, load("heartbeat"), http.StatusOK)
			springExpect(t, ts, load("heartbeat-spring60"), http.StatusOK)
			if got, ok := springView(t, ts, prefix); !ok || got.Status != "UP" {
				t.Fatalf("after heartbeats: %+v %v", got, ok)
			}
			// The same heartbeat with the client's lastDirtyTimestamp moved:
			// newer than the server's => 404 (the client must re-register);
			// older => 200 (Netflix only conflicts on replication).
			newer := load("heartbeat")
			newer.target = strings.Replace(newer.target, "lastDirtyTimestamp="+springDirtyTS, "lastDirtyTimestamp=1718000009999", 1)
			springExpect(t, ts, newer, http.StatusNotFound)
			older := load("heartbeat")
			older.target = strings.Replace(older.target, "lastDirtyTimestamp="+springDirtyTS, "lastDirtyTimestamp=1718000000000", 1)
			springExpect(t, ts, older, http.StatusOK)
			springExpect(t, ts, load("heartbeat"), http.StatusOK)

			// PUT .../status?value=OUT_OF_SERVICE: 200, overriddenStatus and
			// status both OUT_OF_SERVICE; survives heartbeats that say UP.
			springExpect(t, ts, load("status-out-of-service"), http.StatusOK)
			for i, step := range []string{"override", "heartbeat after override"} {
				if i == 1 {
					springExpect(t, ts, load("heartbeat"), http.StatusOK)
				}
				got, ok := springView(t, ts, prefix)
				if !ok || got.Status != "OUT_OF_SERVICE" || got.OverriddenStatus != "OUT_OF_SERVICE" {
					t.Errorf("%s: status %q overriddenStatus %q, want OUT_OF_SERVICE/OUT_OF_SERVICE", step, got.Status, got.OverriddenStatus)
				}
				if in, ok := springNative(t, ts); !ok || in.StatusOverride != registry.StatusOutOfService || in.Status != registry.StatusUp {
					t.Errorf("%s: native %+v", step, in)
				}
			}

			// The fetches a client makes while registered (GET /apps/ with the
			// trailing slash, GET /apps/delta), with the recorded headers.
			for _, name := range []string{"get-apps", "get-delta"} {
				r := springExpect(t, ts, load(name), http.StatusOK)
				if r.status != http.StatusOK {
					continue
				}
				if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "json") {
					t.Errorf("%s: Content-Type %q for Accept: application/json, application/*+json", name, ct)
				}
				var apps springJSONApps
				if err := json.Unmarshal(r.body, &apps); err != nil {
					t.Errorf("%s: %v\n%s", name, err, r.body)
					continue
				}
				in, ok := springFindJSON(apps, springApp, springID)
				if !ok {
					t.Errorf("%s: instance missing:\n%s", name, r.body)
					continue
				}
				if in.Status != "OUT_OF_SERVICE" {
					t.Errorf("%s: status %q, want OUT_OF_SERVICE", name, in.Status)
				}
				if name == "get-delta" && in.ActionType == "" {
					t.Errorf("get-delta: instance without actionType")
				}
				if apps.Applications.AppsHashcode == "" || apps.Applications.VersionsDelta == "" {
					t.Errorf("%s: apps__hashcode %q versions__delta %q", name, apps.Applications.AppsHashcode, apps.Applications.VersionsDelta)
				}
			}

			// DELETE .../status?lastDirtyTimestamp=… (no value=): 200, override gone.
			// Netflix then shows status UNKNOWN and answers the next heartbeat 404
			// so that the client re-registers; serving the reported UP at once is
			// as good for a client. Either way the instance ends UP.
			springExpect(t, ts, load("status-delete"), http.StatusOK)
			got, ok := springView(t, ts, prefix)
			if !ok || got.OverriddenStatus != "UNKNOWN" || (got.Status != "UP" && got.Status != "UNKNOWN") {
				t.Errorf("after override removal: status %q overriddenStatus %q, want UP (or Netflix's UNKNOWN) / UNKNOWN", got.Status, got.OverriddenStatus)
			}
			if in, ok := springNative(t, ts); !ok || in.StatusOverride != "" {
				t.Errorf("after override removal: native %+v", in)
			}
			t.Logf("after DELETE status: view status %q (Netflix: UNKNOWN)", got.Status)
			if r := springExpect(t, ts, load("heartbeat"), http.StatusOK, http.StatusNotFound); r.status == http.StatusNotFound {
				t.Logf("heartbeat after override removal: 404, re-registering (Netflix behaviour)")
				springExpect(t, ts, load("register-up.json"), http.StatusNoContent)
			}
			if got, ok := springView(t, ts, prefix); !ok || got.Status != "UP" {
				t.Errorf("after override removal and heartbeat: %+v %v, want UP", got, ok)
			}
			springCheckNative(t, ts, registry.StatusUp, springUserMeta)

			// DELETE /apps/{APP}/{id}: 200, then gone everywhere; repeated: 404.
			springExpect(t, ts, load("cancel"), http.StatusOK)
			if _, ok := springView(t, ts, prefix); ok {
				t.Errorf("cancelled instance still in the Eureka view")
			}
			if in, ok := springNative(t, ts); ok {
				t.Errorf("cancelled instance still in the native view: %+v", in)
			}
			springExpect(t, ts, load("cancel"), http.StatusNotFound)
			springExpect(t, ts, load("heartbeat"), http.StatusNotFound)
			springExpect(t, ts, load("status-out-of-service"), http.StatusNotFound)
		})
	}
}
