package eureka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
	dto "github.com/prometheus/client_model/go"
)

// The tests in this file drive the API over HTTP with hand-written
// requests; fargo_test.go, jsclient_test.go and spring_test.go use real
// clients and recorded Spring Cloud requests.

type euResp struct {
	code   int
	header http.Header
	body   []byte
}

func euDo(t *testing.T, method, url string, header map[string]string, body string) euResp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return euResp{res.StatusCode, res.Header, b}
}

var euJSON = map[string]string{"Accept": "application/json", "Content-Type": "application/json"}

func euBody(app, id, ip string, port int, status string, extra string) string {
	return fmt.Sprintf(`{"instance":{"instanceId":%q,"hostName":"host-%s","app":%q,"ipAddr":%q,"status":%q,
		"port":{"$":%d,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"countryId":1,
		"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
		"leaseInfo":{"renewalIntervalInSecs":10,"durationInSecs":30},
		"metadata":{"version":"1"},"vipAddress":%q,"secureVipAddress":%q%s}}`,
		id, id, app, ip, status, port, strings.ToLower(app), strings.ToLower(app), extra)
}

func euRegister(t *testing.T, ts *testServer, app, id, ip string, port int) {
	t.Helper()
	r := euDo(t, "POST", ts.URL+"/eureka/apps/"+app, euJSON, euBody(app, id, ip, port, "UP", ""))
	if r.code != http.StatusNoContent {
		t.Fatalf("register %s/%s: %d %s", app, id, r.code, r.body)
	}
}

// Parsed forms, written with the standard library only, independent of
// the server's encoders.
type euApps struct {
	Applications struct {
		VersionsDelta string  `json:"versions__delta"`
		Hash          string  `json:"apps__hashcode"`
		Application   []euApp `json:"application"`
	} `json:"applications"`
}

type euApp struct {
	Name     string  `json:"name"`
	Instance []euIns `json:"instance"`
}

type euIns struct {
	InstanceID       string `json:"instanceId"`
	HostName         string `json:"hostName"`
	App              string `json:"app"`
	IPAddr           string `json:"ipAddr"`
	Status           string `json:"status"`
	OverriddenStatus string `json:"overriddenStatus"`
	Port             struct {
		Value   int    `json:"$"`
		Enabled string `json:"@enabled"`
	} `json:"port"`
	SecurePort struct {
		Value   int    `json:"$"`
		Enabled string `json:"@enabled"`
	} `json:"securePort"`
	DataCenterInfo struct {
		Name string `json:"name"`
	} `json:"dataCenterInfo"`
	LeaseInfo struct {
		RenewalIntervalInSecs int `json:"renewalIntervalInSecs"`
		DurationInSecs        int `json:"durationInSecs"`
	} `json:"leaseInfo"`
	Metadata         map[string]string `json:"metadata"`
	HomePageURL      string            `json:"homePageUrl"`
	HealthCheckURL   string            `json:"healthCheckUrl"`
	VIPAddress       string            `json:"vipAddress"`
	SecureVIPAddress string            `json:"secureVipAddress"`
	ActionType       string            `json:"actionType"`
}

func euGetApps(t *testing.T, url string) euApps {
	t.Helper()
	r := euDo(t, "GET", url, map[string]string{"Accept": "application/json"}, "")
	if r.code != 200 {
		t.Fatalf("GET %s: %d %s", url, r.code, r.body)
	}
	var a euApps
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, r.body)
	}
	return a
}

func (a euApps) find(app, id string) *euIns {
	for _, ap := range a.Applications.Application {
		for i := range ap.Instance {
			if ap.Name == app && ap.Instance[i].InstanceID == id {
				return &ap.Instance[i]
			}
		}
	}
	return nil
}

func (a euApps) count() int {
	n := 0
	for _, ap := range a.Applications.Application {
		n += len(ap.Instance)
	}
	return n
}

// euAgree checks that the Eureka view and the native view hold the same
// instances with the same address, ports and status.
func euAgree(t *testing.T, ts *testServer) {
	t.Helper()
	apps := euGetApps(t, ts.URL+"/eureka/v2/apps")
	native, _ := ts.Reg.Instances(registry.Filter{})
	if apps.count() != len(native) {
		t.Fatalf("eureka view has %d instances, native %d", apps.count(), len(native))
	}
	for _, in := range native {
		app := strings.ToUpper(in.Service)
		if in.Namespace != "default" {
			app += "." + strings.ToUpper(in.Namespace)
		}
		e := apps.find(app, in.ID)
		if e == nil {
			t.Fatalf("native %s missing from the Eureka view", in.Key())
		}
		if e.IPAddr != in.Address || e.Status != string(eurekaStatus(in)) {
			t.Fatalf("views disagree on %s: eureka %+v, native %+v", in.Key(), e, in)
		}
		if p, ok := in.PortNamed("http"); ok && (e.Port.Value != p.Port || e.Port.Enabled != "true") {
			t.Fatalf("views disagree on %s's port: eureka %+v, native %+v", in.Key(), e.Port, in.Ports)
		}
	}
}

