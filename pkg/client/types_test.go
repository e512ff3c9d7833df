package client

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`"90s"`, 90 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`"250ms"`, 250 * time.Millisecond, false},
		{`"30"`, 30 * time.Second, false},
		{`30`, 30 * time.Second, false},
		{`0.5`, 500 * time.Millisecond, false},
		{`0`, 0, false},
		{`"0s"`, 0, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
		{`1e300`, 0, true},
		{`"1e300"`, 0, true},
		{`{}`, 0, true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if err == nil && time.Duration(d) != tt.want {
				t.Fatalf("got %v, want %v", time.Duration(d), tt.want)
			}
		})
	}
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Fatalf("marshal: %s", b)
	}
}

// serverInstance is an instance as docs/api.md shows it.
const serverInstance = `{
  "id": "web-1", "namespace": "default", "service": "web",
  "address": "10.0.0.5",
  "ports": [{"name": "http", "port": 8080, "protocol": "http"}],
  "zone": "eu-1a", "region": "eu-1", "cluster": "prod",
  "weight": 1, "metadata": {"version": "1.2.0"}, "tags": ["canary"],
  "source": "api", "status": "UP", "statusOverride": "",
  "ttl": "90s", "renewInterval": "30s",
  "check": {"type": "http", "port": "http", "path": "/healthz", "interval": "10s",
            "timeout": "2s", "healthyThreshold": 1, "unhealthyThreshold": 3},
  "health": "passing", "healthOutput": "HTTP 200",
  "registeredAt": "2026-11-23T10:00:00Z", "lastRenewedAt": "2026-11-23T10:00:30Z",
  "createRevision": 7, "modifyRevision": 9
}`

