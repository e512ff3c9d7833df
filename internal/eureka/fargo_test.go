package eureka

// Cairn's Eureka API driven by a real Go Eureka client, github.com/hudl/fargo
// v1.4.0, in both of its wire formats (JSON with conn.UseJson, XML by
// default), with every Eureka-side action checked against the native
// registry view.
//
// fargo facts these tests rely on (see its source): RegisterInstance first
// GETs the instance and only POSTs when that is not a 200; a POST must answer
// 204; HeartBeatInstance wants a 200 and reports a 404 as an error whose
// fargo.HTTPResponseStatusCode is 404, and it never re-registers by itself:
// the application calls ReregisterInstance (or RegisterInstance). fargo has
// no delta support; its polling helpers (ScheduleAppUpdates, ...) re-GET the
// application.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hudl/fargo"

	"github.com/cairnhq/cairn/internal/registry"
)

// ---- helpers shared by the client tests (fargo_test.go, jsclient_test.go) ----

// clKey is the native key of Eureka app/instance id.
func clKey(app, id string) registry.InstanceKey {
	return registry.InstanceKey{Namespace: "default", Service: strings.ToLower(app), ID: id}
}

// clNative returns the native instance, failing the test when it is missing.
func clNative(t *testing.T, ts *testServer, app, id string) *registry.Instance {
	t.Helper()
	in, _, err := ts.Reg.Instance(clKey(app, id))
	if err != nil {
		t.Fatalf("native view: instance %s/%s: %v (want it registered)", app, id, err)
	}
	return in
}

// clNativeGone fails unless the native registry has no such instance.
func clNativeGone(t *testing.T, ts *testServer, app, id string) {
	t.Helper()
	in, _, err := ts.Reg.Instance(clKey(app, id))
	if err == nil {
		t.Fatalf("native view: instance %s/%s still registered (%+v), want it gone", app, id, *in)
	}
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("native view: instance %s/%s: %v, want ErrNotFound", app, id, err)
	}
}