func TestAPIRegisterReadBackBothFormats(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	euRegister(t, ts, "ORDERS", "o-1", "10.0.0.5", 8080)

	in, _, err := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "orders", ID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Address != "10.0.0.5" || in.Source != "eureka" || in.TTL.D() != 30*time.Second || in.RenewInterval.D() != 10*time.Second ||
		len(in.Ports) != 1 || in.Ports[0] != (registry.Port{Name: "http", Port: 8080, Protocol: "http"}) ||
		in.Metadata["version"] != "1" || in.Metadata[metaHostName] != "host-o-1" {
		t.Fatalf("native view: %+v", in)
	}

	for _, base := range []string{"/eureka", "/eureka/v2"} {
		r := euDo(t, "GET", ts.URL+base+"/apps/ORDERS/o-1", map[string]string{"Accept": "application/json"}, "")
		var one struct{ Instance euIns }
		if r.code != 200 || json.Unmarshal(r.body, &one) != nil {
			t.Fatalf("GET instance JSON: %d %s", r.code, r.body)
		}
		e := one.Instance
		if e.InstanceID != "o-1" || e.App != "ORDERS" || e.HostName != "host-o-1" || e.IPAddr != "10.0.0.5" ||
			e.Status != "UP" || e.OverriddenStatus != "UNKNOWN" || e.Port.Value != 8080 || e.Port.Enabled != "true" ||
			e.SecurePort.Enabled != "false" || e.VIPAddress != "orders" || e.DataCenterInfo.Name != "MyOwn" ||
			e.LeaseInfo.DurationInSecs != 30 || e.LeaseInfo.RenewalIntervalInSecs != 10 ||
			len(e.Metadata) != 1 || e.Metadata["version"] != "1" {
			t.Fatalf("JSON read-back: %+v", e)
		}

		// XML is the default when the client does not ask for JSON.
		r = euDo(t, "GET", ts.URL+base+"/apps/ORDERS/o-1", nil, "")
		if ct := r.header.Get("Content-Type"); r.code != 200 || !strings.Contains(ct, "xml") {
			t.Fatalf("GET instance XML: %d %s %s", r.code, ct, r.body)
		}
		var x struct {
			XMLName    xml.Name `xml:"instance"`
			InstanceID string   `xml:"instanceId"`
			App        string   `xml:"app"`
			Status     string   `xml:"status"`
			Port       struct {
				Enabled string `xml:"enabled,attr"`
				Value   int    `xml:",chardata"`
			} `xml:"port"`
			Metadata struct {
				Version string `xml:"version"`
			} `xml:"metadata"`
			DataCenterInfo struct {
				Class string `xml:"class,attr"`
				Name  string `xml:"name"`
			} `xml:"dataCenterInfo"`
		}
		if err := xml.Unmarshal(r.body, &x); err != nil {
			t.Fatalf("XML: %v\n%s", err, r.body)
		}
		if x.InstanceID != "o-1" || x.App != "ORDERS" || x.Status != "UP" || x.Port.Value != 8080 || x.Port.Enabled != "true" ||
			x.Metadata.Version != "1" || x.DataCenterInfo.Name != "MyOwn" || !strings.Contains(x.DataCenterInfo.Class, "DefaultDataCenterInfo") {
			t.Fatalf("XML read-back: %+v", x)
		}
	}
	euAgree(t, ts)
}

func TestAPIRegisterXML(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	body := `<instance><instanceId>x-1</instanceId><hostName>x.example</hostName><app>XAPP</app><ipAddr>10.1.1.1</ipAddr>
<status>STARTING</status><overriddenstatus>UNKNOWN</overriddenstatus><port enabled="true">9000</port><securePort enabled="true">9443</securePort>
<countryId>1</countryId><dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
<leaseInfo><renewalIntervalInSecs>5</renewalIntervalInSecs><durationInSecs>15</durationInSecs></leaseInfo>
<metadata><team>blue</team><zone>eu-1a</zone></metadata><vipAddress>xapp,xapp-legacy</vipAddress><secureVipAddress>xapp-s</secureVipAddress></instance>`
	r := euDo(t, "POST", ts.URL+"/eureka/v2/apps/xapp", map[string]string{"Content-Type": "application/xml"}, body)
	if r.code != 204 {
		t.Fatalf("register XML: %d %s", r.code, r.body)
	}
	in, _, err := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "xapp", ID: "x-1"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != registry.StatusStarting || in.Zone != "eu-1a" || in.TTL.D() != 15*time.Second || len(in.Ports) != 2 ||
		in.Ports[1] != (registry.Port{Name: "https", Port: 9443, Protocol: "https"}) || in.Metadata["team"] != "blue" {
		t.Fatalf("native view: %+v", in)
	}
	if in.Healthy() {
		t.Fatal("a STARTING instance must not be healthy")
	}
	// Both vip addresses of the comma-separated list find it; the secure one too.
	for _, p := range []string{"/vips/xapp", "/vips/XAPP-LEGACY", "/svips/xapp-s"} {
		a := euGetApps(t, ts.URL+"/eureka/v2"+p)
		if a.find("XAPP", "x-1") == nil {
			t.Fatalf("%s: not found", p)
		}
	}
	// An unknown VIP is an empty list, as from Netflix's server.
	if a := euGetApps(t, ts.URL+"/eureka/v2/vips/nothing"); a.count() != 0 || a.Applications.Hash != "" {
		t.Fatalf("unknown vip: %+v", a)
	}
	// /instances/{id} finds it without the app.
	r = euDo(t, "GET", ts.URL+"/eureka/v2/instances/x-1", map[string]string{"Accept": "application/json"}, "")
	if r.code != 200 || !bytes.Contains(r.body, []byte(`"instanceId":"x-1"`)) {
		t.Fatalf("/instances: %d %s", r.code, r.body)
	}
	euAgree(t, ts)
}