func TestInstanceJSON(t *testing.T) {
	var in Instance
	if err := json.Unmarshal([]byte(serverInstance), &in); err != nil {
		t.Fatal(err)
	}
	if in.TTL != 90*time.Second || in.RenewInterval != 30*time.Second || in.Check.Interval != 10*time.Second ||
		in.Check.Timeout != 2*time.Second || in.Health != HealthPassing || in.ModifyRevision != 9 ||
		in.RegisteredAt.IsZero() || in.Ports[0].Port != 8080 || in.Metadata["version"] != "1.2.0" {
		t.Fatalf("decoded %+v", in)
	}
	if !in.Healthy() || in.Key() != (Key{"default", "web", "web-1"}) {
		t.Fatalf("healthy %v key %v", in.Healthy(), in.Key())
	}
	// Round trip.
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var again Instance
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if again.TTL != in.TTL || again.Check.Interval != in.Check.Interval || !again.RegisteredAt.Equal(in.RegisteredAt) {
		t.Fatalf("round trip: %s", b)
	}
	for _, want := range []string{`"ttl":"1m30s"`, `"renewInterval":"30s"`, `"interval":"10s"`, `"timeout":"2s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshalled %s lacks %s", b, want)
		}
	}
}

func TestInstanceTTL(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ttl     time.Duration
		wire    string // the ttl member of the JSON, "" when absent
		decoded time.Duration
	}{
		{"default lease is left to the server", 0, "", 0},
		{"no lease is 0s", NoLease, `"ttl":"0s"`, NoLease},
		{"a lease", 30 * time.Second, `"ttl":"30s"`, 30 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := Instance{Service: "web", Address: "10.0.0.1", TTL: tt.ttl}
			for _, v := range []any{in, registrationOf(&in)} {
				b, _ := json.Marshal(v)
				if tt.wire == "" && strings.Contains(string(b), `"ttl"`) || tt.wire != "" && !strings.Contains(string(b), tt.wire) {
					t.Fatalf("%T: %s, want %q", v, b, tt.wire)
				}
				var back Instance
				if err := json.Unmarshal(b, &back); err != nil || back.TTL != tt.decoded {
					t.Fatalf("%T: decoded TTL %v (%v), want %v", v, back.TTL, err, tt.decoded)
				}
			}
		})
	}
	// A server instance without a lease says "0s".
	var in Instance
	if err := json.Unmarshal([]byte(`{"id":"a","ttl":"0s"}`), &in); err != nil || in.TTL != NoLease {
		t.Fatalf("ttl 0s decoded as %v, %v", in.TTL, err)
	}
}

// The server rejects unknown fields: a registration must carry only what a
// client may send.
func TestRegistrationCarriesNoServerFields(t *testing.T) {
	var in Instance
	if err := json.Unmarshal([]byte(serverInstance), &in); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(registrationOf(&in))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, f := range []string{"health", "healthOutput", "registeredAt", "lastRenewedAt", "createRevision", "modifyRevision"} {
		if _, ok := m[f]; ok {
			t.Errorf("registration carries %q: %s", f, b)
		}
	}
	for _, f := range []string{"id", "service", "address", "ports", "ttl", "check", "metadata", "tags"} {
		if _, ok := m[f]; !ok {
			t.Errorf("registration lacks %q: %s", f, b)
		}
	}
}

func TestInstanceHealthyAndClone(t *testing.T) {
	for _, tt := range []struct {
		status, override Status
		health           Health
		want             bool
	}{
		{StatusUp, "", HealthNone, true},
		{StatusUp, "", HealthPassing, true},
		{StatusUp, "", HealthUnknown, false},
		{StatusUp, "", HealthFailing, false},
		{StatusDown, "", HealthPassing, false},
		{StatusUp, StatusOutOfService, HealthPassing, false},
		{StatusDown, StatusUp, HealthNone, false}, // a reported DOWN wins over an override (Eureka's rule)
		{StatusOutOfService, StatusUp, HealthNone, true},
		{StatusUnknown, StatusUp, HealthNone, true},
	} {
		in := Instance{Status: tt.status, StatusOverride: tt.override, Health: tt.health}
		if in.Healthy() != tt.want {
			t.Errorf("%+v: healthy %v", tt, !tt.want)
		}
	}
	in := Instance{Ports: []Port{{Name: "a", Port: 1}}, Metadata: map[string]string{"k": "v"}, Tags: []string{"t"}, Check: &CheckSpec{Type: "tcp"}}
	c := in.Clone()
	c.Ports[0].Port, c.Metadata["k"], c.Tags[0], c.Check.Type = 2, "w", "u", "http"
	if in.Ports[0].Port != 1 || in.Metadata["k"] != "v" || in.Tags[0] != "t" || in.Check.Type != "tcp" {
		t.Fatalf("clone shares state: %+v", in)
	}
}

func TestEventAndSnapshotJSON(t *testing.T) {
	var ev Event
	if err := json.Unmarshal([]byte(`{"revision":43,"type":"ADDED","kind":"instance","reason":"register","instance":`+serverInstance+`}`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != EventAdded || ev.Kind != KindInstance || ev.Instance == nil || ev.Instance.TTL != 90*time.Second {
		t.Fatalf("%+v", ev)
	}
	var snap Snapshot
	if err := json.Unmarshal([]byte(`{"revision":42,"resync":true,"services":[{"namespace":"default","name":"web","createRevision":1,"modifyRevision":1}],"instances":[`+serverInstance+`]}`), &snap); err != nil {
		t.Fatal(err)
	}
	if !snap.Resync || len(snap.Services) != 1 || len(snap.Instances) != 1 || snap.Services[0].Name != "web" {
		t.Fatalf("%+v", snap)
	}
}

// Every field of Instance and CheckSpec survives a JSON round trip: the
// wire structs that give them their JSON form must not forget one.
func TestInstanceRoundTripKeepsEveryField(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	in := Instance{
		ID: "a", Namespace: "ns", Service: "web", Address: "10.0.0.1", Ports: []Port{{"http", 80, "http"}},
		Zone: "z", Region: "r", Cluster: "c", Weight: 5, Metadata: map[string]string{"k": "v"}, Tags: []string{"t"},
		Source: "api", Status: StatusDown, StatusOverride: StatusUp, TTL: time.Minute, RenewInterval: 20 * time.Second,
		Check: &CheckSpec{Type: "grpc", Port: "http", Path: "/p", GRPCService: "svc", Interval: time.Second,
			Timeout: time.Millisecond * 500, HealthyThreshold: 2, UnhealthyThreshold: 4, TLSSkipVerify: true},
		Health: HealthFailing, HealthOutput: "boom", RegisteredAt: at, LastRenewedAt: at.Add(time.Second),
		CreateRevision: 3, ModifyRevision: 4,
	}
	for _, v := range []reflect.Value{reflect.ValueOf(in), reflect.ValueOf(*in.Check)} {
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Fatalf("test instance leaves %s.%s zero", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back Instance
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, back) {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, in)
	}
	// A registration carries every field a client may set, and none the
	// server owns.
	rb, _ := json.Marshal(registrationOf(&in))
	var sent map[string]any
	json.Unmarshal(rb, &sent)
	for _, f := range []string{"id", "namespace", "service", "address", "ports", "zone", "region", "cluster", "weight",
		"metadata", "tags", "source", "status", "statusOverride", "ttl", "renewInterval", "check"} {
		if _, ok := sent[f]; !ok {
			t.Errorf("registration lacks %s", f)
		}
	}
	for _, f := range []string{"health", "healthOutput", "registeredAt", "lastRenewedAt", "createRevision", "modifyRevision"} {
		if _, ok := sent[f]; ok {
			t.Errorf("registration sends the server-owned %s", f)
		}
	}
}