// clEventually polls cond every 20ms until it returns "" (success) or the
// deadline passes; the last non-empty answer is the failure message.
func clEventually(t *testing.T, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clNativeIDs lists the ids of the native instances of the service behind
// Eureka app name.
func clNativeIDs(ts *testServer, app string) []string {
	ins, _ := ts.Reg.Instances(registry.Filter{Namespace: "default", Service: strings.ToLower(app)})
	ids := make([]string, 0, len(ins))
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	sort.Strings(ids)
	return ids
}

// clUserMeta is the native metadata without Cairn's "eureka." bookkeeping.
func clUserMeta(in *registry.Instance) map[string]string {
	m := map[string]string{}
	for k, v := range in.Metadata {
		if !strings.HasPrefix(k, "eureka.") {
			m[k] = v
		}
	}
	return m
}

// clPort finds the native port with the given name.
func clPort(in *registry.Instance, name string) (registry.Port, bool) {
	for _, p := range in.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return registry.Port{}, false
}

// clRegisterNative adds a native (non-Eureka) instance.
func clRegisterNative(t *testing.T, ts *testServer, svc, id, addr string, port int) {
	t.Helper()
	_, _, err := ts.Reg.Register(context.Background(), registry.Instance{
		Namespace: "default", Service: svc, ID: id, Address: addr,
		Ports:  []registry.Port{{Name: "http", Port: port}},
		Status: registry.StatusUp,
	})
	if err != nil {
		t.Fatalf("native register %s/%s: %v", svc, id, err)
	}
}

// ---- fargo ----

func fargoConn(base string, useJSON bool) *fargo.EurekaConnection {
	c := fargo.NewConn(base)
	c.UseJson = useJSON
	c.PollInterval = 100 * time.Millisecond
	return &c
}

func fargoMode(useJSON bool) string {
	if useJSON {
		return "json"
	}
	return "xml"
}

// fargoIDs lists the instance ids of a fargo application.
func fargoIDs(app *fargo.Application) []string {
	if app == nil {
		return nil
	}
	ids := []string{}
	for _, in := range app.Instances {
		ids = append(ids, in.Id())
	}
	sort.Strings(ids)
	return ids
}

func fargoFind(app *fargo.Application, id string) *fargo.Instance {
	if app == nil {
		return nil
	}
	for _, in := range app.Instances {
		if in.Id() == id {
			return in
		}
	}
	return nil
}

func fargoCode(err error) int {
	code, _ := fargo.HTTPResponseStatusCode(err)
	return code
}

// fargoAgreesWithNative checks that every app fargo's GetApps sees has
// exactly the instances of the matching native service, and that every
// native service of namespace default shows up as an app.
func fargoAgreesWithNative(t *testing.T, conn *fargo.EurekaConnection, ts *testServer) map[string]*fargo.Application {
	t.Helper()
	apps, err := conn.GetApps()
	if err != nil {
		t.Fatalf("fargo GetApps: %v", err)
	}
	for name, app := range apps {
		if name != strings.ToUpper(name) {
			t.Errorf("fargo GetApps: app name %q is not upper case", name)
		}
		if got, want := fargoIDs(app), clNativeIDs(ts, name); !slices.Equal(got, want) {
			t.Errorf("app %s: fargo GetApps sees instances %v, native view has %v", name, got, want)
		}
	}
	natives, _ := ts.Reg.Instances(registry.Filter{Namespace: "default"})
	for _, in := range natives {
		app := strings.ToUpper(in.Service)
		if fargoFind(apps[app], in.ID) == nil {
			t.Errorf("native instance %s/%s missing from fargo GetApps (apps: %v)", in.Service, in.ID, fargoAppNames(apps))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return apps
}

func fargoAppNames(apps map[string]*fargo.Application) []string {
	names := []string{}
	for n, a := range apps {
		names = append(names, fmt.Sprintf("%s%v", n, fargoIDs(a)))
	}
	sort.Strings(names)
	return names
}

func newFargoOrders(id string) *fargo.Instance {
	ins := &fargo.Instance{
		InstanceId:        id,
		HostName:          id + ".orders.test",
		App:               "ORDERS",
		IPAddr:            "10.0.0.5",
		VipAddress:        "orders",
		SecureVipAddress:  "orders-secure",
		Status:            fargo.UP,
		Port:              8080,
		PortEnabled:       true,
		SecurePort:        8443,
		SecurePortEnabled: true,
		HomePageUrl:       "http://10.0.0.5:8080/",
		StatusPageUrl:     "http://10.0.0.5:8080/info",
		HealthCheckUrl:    "http://10.0.0.5:8080/health",
		DataCenterInfo:    fargo.DataCenterInfo{Name: fargo.MyOwn},
		LeaseInfo:         fargo.LeaseInfo{RenewalIntervalInSecs: 10, DurationInSecs: 30},
	}
	ins.SetMetadataString("team", "core")
	return ins
}

// TestFargoLifecycle: register, read back, heartbeat, list, vips, metadata,
// status override, poll for updates, deregister, with fargo in JSON mode on
// /eureka/v2 and in XML mode on /eureka.
func TestFargoLifecycle(t *testing.T) {
	for _, mode := range []struct {
		json bool
		path string
	}{{true, "/eureka/v2"}, {false, "/eureka"}} {
		t.Run(fargoMode(mode.json), func(t *testing.T) {
			testFargoLifecycle(t, mode.json, mode.path)
		})
	}
}

func testFargoLifecycle(t *testing.T, useJSON bool, path string) {
	ts := startTestServer(t, testOptions{})
	base := ts.URL + path
	conn := fargoConn(base, useJSON)
	clRegisterNative(t, ts, "payments", "p1", "10.0.0.9", 9000)

	// Register.
	ins := newFargoOrders("orders-1")
	if err := conn.RegisterInstance(ins); err != nil {
		t.Fatalf("fargo RegisterInstance (POST %s/apps/ORDERS): %v", base, err)
	}
	nat := clNative(t, ts, "ORDERS", "orders-1")
	if nat.Address != "10.0.0.5" {
		t.Errorf("native Address = %q, want ipAddr 10.0.0.5", nat.Address)
	}
	if p, ok := clPort(nat, "http"); !ok || p.Port != 8080 || p.Protocol != "http" {
		t.Errorf("native ports %+v: want {http 8080 http}", nat.Ports)
	}
	if p, ok := clPort(nat, "https"); !ok || p.Port != 8443 || p.Protocol != "https" {
		t.Errorf("native ports %+v: want {https 8443 https} for the enabled securePort", nat.Ports)
	}
	if nat.Source != "eureka" {
		t.Errorf("native Source = %q, want eureka", nat.Source)
	}
	if nat.Status != registry.StatusUp || nat.EffectiveStatus() != registry.StatusUp {
		t.Errorf("native Status = %q (effective %q), want UP", nat.Status, nat.EffectiveStatus())
	}
	if nat.TTL.D() != 30*time.Second {
		t.Errorf("native TTL = %v, want the leaseInfo.durationInSecs 30s", nat.TTL.D())
	}
	if got := clUserMeta(nat); got["team"] != "core" {
		t.Errorf("native metadata %v: want team=core", nat.Metadata)
	}
	renewals0 := ts.Reg.Stats().Renewals

	// Read back: fargo's own GetInstance (RegisterInstance also did it and
	// ignored errors; a parse failure would show here).
	got, err := conn.GetInstance("ORDERS", "orders-1")
	if err != nil {
		t.Fatalf("fargo GetInstance(ORDERS, orders-1): %v", err)
	}
	if got.InstanceId != "orders-1" || got.App != "ORDERS" || got.IPAddr != "10.0.0.5" || got.HostName != "orders-1.orders.test" {
		t.Errorf("fargo GetInstance: id/app/ip/host = %q/%q/%q/%q, want orders-1/ORDERS/10.0.0.5/orders-1.orders.test",
			got.InstanceId, got.App, got.IPAddr, got.HostName)
	}
	if got.Port != 8080 || !got.PortEnabled || got.SecurePort != 8443 || !got.SecurePortEnabled {
		t.Errorf("fargo GetInstance: port %d enabled %v, securePort %d enabled %v; want 8080 true 8443 true",
			got.Port, got.PortEnabled, got.SecurePort, got.SecurePortEnabled)
	}
	if got.Status != fargo.UP || got.VipAddress != "orders" || got.SecureVipAddress != "orders-secure" {
		t.Errorf("fargo GetInstance: status %q vip %q svip %q; want UP orders orders-secure", got.Status, got.VipAddress, got.SecureVipAddress)
	}
	if got.LeaseInfo.DurationInSecs != 30 {
		t.Errorf("fargo GetInstance: leaseInfo.durationInSecs = %d, want 30", got.LeaseInfo.DurationInSecs)
	}
	if v, err := got.Metadata.GetString("team"); err != nil || v != "core" {
		t.Errorf("fargo GetInstance: metadata team = %q, %v; want core (raw %s)", v, err, got.Metadata.Raw)
	}
	for k := range got.Metadata.GetMap() {
		if strings.HasPrefix(k, "eureka.") {
			t.Errorf("fargo GetInstance: metadata shows Cairn's internal key %q (raw %s)", k, got.Metadata.Raw)
		}
	}
	if ins.InstanceId != "orders-1" || ins.App != "ORDERS" {
		t.Fatalf("after RegisterInstance fargo replaced the instance with the server's copy: id %q app %q, want orders-1 ORDERS", ins.InstanceId, ins.App)
	}

	// A second RegisterInstance sees the 200 and does not POST again.
	if err := conn.RegisterInstance(ins); err != nil {
		t.Fatalf("second fargo RegisterInstance: %v", err)
	}

	// Heartbeat renews the lease.
	before := clNative(t, ts, "ORDERS", "orders-1").LastRenewedAt
	time.Sleep(5 * time.Millisecond)
	if err := conn.HeartBeatInstance(ins); err != nil {
		t.Fatalf("fargo HeartBeatInstance (PUT %s/apps/ORDERS/orders-1): %v", base, err)
	}
	if after := clNative(t, ts, "ORDERS", "orders-1").LastRenewedAt; !after.After(before) {
		t.Errorf("native LastRenewedAt %v did not advance past %v after a heartbeat", after, before)
	}
	if r := ts.Reg.Stats().Renewals; r <= renewals0 {
		t.Errorf("native Stats().Renewals = %d after a heartbeat, was %d", r, renewals0)
	}

	// A registration without instanceId: Eureka's id is then the hostName
	// (fargo sends "instanceId":"" and uses HostName in its URLs).
	inv := &fargo.Instance{HostName: "inv-host-1", App: "INVENTORY", IPAddr: "10.0.0.7", VipAddress: "inventory",
		Status: fargo.UP, Port: 7000, PortEnabled: true, DataCenterInfo: fargo.DataCenterInfo{Name: fargo.MyOwn}}
	if err := conn.RegisterInstance(inv); err != nil {
		t.Fatalf("fargo RegisterInstance without instanceId (hostName inv-host-1): %v", err)
	}
	if in := clNative(t, ts, "INVENTORY", "inv-host-1"); in.Address != "10.0.0.7" {
		t.Errorf("native inventory/inv-host-1 Address = %q, want 10.0.0.7", in.Address)
	}
	if nat := clNative(t, ts, "INVENTORY", "inv-host-1"); nat.TTL.D() != 90*time.Second {
		t.Errorf("native TTL = %v for leaseInfo.durationInSecs 0, want Eureka's default 90s", nat.TTL.D())
	}
	if err := conn.HeartBeatInstance(inv); err != nil {
		t.Errorf("fargo HeartBeatInstance for inv-host-1: %v", err)
	}

	// GetApps: own app, the native app, and agreement with the native view.
	apps := fargoAgreesWithNative(t, conn, ts)
	pay := fargoFind(apps["PAYMENTS"], "p1")
	if pay == nil {
		t.Fatalf("fargo GetApps: native payments/p1 not seen as app PAYMENTS (apps %v)", fargoAppNames(apps))
	}
	if pay.App != "PAYMENTS" || pay.IPAddr != "10.0.0.9" || pay.Port != 9000 || !pay.PortEnabled || pay.VipAddress != "payments" || pay.Status != fargo.UP {
		t.Errorf("fargo sees native p1 as app %q ip %q port %d enabled %v vip %q status %q; want PAYMENTS 10.0.0.9 9000 true payments UP",
			pay.App, pay.IPAddr, pay.Port, pay.PortEnabled, pay.VipAddress, pay.Status)
	}
	if o := fargoFind(apps["ORDERS"], "orders-1"); o == nil {
		t.Errorf("fargo GetApps: no ORDERS/orders-1")
	} else if o.Port != 8080 || o.Status != fargo.UP {
		t.Errorf("fargo GetApps: ORDERS/orders-1 port %d status %q, want 8080 UP", o.Port, o.Status)
	}

	// GetApp for one app.
	app, err := conn.GetApp("PAYMENTS")
	if err != nil {
		t.Fatalf("fargo GetApp(PAYMENTS): %v", err)
	}
	if app.Name != "PAYMENTS" || !slices.Equal(fargoIDs(app), []string{"p1"}) {
		t.Errorf("fargo GetApp(PAYMENTS) = %s %v, want PAYMENTS [p1]", app.Name, fargoIDs(app))
	}
	app, err = conn.GetApp("ORDERS")
	if err != nil {
		t.Fatalf("fargo GetApp(ORDERS): %v", err)
	}
	if !slices.Equal(fargoIDs(app), []string{"orders-1"}) {
		t.Errorf("fargo GetApp(ORDERS) instances %v, want [orders-1]", fargoIDs(app))
	}
	if _, err := conn.GetApp("NO-SUCH-APP"); !errors.As(err, new(fargo.AppNotFoundError)) {
		t.Errorf("fargo GetApp(NO-SUCH-APP) error = %v, want AppNotFoundError (a 404)", err)
	}

	// VIPs.
	vip, err := conn.GetInstancesByVIPAddress("orders", false)
	if err != nil || len(vip) != 1 || vip[0].Id() != "orders-1" {
		t.Errorf("fargo GetInstancesByVIPAddress(orders) = %d instances, %v; want [orders-1]", len(vip), err)
	}
	vip, err = conn.GetInstancesByVIPAddress("payments", false)
	if err != nil || len(vip) != 1 || vip[0].Id() != "p1" {
		t.Errorf("fargo GetInstancesByVIPAddress(payments) (native service) = %d instances, %v; want [p1]", len(vip), err)
	}
	vip, err = conn.GetInstancesByVIPAddress("orders-secure", true)
	if err != nil || len(vip) != 1 || vip[0].Id() != "orders-1" {
		t.Errorf("fargo GetInstancesByVIPAddress(orders-secure, secure) = %d instances, %v; want [orders-1]", len(vip), err)
	}

	// Polling: ScheduleAppUpdates re-GETs the app every PollInterval and
	// sees a native registration (own connection: fargo's lazy init of a
	// connection is not safe against a concurrent first use).
	done := make(chan struct{})
	updates := fargoConn(base, useJSON).ScheduleAppUpdates("PAYMENTS", true, done)
	first := <-updates
	if first.Err != nil || !slices.Equal(fargoIDs(first.App), []string{"p1"}) {
		t.Fatalf("fargo ScheduleAppUpdates(PAYMENTS) first update: %v %v, want [p1]", fargoIDs(first.App), first.Err)
	}
	clRegisterNative(t, ts, "payments", "p2", "10.0.0.10", 9000)
	timeout := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case u := <-updates:
			if u.Err == nil && slices.Equal(fargoIDs(u.App), []string{"p1", "p2"}) {
				seen = true
			}
		case <-timeout:
			close(done)
			t.Fatalf("fargo ScheduleAppUpdates(PAYMENTS) never showed native p2 within 5s")
		}
	}
	close(done)

	// Metadata update.
	if err := conn.AddMetadataString(ins, "color", "blue"); err != nil {
		t.Fatalf("fargo AddMetadataString (PUT .../metadata?color=blue): %v", err)
	}
	if m := clUserMeta(clNative(t, ts, "ORDERS", "orders-1")); m["color"] != "blue" || m["team"] != "core" {
		t.Errorf("native metadata after AddMetadataString = %v, want color=blue and team=core", m)
	}
	if got, err := conn.GetInstance("ORDERS", "orders-1"); err != nil {
		t.Errorf("fargo GetInstance after metadata update: %v", err)
	} else if v, _ := got.Metadata.GetString("color"); v != "blue" {
		t.Errorf("fargo GetInstance: metadata color = %q, want blue (raw %s)", v, got.Metadata.Raw)
	}

	// Status override: survives heartbeats, shows in both views.
	if err := conn.UpdateInstanceStatus(ins, fargo.OUTOFSERVICE); err != nil {
		t.Fatalf("fargo UpdateInstanceStatus(OUT_OF_SERVICE): %v", err)
	}
	checkOOS := func(when string) {
		t.Helper()
		nat := clNative(t, ts, "ORDERS", "orders-1")
		if nat.StatusOverride != registry.StatusOutOfService || nat.EffectiveStatus() != registry.StatusOutOfService {
			t.Errorf("%s: native StatusOverride %q effective %q, want OUT_OF_SERVICE", when, nat.StatusOverride, nat.EffectiveStatus())
		}
		got, err := conn.GetInstance("ORDERS", "orders-1")
		if err != nil {
			t.Fatalf("%s: fargo GetInstance: %v", when, err)
		}
		if got.Status != fargo.OUTOFSERVICE || got.Overriddenstatus != fargo.OUTOFSERVICE {
			t.Errorf("%s: fargo sees status %q overriddenstatus %q, want OUT_OF_SERVICE for both", when, got.Status, got.Overriddenstatus)
		}
		up, err := conn.GetInstancesByVIPAddress("orders", false, fargo.ThatAreUp)
		if err != nil || len(up) != 0 {
			t.Errorf("%s: fargo UP instances of vip orders = %d (%v), want none", when, len(up), err)
		}
	}
	checkOOS("after UpdateInstanceStatus")
	if err := conn.HeartBeatInstance(ins); err != nil {
		t.Fatalf("fargo heartbeat with an override: %v", err)
	}
	checkOOS("after a heartbeat")
	// fargo has no call to remove an override; Eureka's is DELETE .../status.
	req, _ := http.NewRequest(http.MethodDelete, base+"/apps/ORDERS/orders-1/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE %s/apps/ORDERS/orders-1/status: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("DELETE .../status answered %d, want 200", resp.StatusCode)
	}
	if nat := clNative(t, ts, "ORDERS", "orders-1"); nat.StatusOverride != "" || nat.EffectiveStatus() != registry.StatusUp {
		t.Errorf("after DELETE .../status: native override %q effective %q, want none and UP", nat.StatusOverride, nat.EffectiveStatus())
	}
	if got, err := conn.GetInstance("ORDERS", "orders-1"); err != nil {
		t.Errorf("fargo GetInstance after DELETE .../status: %v", err)
	} else if got.Status != fargo.UP {
		t.Errorf("after DELETE .../status fargo sees status %q, want UP", got.Status)
	}

	// A native status change shows to fargo.
	if _, _, err := ts.Reg.SetStatus(context.Background(), clKey("PAYMENTS", "p1"), registry.StatusDown); err != nil {
		t.Fatalf("native SetStatus(p1, DOWN): %v", err)
	}
	app, err = conn.GetApp("PAYMENTS")
	if err != nil {
		t.Fatalf("fargo GetApp(PAYMENTS): %v", err)
	}
	if p := fargoFind(app, "p1"); p == nil {
		t.Errorf("fargo GetApp(PAYMENTS) has no p1 after a native DOWN")
	} else if p.Status != fargo.DOWN {
		t.Errorf("fargo sees p1 with status %q after a native DOWN, want DOWN", p.Status)
	}

	// Deregister: gone from both views.
	if err := conn.DeregisterInstance(ins); err != nil {
		t.Fatalf("fargo DeregisterInstance (DELETE %s/apps/ORDERS/orders-1): %v", base, err)
	}
	clNativeGone(t, ts, "ORDERS", "orders-1")
	if app, err := conn.GetApp("ORDERS"); err == nil && fargoFind(app, "orders-1") != nil {
		t.Errorf("fargo GetApp(ORDERS) still shows orders-1 after DeregisterInstance")
	} else if err != nil && !errors.As(err, new(fargo.AppNotFoundError)) {
		t.Errorf("fargo GetApp(ORDERS) after the last instance left: %v, want AppNotFoundError or an app without orders-1", err)
	}
	if _, err := conn.GetInstance("ORDERS", "orders-1"); fargoCode(err) != http.StatusNotFound {
		t.Errorf("fargo GetInstance after deregister: %v, want a 404", err)
	}
	if err := conn.HeartBeatInstance(ins); fargoCode(err) != http.StatusNotFound {
		t.Errorf("fargo heartbeat after deregister: %v, want a 404 (the client's cue to re-register)", err)
	}
	if err := conn.DeregisterInstance(ins); fargoCode(err) != http.StatusNotFound {
		t.Errorf("second fargo DeregisterInstance: %v, want a 404", err)
	}
	if err := conn.DeregisterInstance(inv); err != nil {
		t.Errorf("fargo DeregisterInstance(inv-host-1): %v", err)
	}
	clNativeGone(t, ts, "INVENTORY", "inv-host-1")
	fargoAgreesWithNative(t, conn, ts)
}

// TestFargoReregisterAfterRestart: the server restarts empty on the same
// address; the next heartbeat gets a 404 and the application re-registers as
// fargo expects it to (JSON: ReregisterInstance; XML: RegisterInstance, which
// GETs the instance first and POSTs on the 404).
func TestFargoReregisterAfterRestart(t *testing.T) {
	for _, useJSON := range []bool{true, false} {
		t.Run(fargoMode(useJSON), func(t *testing.T) {
			ts := startTestServer(t, testOptions{})
			addr := ts.Addr
			base := ts.URL + "/eureka/v2"
			conn := fargoConn(base, useJSON)
			ins := newFargoOrders("orders-7")
			if err := conn.RegisterInstance(ins); err != nil {
				t.Fatalf("fargo RegisterInstance: %v", err)
			}
			clNative(t, ts, "ORDERS", "orders-7")
			if err := conn.HeartBeatInstance(ins); err != nil {
				t.Fatalf("fargo heartbeat before the restart: %v", err)
			}

			ts.Stop()
			ts2 := startTestServer(t, testOptions{Addr: addr})
			if ts2.URL+"/eureka/v2" != base {
				t.Fatalf("restarted server at %s, want the same address as %s", ts2.URL, base)
			}
			clNativeGone(t, ts2, "ORDERS", "orders-7")

			// The application's heartbeat loop: a transport error (a kept-alive
			// connection to the stopped server) is retried, a 404 means
			// re-register.
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := conn.HeartBeatInstance(ins)
				if err == nil {
					t.Fatalf("heartbeat to the restarted (empty) server succeeded, want a 404")
				}
				if fargoCode(err) == http.StatusNotFound {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("heartbeat to the restarted server: %v, want a 404", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			var err error
			if useJSON {
				err = conn.ReregisterInstance(ins)
			} else {
				err = conn.RegisterInstance(ins)
			}
			if err != nil {
				t.Fatalf("fargo re-registration after the 404: %v", err)
			}
			nat := clNative(t, ts2, "ORDERS", "orders-7")
			if nat.Address != "10.0.0.5" || nat.Source != "eureka" || nat.EffectiveStatus() != registry.StatusUp {
				t.Errorf("re-registered native instance: address %q source %q status %q, want 10.0.0.5 eureka UP", nat.Address, nat.Source, nat.EffectiveStatus())
			}
			if p, ok := clPort(nat, "http"); !ok || p.Port != 8080 {
				t.Errorf("re-registered native ports %+v, want http 8080", nat.Ports)
			}
			if useJSON {
				// fargo re-sends the metadata it read back from the server, so
				// what the server wrote must read back as the same metadata.
				// (In XML mode fargo drops read-back metadata when re-sending.)
				m := clUserMeta(nat)
				if m["team"] != "core" {
					t.Errorf("re-registered native metadata %v, want team=core", nat.Metadata)
				}
				for k := range m {
					if strings.HasPrefix(k, "@") {
						t.Errorf("re-registered native metadata has key %q: the server's own JSON annotation came back as user metadata (%v)", k, m)
					}
				}
			}
			if err := conn.HeartBeatInstance(ins); err != nil {
				t.Fatalf("heartbeat after re-registration: %v", err)
			}
			fargoAgreesWithNative(t, conn, ts2)
			if err := conn.DeregisterInstance(ins); err != nil {
				t.Fatalf("fargo DeregisterInstance: %v", err)
			}
			clNativeGone(t, ts2, "ORDERS", "orders-7")
		})
	}
}

// TestFargoHeartbeatAfterPersistentRestart: with a persistent registry the
// instance survives a restart, so fargo's next heartbeat is simply a 200 and
// nothing needs re-registering.
func TestFargoHeartbeatAfterPersistentRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, testOptions{DataDir: dir})
	addr := ts.Addr
	conn := fargoConn(ts.URL+"/eureka", true)
	ins := newFargoOrders("orders-9")
	if err := conn.RegisterInstance(ins); err != nil {
		t.Fatalf("fargo RegisterInstance: %v", err)
	}
	before := clNative(t, ts, "ORDERS", "orders-9")
	ts.Stop()

	ts2 := startTestServer(t, testOptions{Addr: addr, DataDir: dir})
	after := clNative(t, ts2, "ORDERS", "orders-9")
	if after.Address != before.Address || after.TTL != before.TTL || after.Source != "eureka" || clUserMeta(after)["team"] != "core" {
		t.Errorf("restored native instance %+v differs from the registered %+v", *after, *before)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := conn.HeartBeatInstance(ins)
		if err == nil {
			break
		}
		if code := fargoCode(err); code != 0 {
			t.Fatalf("heartbeat after a persistent restart answered %d, want 200 (the instance was restored)", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat after a persistent restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := conn.GetInstance("ORDERS", "orders-9"); err != nil {
		t.Errorf("fargo GetInstance after a persistent restart: %v", err)
	} else if got.Port != 8080 || got.Status != fargo.UP {
		t.Errorf("fargo GetInstance after a persistent restart: port %d status %q, want 8080 UP", got.Port, got.Status)
	}
	fargoAgreesWithNative(t, conn, ts2)
}