func TestAPIRenewCancelAndLastDirty(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	body := euBody("WEB", "w-1", "10.0.0.7", 80, "UP", `,"lastDirtyTimestamp":"1700000000000"`)
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/WEB", euJSON, body); r.code != 204 {
		t.Fatalf("register: %d %s", r.code, r.body)
	}
	rev := ts.Reg.Revision()
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", 200},
		{"?status=UP&lastDirtyTimestamp=1700000000000", 200},
		{"?status=UP&lastDirtyTimestamp=1600000000000", 200}, // the server's copy is newer: fine
		{"?status=UP&lastDirtyTimestamp=1800000000000", 404}, // the client's is newer: register again
		{"?lastDirtyTimestamp=soon", 400},
	} {
		if r := euDo(t, "PUT", ts.URL+"/eureka/apps/WEB/w-1"+tc.query, nil, ""); r.code != tc.want {
			t.Fatalf("renew%s: %d, want %d (%s)", tc.query, r.code, tc.want, r.body)
		}
	}
	if ts.Reg.Revision() != rev {
		t.Fatal("renewals must not spend revisions")
	}
	// 404s carry no body (Spring's client decodes a heartbeat's body as an
	// instance and would fail instead of registering again).
	for _, u := range []string{"PUT /eureka/apps/WEB/nope", "GET /eureka/apps/WEB/nope", "GET /eureka/apps/NOPE", "GET /eureka/instances/nope"} {
		m, p, _ := strings.Cut(u, " ")
		if r := euDo(t, m, ts.URL+p, map[string]string{"Accept": "application/json"}, ""); r.code != 404 || len(r.body) != 0 || r.header.Get("X-Cairn-Error") == "" {
			t.Fatalf("%s: %d %q %v", u, r.code, r.body, r.header)
		}
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/NO_SUCH_APP!/w-1", nil, ""); r.code != 404 {
		t.Fatalf("renew in an unmappable app: %d", r.code)
	}
	// An older registration arriving late does not undo the newer one.
	late := euBody("WEB", "w-1", "10.9.9.9", 80, "UP", `,"lastDirtyTimestamp":"1600000000000"`)
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/WEB", euJSON, late); r.code != 204 {
		t.Fatalf("late register: %d", r.code)
	}
	if in, _, _ := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "web", ID: "w-1"}); in.Address != "10.0.0.7" {
		t.Fatalf("a stale registration replaced a newer one: %s", in.Address)
	}
	if r := euDo(t, "DELETE", ts.URL+"/eureka/apps/WEB/w-1", nil, ""); r.code != 200 {
		t.Fatalf("cancel: %d", r.code)
	}
	if r := euDo(t, "DELETE", ts.URL+"/eureka/apps/WEB/w-1", nil, ""); r.code != 404 {
		t.Fatalf("cancel twice: %d", r.code)
	}
	if r := euDo(t, "GET", ts.URL+"/eureka/apps/WEB", nil, ""); r.code != 404 {
		t.Fatalf("app after its last instance left: %d", r.code)
	}
	euAgree(t, ts)
}

