package eureka

import (
	"encoding/json"
	"encoding/xml"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

// fuzzRegistration checks what a decoded body becomes: either a clear
// field error, or an instance the registry accepts and whose Eureka
// encodings parse back as JSON and XML with the same id.
func fuzzRegistration(t *testing.T, w *wireInstance, err error) {
	if err != nil {
		var de *decodeError
		if !asDecodeError(err, &de) || de.Field == "" {
			t.Fatalf("decode error without a field: %v", err)
		}
		return
	}
	v := &view{ns: "default"}
	app := w.App
	k, fe := serviceOf("default", app)
	if fe != nil {
		return
	}
	in, err := toInstance(w, app, k, v.defaultVIP(k))
	if err != nil {
		return
	}
	if fe := registry.NormalizeInstance(&in); fe != nil {
		return // refused with a field error by the registry: fine
	}
	e := v.render(&in, registry.EventAdded, time.Time{})
	js := e.appendJSON(nil, registry.EventAdded)
	var back struct {
		InstanceID string            `json:"instanceId"`
		Metadata   map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("rendered JSON does not parse: %v\n%s", err, js)
	}
	if back.InstanceID != in.ID {
		t.Fatalf("JSON id %q, want %q", back.InstanceID, in.ID)
	}
	x := e.appendXML(nil, registry.EventAdded)
	var xback struct {
		InstanceID string `xml:"instanceId"`
	}
	if err := xml.Unmarshal(x, &xback); err != nil {
		t.Fatalf("rendered XML does not parse: %v\n%s", err, x)
	}
	if xml.Unmarshal(x, &xmlInstance{}) != nil {
		t.Fatal("rendered XML is not a registration the decoder reads back")
	}
	// The rendered form registers again as the same instance.
	w2, err := decodeJSONInstance(append(append([]byte(`{"instance":`), js...), '}'))
	if err != nil {
		t.Fatalf("rendered JSON does not decode: %v\n%s", err, js)
	}
	if in2, err := toInstance(w2, app, k, v.defaultVIP(k)); err != nil || in2.ID != in.ID || in2.Address != in.Address {
		t.Fatalf("round trip: %+v %v", in2, err)
	}
}

func asDecodeError(err error, de **decodeError) bool {
	d, ok := err.(*decodeError)
	*de = d
	return ok
}

func FuzzDecodeJSONInstance(f *testing.F) {
	f.Add([]byte(euBody("ORDERS", "o-1", "10.0.0.1", 8080, "UP", "")))
	f.Add([]byte(`{"instance":{"hostName":"h","app":"a","ipAddr":"10.0.0.2","port":8080,"securePort":{"$":"8443","@enabled":true},"countryId":"1","status":null,"dataCenterInfo":{"name":"MyOwn"},"metadata":{"@class":"x"}}}`))
	f.Add([]byte(`{"instance":{"instanceId":"i\u2028","hostName":"h\"<>&","app":"A","ipAddr":"::1","port":{"$":1},"dataCenterInfo":{"name":"Amazon","metadata":{"instance-id":"i-1","availability-zone":"us-east-1a"}},"metadata":{"1bad":"\u0000"}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"instance":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeJSONInstance(b)
		fuzzRegistration(t, w, err)
	})
}

func FuzzDecodeXMLInstance(f *testing.F) {
	f.Add([]byte(`<instance><instanceId>x-1</instanceId><hostName>x</hostName><app>XAPP</app><ipAddr>10.1.1.1</ipAddr><status>UP</status><port enabled="true">9000</port><dataCenterInfo class="c"><name>MyOwn</name></dataCenterInfo><metadata><team>blue</team></metadata></instance>`))
	f.Add([]byte(`<instance><hostName>h</hostName><app>a</app><ipAddr>10.0.0.1</ipAddr><dataCenterInfo><name>MyOwn</name><metadata></metadata></dataCenterInfo><metadata>  </metadata><port enabled="true"> 80 </port><securePort enabled="false">0</securePort></instance>`))
	f.Add([]byte(`<instance><app>&amp;</app><metadata><a><b>c</b></a></metadata></instance>`))
	f.Add([]byte(`<?xml version="1.0"?><application/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeXMLInstance(b)
		fuzzRegistration(t, w, err)
	})
}