func TestAPIOverrideRules(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	euRegister(t, ts, "PAY", "p-1", "10.0.0.8", 8080)
	k := registry.InstanceKey{Namespace: "default", Service: "pay", ID: "p-1"}
	status := func() string {
		t.Helper()
		r := euDo(t, "GET", ts.URL+"/eureka/apps/PAY/p-1", map[string]string{"Accept": "application/json"}, "")
		var one struct{ Instance euIns }
		if err := json.Unmarshal(r.body, &one); err != nil {
			t.Fatal(err)
		}
		return one.Instance.Status + "/" + one.Instance.OverriddenStatus
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/PAY/p-1/status?value=OUT_OF_SERVICE", nil, ""); r.code != 200 {
		t.Fatalf("override: %d %s", r.code, r.body)
	}
	if got := status(); got != "OUT_OF_SERVICE/OUT_OF_SERVICE" {
		t.Fatalf("after override: %s", got)
	}
	if in, _, _ := ts.Reg.Instance(k); in.StatusOverride != registry.StatusOutOfService || in.Healthy() {
		t.Fatalf("native view after override: %+v", in)
	}
	// As on Netflix's server, the full document shows the instance as
	// MODIFIED since then.
	if e := euGetApps(t, ts.URL+"/eureka/apps").find("PAY", "p-1"); e == nil || e.ActionType != "MODIFIED" {
		t.Fatalf("full document after an override: %+v", e)
	}
	// The override survives a re-registration that says UP (a heartbeat
	// cycle of the client) ...
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/PAY", euJSON, euBody("PAY", "p-1", "10.0.0.8", 8080, "UP", `,"metadata":{"v":"2"}`)); r.code != 204 {
		t.Fatalf("re-register: %d %s", r.code, r.body)
	}
	if got := status(); got != "OUT_OF_SERVICE/OUT_OF_SERVICE" {
		t.Fatalf("after re-register: %s", got)
	}
	// ... but an instance that says DOWN is DOWN whatever the override.
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/PAY", euJSON, euBody("PAY", "p-1", "10.0.0.8", 8080, "DOWN", "")); r.code != 204 {
		t.Fatalf("re-register DOWN: %d", r.code)
	}
	if got := status(); got != "DOWN/OUT_OF_SERVICE" {
		t.Fatalf("DOWN under an override: %s", got)
	}
	// Removing the override without a value restores what the instance reports.
	if r := euDo(t, "DELETE", ts.URL+"/eureka/apps/PAY/p-1/status", nil, ""); r.code != 200 {
		t.Fatalf("delete override: %d", r.code)
	}
	if got := status(); got != "DOWN/UNKNOWN" {
		t.Fatalf("after delete override: %s", got)
	}
	// With ?value=UP the status is set too (Netflix's deleteStatusOverride).
	euDo(t, "PUT", ts.URL+"/eureka/apps/PAY/p-1/status?value=OUT_OF_SERVICE", nil, "")
	if r := euDo(t, "DELETE", ts.URL+"/eureka/apps/PAY/p-1/status?value=UP", nil, ""); r.code != 200 {
		t.Fatalf("delete override with value: %d", r.code)
	}
	if got := status(); got != "UP/UNKNOWN" {
		t.Fatalf("after delete override with value=UP: %s", got)
	}
	rev := ts.Reg.Revision()
	for _, q := range []string{"", "?value=SIDEWAYS"} {
		if r := euDo(t, "PUT", ts.URL+"/eureka/apps/PAY/p-1/status"+q, nil, ""); r.code != 400 || !bytes.Contains(r.body, []byte(`"field":"value"`)) {
			t.Fatalf("override%s: %d %s", q, r.code, r.body)
		}
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/PAY/nope/status?value=UP", nil, ""); r.code != 404 {
		t.Fatalf("override unknown: %d", r.code)
	}
	if ts.Reg.Revision() != rev {
		t.Fatal("a refused override changed the registry")
	}
	euAgree(t, ts)
}

func TestAPIMetadataUpdate(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	euRegister(t, ts, "META", "m-1", "10.0.0.9", 8080)
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/META/m-1/metadata?color=green&version=2", nil, ""); r.code != 200 {
		t.Fatalf("metadata: %d %s", r.code, r.body)
	}
	in, _, _ := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "meta", ID: "m-1"})
	if in.Metadata["color"] != "green" || in.Metadata["version"] != "2" || in.Metadata[metaHostName] != "host-m-1" {
		t.Fatalf("metadata after update: %v", in.Metadata)
	}
	a := euGetApps(t, ts.URL+"/eureka/apps")
	if e := a.find("META", "m-1"); e == nil || e.Metadata["color"] != "green" || e.Metadata[metaHostName] != "" {
		t.Fatalf("Eureka view of metadata: %+v", e)
	}
	rev := ts.Reg.Revision()
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/META/m-1/metadata?eureka.hostName=evil", nil, ""); r.code != 400 {
		t.Fatalf("reserved key: %d", r.code)
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/META/m-1/metadata?"+strings.Repeat("k", 200)+"=v", nil, ""); r.code != 400 {
		t.Fatalf("oversized key: %d", r.code)
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/META/none/metadata?a=b", nil, ""); r.code != 404 {
		t.Fatalf("unknown instance: %d", r.code)
	}
	if ts.Reg.Revision() != rev {
		t.Fatal("a refused metadata update changed the registry")
	}
}

// TestAPIDeltaAndHashcode applies deltas the way clients do and checks the
// result against the full registry and the hash.
func TestAPIDeltaAndHashcode(t *testing.T) {
	ts := startTestServer(t, testOptions{DeltaWindow: time.Second})
	euRegister(t, ts, "A", "a-1", "10.0.0.1", 80)
	euRegister(t, ts, "A", "a-2", "10.0.0.2", 80)

	// A client's cache after its full fetch.
	cache := map[string]euIns{}
	full := euGetApps(t, ts.URL+"/eureka/apps/")
	for _, ap := range full.Applications.Application {
		for _, e := range ap.Instance {
			cache[ap.Name+"/"+e.InstanceID] = e
		}
	}
	if full.Applications.Hash != "UP_2_" || len(cache) != 2 {
		t.Fatalf("full: hash %q, %d instances", full.Applications.Hash, len(cache))
	}

	// Changes through both APIs.
	ctx := context.Background()
	if _, _, err := ts.Reg.Register(ctx, registry.Instance{Namespace: "default", Service: "b", ID: "b-1", Address: "10.0.1.1",
		Ports: []registry.Port{{Name: "http", Port: 9000}}}); err != nil {
		t.Fatal(err)
	}
	euDo(t, "PUT", ts.URL+"/eureka/apps/A/a-1/status?value=OUT_OF_SERVICE", nil, "")
	euDo(t, "DELETE", ts.URL+"/eureka/apps/A/a-2", nil, "")

	delta := euGetApps(t, ts.URL+"/eureka/v2/apps/delta")
	actions := map[string]string{}
	for _, ap := range delta.Applications.Application {
		for _, e := range ap.Instance {
			key := ap.Name + "/" + e.InstanceID
			actions[key] = e.ActionType
			switch e.ActionType {
			case "ADDED", "MODIFIED":
				cache[key] = e
			case "DELETED":
				delete(cache, key)
			default:
				t.Fatalf("actionType %q", e.ActionType)
			}
		}
	}
	want := map[string]string{"B/b-1": "ADDED", "A/a-1": "MODIFIED", "A/a-2": "DELETED"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Fatalf("delta actions %v, want %v", actions, want)
	}
	// The client's reconcile hash over its patched cache matches the
	// server's hash of the full registry.
	counts := map[registry.Status]int{}
	for _, e := range cache {
		counts[registry.Status(e.Status)]++
	}
	if got := hashOf(counts); got != delta.Applications.Hash || got != "OUT_OF_SERVICE_1_UP_1_" {
		t.Fatalf("client hash %q, delta's %q", got, delta.Applications.Hash)
	}
	after := euGetApps(t, ts.URL+"/eureka/apps")
	if after.Applications.Hash != delta.Applications.Hash || after.count() != len(cache) {
		t.Fatalf("full after delta: %+v", after)
	}

	// Changes leave the delta after the window.
	deadline := time.Now().Add(5 * time.Second)
	for euGetApps(t, ts.URL+"/eureka/apps/delta").count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("changes stayed in the delta past the window")
		}
		time.Sleep(100 * time.Millisecond)
	}
	euAgree(t, ts)
}

// TestAPIEncodesOncePerRevision: /apps is composed once per revision and
// format, a change re-encodes only its application, gzip answers are one
// ordinary gzip stream, and a registration is in the very next answer.
func TestAPIEncodesOncePerRevision(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	v := ts.Eureka.view
	for i := 0; i < 5; i++ {
		euRegister(t, ts, fmt.Sprintf("APP%d", i), "i-1", "10.0.0.1", 80)
	}
	composed := func() float64 { return euCounter(t, v, "apps", "json") }
	appEncs := func() float64 {
		var m dto.Metric
		if err := v.appEncs.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	first := v.full(formatJSON, false).bytes()
	c0, a0 := composed(), appEncs()
	for i := 0; i < 3; i++ {
		if again := v.full(formatJSON, false).bytes(); !bytes.Equal(again, first) {
			t.Fatal("one revision, two answers")
		}
	}
	if composed() != c0 || appEncs() != a0 {
		t.Fatal("the same revision was encoded again")
	}
	euRegister(t, ts, "APP3", "i-2", "10.0.0.2", 80) // no wait: the next read must see it
	next := v.full(formatJSON, false).bytes()
	if !bytes.Contains(next, []byte(`"i-2"`)) {
		t.Fatal("a registration was not in the next /apps")
	}
	if composed() != c0+1 || appEncs() != a0+1 {
		t.Fatalf("one change: %v compositions and %v app encodings, want 1 and 1", composed()-c0, appEncs()-a0)
	}
	var parsed euApps
	if err := json.Unmarshal(next, &parsed); err != nil || parsed.count() != 6 || parsed.Applications.Hash != "UP_6_" {
		t.Fatalf("composed document: %v %+v", err, parsed)
	}
	// gzip: the same document, one standard stream, made once per revision.
	for _, f := range []string{"application/json", "application/xml"} {
		r := euDo(t, "GET", ts.URL+"/eureka/apps", map[string]string{"Accept": f, "Accept-Encoding": "gzip"}, "")
		p := euDo(t, "GET", ts.URL+"/eureka/apps", map[string]string{"Accept": f}, "")
		if r.header.Get("Content-Encoding") != "gzip" || r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
			t.Fatalf("gzip headers: %v", r.header)
		}
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false) // one member: decoders that stop after the first see it all
		plain, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(plain, p.body) {
			t.Fatalf("%s: gzip body differs from the plain one (%v)", f, err)
		}
		if len(r.body) >= len(p.body)*2/3 { // tiny apps compress alone: a weak ratio here
			t.Fatalf("%s: gzip %d bytes for %d plain", f, len(r.body), len(p.body))
		}
	}
	g1, g2 := v.full(formatJSON, true), v.full(formatJSON, true)
	if &g1.bufs[0][0] != &g2.bufs[0][0] {
		t.Fatal("gzip made twice for one revision")
	}
	// Many readers of one revision: still one composition per format.
	euRegister(t, ts, "APP4", "i-2", "10.0.0.2", 80)
	before := euCounter(t, v, "apps", "xml")
	for i := 0; i < 20; i++ {
		if r := euDo(t, "GET", ts.URL+"/eureka/apps", nil, ""); r.code != 200 {
			t.Fatal(r.code)
		}
	}
	if n := euCounter(t, v, "apps", "xml") - before; n != 1 {
		t.Fatalf("20 reads of one revision composed XML %v times", n)
	}
	// Small documents gzip too.
	r := euDo(t, "GET", ts.URL+"/eureka/apps/APP3", map[string]string{"Accept": "application/json", "Accept-Encoding": "gzip"}, "")
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr); !bytes.HasPrefix(plain, []byte(`{"application":{"name":"APP3"`)) {
		t.Fatalf("gzip app: %s", plain)
	}
}

// TestAPINativeInstancesInEureka: instances from the native API, in any
// namespace, with health checks, are shown faithfully.
func TestAPINativeInstancesInEureka(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	ctx := context.Background()
	reg := func(in registry.Instance) {
		t.Helper()
		if _, _, err := ts.Reg.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	reg(registry.Instance{Namespace: "default", Service: "payments", ID: "p1", Address: "10.0.0.9", Zone: "z1",
		Ports:    []registry.Port{{Name: "grpc", Port: 9090, Protocol: "grpc"}, {Name: "https", Port: 8443, Protocol: "https"}},
		Metadata: map[string]string{"team": "pay"}, TTL: registry.Duration(time.Minute)})
	reg(registry.Instance{Namespace: "shop", Service: "cart", ID: "c1", Address: "10.0.0.10",
		Ports: []registry.Port{{Name: "http", Port: 80, Protocol: "http"}}, TTL: 0,
		Check: &registry.CheckSpec{Type: "http", Path: "/healthz"}})

	a := euGetApps(t, ts.URL+"/eureka/apps")
	p := a.find("PAYMENTS", "p1")
	if p == nil || p.Port.Value != 9090 || p.Port.Enabled != "true" || p.SecurePort.Value != 8443 || p.SecurePort.Enabled != "true" ||
		p.VIPAddress != "payments" || p.Metadata["team"] != "pay" || p.Metadata["zone"] != "z1" || p.LeaseInfo.DurationInSecs != 60 {
		t.Fatalf("native instance in Eureka: %+v", p)
	}
	c := a.find("CART.SHOP", "c1")
	if c == nil || c.VIPAddress != "cart.shop" || c.Status != "STARTING" || c.HealthCheckURL != "http://10.0.0.10:80/healthz" {
		t.Fatalf("checked instance in another namespace: %+v", c)
	}
	// A failing check shows DOWN: Eureka clients route to UP only.
	if err := ts.Reg.SetHealth(registry.InstanceKey{Namespace: "shop", Service: "cart", ID: "c1"}, registry.HealthFailing, "503"); err != nil {
		t.Fatal(err)
	}
	if c := euGetApps(t, ts.URL+"/eureka/apps").find("CART.SHOP", "c1"); c.Status != "DOWN" {
		t.Fatalf("failing check: %s", c.Status)
	}
	// Registering through Eureka into another namespace: APP.NAMESPACE.
	euRegister(t, ts, "CART.SHOP", "c2", "10.0.0.11", 80)
	if _, _, err := ts.Reg.Instance(registry.InstanceKey{Namespace: "shop", Service: "cart", ID: "c2"}); err != nil {
		t.Fatal(err)
	}
	euAgree(t, ts)
}

// TestAPIBadBodies: every refused registration gets the status code
// Eureka's server gives, a JSON body naming the field, and changes nothing.
func TestAPIBadBodies(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	good := func(mod func(m map[string]any)) string {
		m := map[string]any{"instanceId": "i-1", "hostName": "h", "app": "BAD", "ipAddr": "10.0.0.1",
			"port": map[string]any{"$": 80, "@enabled": "true"}, "status": "UP",
			"dataCenterInfo": map[string]any{"@class": defaultDataCenterClass, "name": "MyOwn"}}
		mod(m)
		b, _ := json.Marshal(map[string]any{"instance": m})
		return string(b)
	}
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for _, tc := range []struct {
		name, app, ctype, body string
		code                   int
		field                  string
	}{
		{"no hostName, no instanceId", "BAD", "application/json", good(func(m map[string]any) { delete(m, "hostName"); delete(m, "instanceId") }), 400, "instanceId"},
		{"no hostName", "BAD", "application/json", good(del("hostName")), 400, "hostName"},
		{"no ipAddr", "BAD", "application/json", good(del("ipAddr")), 400, "ipAddr"},
		{"no app", "BAD", "application/json", good(del("app")), 400, "app"},
		{"wrong app", "BAD", "application/json", good(set("app", "OTHER")), 400, "app"},
		{"no dataCenterInfo", "BAD", "application/json", good(del("dataCenterInfo")), 400, "dataCenterInfo"},
		{"no dataCenterInfo name", "BAD", "application/json", good(set("dataCenterInfo", map[string]any{"@class": "x"})), 400, "dataCenterInfo.name"},
		{"bad status", "BAD", "application/json", good(set("status", "SIDEWAYS")), 400, "status"},
		{"bad override", "BAD", "application/json", good(set("overriddenStatus", "MAYBE")), 400, "overriddenStatus"},
		{"bad port", "BAD", "application/json", good(set("port", map[string]any{"$": "http"})), 400, "port"},
		{"port out of range", "BAD", "application/json", good(set("port", 70000)), 400, "port"},
		{"enabled port 0", "BAD", "application/json", good(set("port", map[string]any{"$": 0, "@enabled": "true"})), 400, "port"},
		{"bad ipAddr", "BAD", "application/json", good(set("ipAddr", "not an address!")), 400, "ipAddr"},
		{"bad lease", "BAD", "application/json", good(set("leaseInfo", map[string]any{"durationInSecs": "long"})), 400, "leaseInfo.durationInSecs"},
		{"reserved metadata", "BAD", "application/json", good(set("metadata", map[string]any{"eureka.hostName": "x"})), 400, "metadata.eureka.hostName"},
		{"metadata object value", "BAD", "application/json", good(set("metadata", map[string]any{"k": map[string]any{}})), 400, "metadata.k"},
		{"app not a DNS label", "BAD_APP", "application/json", strings.ReplaceAll(good(func(map[string]any) {}), `"BAD"`, `"BAD_APP"`), 400, "app"},
		{"malformed JSON", "BAD", "application/json", `{"instance":{"app":`, 400, "body"},
		{"JSON array", "BAD", "application/json", `[1,2]`, 400, "body"},
		{"empty body", "BAD", "application/json", ``, 400, "body"},
		{"malformed XML", "BAD", "application/xml", `<instance><app>BAD</app>`, 400, "body"},
		{"XML of another root", "BAD", "application/xml", `<application><name>BAD</name></application>`, 400, "body"},
		{"XML bad port", "BAD", "application/xml", `<instance><app>BAD</app><port enabled="true">x</port></instance>`, 400, "port"},
		{"XML missing fields", "BAD", "text/xml", `<instance><app>BAD</app></instance>`, 400, "instanceId"},
		{"oversized", "BAD", "application/json", `{"instance":{"app":"` + strings.Repeat("A", maxBody) + `"}}`, 413, "body"},
		{"unsupported type", "BAD", "text/plain", good(func(map[string]any) {}), 415, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := ts.Reg.Revision()
			r := euDo(t, "POST", ts.URL+"/eureka/v2/apps/"+tc.app, map[string]string{"Content-Type": tc.ctype}, tc.body)
			var eb errorBody
			if r.code != tc.code || json.Unmarshal(r.body, &eb) != nil || eb.Field != tc.field || eb.Error == "" {
				t.Fatalf("got %d %s, want %d naming %q", r.code, r.body, tc.code, tc.field)
			}
			if ts.Reg.Revision() != rev {
				t.Fatal("a refused registration changed the registry")
			}
		})
	}
	// The tolerated variations are accepted: a bare number port, string
	// countryId, booleans as booleans, a single instance object, nulls,
	// the old override spelling, no leaseInfo, no instanceId.
	body := `{"instance":{"hostName":"h2","app":"bad","ipAddr":"10.0.0.2","port":8080,"securePort":{"$":"8443","@enabled":true},
		"countryId":"1","status":null,"overriddenstatus":"UNKNOWN","isCoordinatingDiscoveryServer":false,"lastDirtyTimestamp":1700000000000,
		"dataCenterInfo":{"@class":"com.netflix.appinfo.MyDataCenterInfo","name":"MyOwn"},"metadata":{"@class":"java.util.Collections$EmptyMap"},
		"appGroupName":null,"actionType":null,"sid":"na"}}`
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/bad", map[string]string{"Content-Type": "application/json"}, body); r.code != 204 {
		t.Fatalf("tolerated variations: %d %s", r.code, r.body)
	}
	in, _, err := ts.Reg.Instance(registry.InstanceKey{Namespace: "default", Service: "bad", ID: "h2"})
	if err != nil || in.TTL.D() != 90*time.Second || len(in.Ports) != 2 || in.Status != registry.StatusUp || lastDirty(in) != 1700000000000 {
		t.Fatalf("tolerated variations: %+v %v", in, err)
	}
}

func TestServiceOf(t *testing.T) {
	for _, tc := range []struct {
		app, ns, name string
		ok            bool
	}{
		{"ORDERS", "default", "orders", true},
		{"orders-service", "default", "orders-service", true},
		{"CART.SHOP", "shop", "cart", true},
		{"A.B.C", "", "", false},
		{"MY_APP", "", "", false},
		{"", "", "", false},
		{strings.Repeat("A", 64), "", "", false},
	} {
		k, fe := serviceOf("default", tc.app)
		if (fe == nil) != tc.ok || (tc.ok && (k.Namespace != tc.ns || k.Name != tc.name)) {
			t.Errorf("serviceOf(%q) = %v, %v", tc.app, k, fe)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{"gzip": true, "gzip, deflate": true, "deflate, GZIP;q=0.5": true,
		"gzip;q=0": false, "": false, "identity": false, "br": false} {
		if acceptsGzip(h) != want {
			t.Errorf("acceptsGzip(%q) != %v", h, want)
		}
	}
}

// TestAPILeaseExpiry: the lease the client chose is the instance's TTL;
// renewals keep it, and once they stop the sweep evicts it and Eureka
// clients get a DELETED in their delta.
func TestAPILeaseExpiry(t *testing.T) {
	ts := startTestServer(t, testOptions{Registry: registry.Config{EvictionInterval: 50 * time.Millisecond, EvictionMaxFraction: 1}})
	body := strings.Replace(euBody("SHORT", "s-1", "10.0.0.3", 80, "UP", ""), `"durationInSecs":30`, `"durationInSecs":1`, 1)
	body = strings.Replace(body, `"renewalIntervalInSecs":10`, `"renewalIntervalInSecs":1`, 1)
	if r := euDo(t, "POST", ts.URL+"/eureka/apps/SHORT", euJSON, body); r.code != 204 {
		t.Fatalf("register: %d %s", r.code, r.body)
	}
	k := registry.InstanceKey{Namespace: "default", Service: "short", ID: "s-1"}
	if in, _, _ := ts.Reg.Instance(k); in.TTL.D() != time.Second {
		t.Fatalf("ttl %v, want the client's 1s", in.TTL)
	}
	for i := 0; i < 6; i++ { // 1.5 s of renewals every 250 ms: longer than the lease
		time.Sleep(250 * time.Millisecond)
		if r := euDo(t, "PUT", ts.URL+"/eureka/apps/SHORT/s-1?status=UP", nil, ""); r.code != 200 {
			t.Fatalf("renewal %d: %d (evicted while renewing?)", i, r.code)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, _, err := ts.Reg.Instance(k); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not evicted after its lease ran out")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := euGetApps(t, ts.URL+"/eureka/apps/delta")
	if e := d.find("SHORT", "s-1"); e == nil || e.ActionType != "DELETED" {
		t.Fatalf("eviction not in the delta: %+v", d)
	}
	if r := euDo(t, "PUT", ts.URL+"/eureka/apps/SHORT/s-1", nil, ""); r.code != 404 {
		t.Fatalf("renewal after eviction: %d, want 404 so the client registers again", r.code)
	}
	euAgree(t, ts)
}

func euCounter(t *testing.T, v *view, doc, format string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.encodes.WithLabelValues(doc, format).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestAPISelfPreservation: when Eureka clients' renewals collapse (a
// partition, not a mass death), the registry's self-preservation keeps
// their instances, and Eureka clients go on seeing them, as with Netflix's
// server. Renewals go through the Eureka endpoint; the clock is the test's.
func TestAPISelfPreservation(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ts := startTestServer(t, testOptions{Registry: registry.Config{Now: now, SelfPreservation: true,
		RenewalWindow: 10 * time.Second, EvictionMaxFraction: 1, EvictionInterval: time.Hour}})
	var ids []string
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("sp-%d", i)
		body := strings.Replace(euBody("SP", id, "10.0.0.1", 80, "UP", ""), `"renewalIntervalInSecs":10,"durationInSecs":30`, `"renewalIntervalInSecs":1,"durationInSecs":3`, 1)
		if r := euDo(t, "POST", ts.URL+"/eureka/apps/SP", euJSON, body); r.code != 204 {
			t.Fatalf("register: %d %s", r.code, r.body)
		}
		ids = append(ids, id)
	}
	tick := func(renewing []string) {
		clock.Add(int64(time.Second))
		for _, id := range renewing {
			if r := euDo(t, "PUT", ts.URL+"/eureka/apps/SP/"+id+"?status=UP", nil, ""); r.code != 200 {
				t.Fatalf("renew %s: %d", id, r.code)
			}
		}
	}
	for i := 0; i < 10; i++ {
		tick(ids)
	}
	if ts.Reg.Sweep(); ts.Reg.SelfPreservationState().Active {
		t.Fatalf("self-preservation with every client renewing: %+v", ts.Reg.SelfPreservationState())
	}
	// Six of ten clients fall silent at once: renewals drop to 40%.
	for i := 0; i < 10; i++ {
		tick(ids[:4])
	}
	if n := ts.Reg.Sweep(); n != 0 || !ts.Reg.SelfPreservationState().Active {
		t.Fatalf("renewals collapsed: evicted %d, state %+v", n, ts.Reg.SelfPreservationState())
	}
	if a := euGetApps(t, ts.URL+"/eureka/apps"); a.count() != 10 {
		t.Fatalf("Eureka clients see %d instances during self-preservation, want all 10", a.count())
	}
	// The partition heals: renewals recover, and self-preservation ends.
	for i := 0; i < 10; i++ {
		tick(ids)
	}
	if n := ts.Reg.Sweep(); n != 0 || ts.Reg.SelfPreservationState().Active {
		t.Fatalf("after recovery: evicted %d, state %+v", n, ts.Reg.SelfPreservationState())
	}
	euAgree(t, ts)
}
