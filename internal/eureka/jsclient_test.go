package eureka

// Cairn's Eureka API driven by the real eureka-js-client 4.5.0 under node.
// testdata/jsclient/scenario.js runs the client and talks JSON lines with
// this file: it streams the client's events (registered, heartbeat, every
// full and delta fetch with its error, every request, the client's log) and
// answers commands (start, instances, vip, stop). node_modules there is
// installed by scripts/test.sh (npm ci from the committed package-lock.json).
// CAIRN_EUREKA_JS_DUMP=1 logs the script's output even when the test passes.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/registry"
)

const jsClientDir = "testdata/jsclient"

type jsPort struct {
	Num     json.RawMessage `json:"$"`
	Enabled json.RawMessage `json:"@enabled"`
}

// number reads "$" as Eureka writes it, a JSON number or a numeric string.
func (p *jsPort) number() int {
	if p == nil {
		return -1
	}
	s := strings.Trim(string(p.Num), `"`)
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

type jsInstance struct {
	InstanceID string         `json:"instanceId"`
	HostName   string         `json:"hostName"`
	App        string         `json:"app"`
	IPAddr     string         `json:"ipAddr"`
	Status     string         `json:"status"`
	VIPAddress string         `json:"vipAddress"`
	Port       *jsPort        `json:"port"`
	SecurePort *jsPort        `json:"securePort"`
	Metadata   map[string]any `json:"metadata"`
	ActionType string         `json:"actionType"`
}

type jsMsg struct {
	Event     string       `json:"event"`
	Reply     string       `json:"reply"`
	ID        int          `json:"id"`
	Kind      string       `json:"kind"`
	Err       *string      `json:"err"`
	Level     string       `json:"level"`
	Msg       string       `json:"msg"`
	Method    string       `json:"method"`
	URL       string       `json:"url"`
	App       string       `json:"app"`
	Instances []jsInstance `json:"instances"`
	raw       string
}

// jsClient is one running scenario.js.
type jsClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	mu     sync.Mutex
	msgs   []jsMsg
	more   chan struct{} // closed and replaced on each new message
	exited chan struct{}
	nextID int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type jsConfig struct {
	ServicePath string         // e.g. /eureka/v2/apps/
	Instance    map[string]any // the client's instance config
	Delta       bool           // shouldUseDelta
	HeartbeatMS int
	FetchMS     int
}

// jsRequire fails (never skips) when node or the installed client is missing.
func jsRequire(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: run scripts/test.sh, which installs nodejs/npm and the pinned eureka-js-client (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(jsClientDir, "node_modules", "eureka-js-client", "package.json")); err != nil {
		t.Fatalf("eureka-js-client is not installed in internal/eureka/%s/node_modules: run scripts/test.sh "+
			"(it runs npm ci --no-audit --no-fund there) (%v)", jsClientDir, err)
	}
	return node
}

func startJSClient(t *testing.T, ts *testServer, cfg jsConfig) *jsClient {
	t.Helper()
	node := jsRequire(t)
	host, port, err := net.SplitHostPort(ts.Addr)
	if err != nil {
		t.Fatalf("test server Addr %q: %v", ts.Addr, err)
	}
	inst, _ := json.Marshal(cfg.Instance)
	if cfg.HeartbeatMS == 0 {
		cfg.HeartbeatMS = 200
	}
	if cfg.FetchMS == 0 {
		cfg.FetchMS = 250
	}
	delta := "0"
	if cfg.Delta {
		delta = "1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, node, "scenario.js")
	cmd.Dir = jsClientDir
	cmd.Env = append(os.Environ(),
		"EUREKA_HOST="+host,
		"EUREKA_PORT="+port,
		"EUREKA_SERVICE_PATH="+cfg.ServicePath,
		"EUREKA_INSTANCE="+string(inst),
		"EUREKA_DELTA="+delta,
		"EUREKA_HEARTBEAT_MS="+strconv.Itoa(cfg.HeartbeatMS),
		"EUREKA_FETCH_MS="+strconv.Itoa(cfg.FetchMS),
		"NODE_ENV=test",
	)
	c := &jsClient{t: t, cmd: cmd, stderr: &lockedBuffer{}, more: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting node scenario.js: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			var m jsMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				m = jsMsg{Event: "unparsed"}
			}
			m.raw = line
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			close(c.more)
			c.more = make(chan struct{})
			c.mu.Unlock()
		}
		cmd.Wait()
		cancel()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() || os.Getenv("CAIRN_EUREKA_JS_DUMP") != "" {
			c.dump()
		}
	})
	c.waitFor(10*time.Second, "the scenario script to start", func(m jsMsg) bool { return m.Event == "ready" })
	return c
}

// dump logs what the script said, for a failing test.
func (c *jsClient) dump() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	skipped := 0
	for _, m := range c.msgs {
		if m.Event == "log" && m.Level == "debug" {
			skipped++
			continue
		}
		b.WriteString(m.raw)
		b.WriteByte('\n')
	}
	c.t.Logf("eureka-js-client scenario output (%d debug lines left out):\n%s", skipped, b.String())
	if s := c.stderr.String(); s != "" {
		c.t.Logf("scenario stderr:\n%s", s)
	}
}

// snapshot returns the messages so far.
func (c *jsClient) snapshot() ([]jsMsg, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs), c.more
}

// count counts the messages matching pred.
func (c *jsClient) count(pred func(jsMsg) bool) int {
	msgs, _ := c.snapshot()
	n := 0
	for _, m := range msgs {
		if pred(m) {
			n++
		}
	}
	return n
}

// waitN waits until n messages match pred and returns the n-th.
func (c *jsClient) waitN(d time.Duration, n int, what string, pred func(jsMsg) bool) jsMsg {
	c.t.Helper()
	timeout := time.After(d)
	for {
		msgs, more := c.snapshot()
		seen := 0
		for _, m := range msgs {
			if pred(m) {
				seen++
				if seen == n {
					return m
				}
			}
		}
		select {
		case <-more:
		case <-c.exited:
			// drain what was written before exiting, then give up
			if msgs2, _ := c.snapshot(); len(msgs2) == len(msgs) {
				c.t.Fatalf("eureka-js-client: waiting for %s: the scenario script exited (%v)", what, c.cmd.ProcessState)
			}
		case <-timeout:
			c.t.Fatalf("eureka-js-client: %s: not within %v (seen %d of %d)", what, d, seen, n)
		}
	}
}

func (c *jsClient) waitFor(d time.Duration, what string, pred func(jsMsg) bool) jsMsg {
	c.t.Helper()
	return c.waitN(d, 1, what, pred)
}

// call sends a command and waits for its reply.
func (c *jsClient) call(d time.Duration, cmd map[string]any) jsMsg {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("writing to the scenario script: %v", err)
	}
	return c.waitFor(d, fmt.Sprintf("reply to %s", b), func(m jsMsg) bool { return m.Reply != "" && m.ID == id })
}

// instances is the client's getInstancesByAppId(app).
func (c *jsClient) instances(app string) []jsInstance {
	c.t.Helper()
	r := c.call(5*time.Second, map[string]any{"cmd": "instances", "app": app})
	if r.Err != nil {
		c.t.Fatalf("getInstancesByAppId(%q): %s", app, *r.Err)
	}
	return r.Instances
}

func (c *jsClient) vip(vip string) []jsInstance {
	c.t.Helper()
	r := c.call(5*time.Second, map[string]any{"cmd": "vip", "vip": vip})
	if r.Err != nil {
		c.t.Fatalf("getInstancesByVipAddress(%q): %s", vip, *r.Err)
	}
	return r.Instances
}

// waitInstances polls getInstancesByAppId(app) until ok accepts it.
func (c *jsClient) waitInstances(d time.Duration, app, what string, ok func([]jsInstance) bool) []jsInstance {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := c.instances(app)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("eureka-js-client getInstancesByAppId(%q): %s: not within %v; last answer %s", app, what, d, jsIDs(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchErrors fails the test if any full or delta fetch reported an error:
// the client only logs those and keeps its stale cache.
func (c *jsClient) fetchErrors() {
	c.t.Helper()
	msgs, _ := c.snapshot()
	for _, m := range msgs {
		if m.Event == "fetch" && m.Err != nil {
			c.t.Fatalf("eureka-js-client %s fetch failed: %s", m.Kind, *m.Err)
		}
		if m.Event == "uncaught" {
			c.t.Fatalf("eureka-js-client scenario: uncaught exception: %s", m.raw)
		}
	}
}

func jsIDs(list []jsInstance) string {
	ids := []string{}
	for _, in := range list {
		ids = append(ids, fmt.Sprintf("%s/%s(%s)", in.App, in.InstanceID, in.Status))
	}
	sort.Strings(ids)
	return "[" + strings.Join(ids, " ") + "]"
}

func jsFind(list []jsInstance, id string) *jsInstance {
	for i := range list {
		if list[i].InstanceID == id {
			return &list[i]
		}
	}
	return nil
}

func isEvent(name string) func(jsMsg) bool {
	return func(m jsMsg) bool { return m.Event == name }
}

func isFetch(kind string) func(jsMsg) bool {
	return func(m jsMsg) bool { return m.Event == "fetch" && m.Kind == kind }
}

// jsAgreesWithNative checks the client's cached view of app against the
// native registry: the client keeps only UP instances.
func jsAgreesWithNative(t *testing.T, c *jsClient, ts *testServer, app string) {
	t.Helper()
	natives, _ := ts.Reg.Instances(registry.Filter{Namespace: "default", Service: strings.ToLower(app), Status: registry.StatusUp})
	want := []string{}
	for _, in := range natives {
		want = append(want, in.ID)
	}
	c.waitInstances(3*time.Second, app, fmt.Sprintf("agree with the native UP instances %v", want), func(got []jsInstance) bool {
		ids := []string{}
		for _, in := range got {
			ids = append(ids, in.InstanceID)
		}
		sort.Strings(ids)
		return slices.Equal(ids, want)
	})
}

func jsInstanceConfig(app, id, host string, port int) map[string]any {
	in := map[string]any{
		"app":      app,
		"hostName": host,
		"ipAddr":   "127.0.0.1",
		"port":     map[string]any{"$": port, "@enabled": "true"},
		// the README's form of these fields
		"vipAddress":     strings.ToLower(app),
		"statusPageUrl":  fmt.Sprintf("http://127.0.0.1:%d/info", port),
		"healthCheckUrl": fmt.Sprintf("http://127.0.0.1:%d/health", port),
		"dataCenterInfo": map[string]any{
			"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
			"name":   "MyOwn",
		},
		"metadata": map[string]any{"team": "js"},
	}
	if id != "" {
		in["instanceId"] = id
	}
	return in
}

// TestJSClientDelta: the client's default /eureka/v2/apps/ path, delta
// fetches. Register, heartbeats, a full fetch that sees itself and a native
// service, delta fetches that see a native instance come and go, then stop()
// deregisters.
func TestJSClientDelta(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	clRegisterNative(t, ts, "inventory", "inv-1", "10.0.0.7", 7000)

	c := startJSClient(t, ts, jsConfig{
		ServicePath: "/eureka/v2/apps/",
		Instance:    jsInstanceConfig("jsapp", "js-1", "js-host-1", 8081),
		Delta:       true,
	})
	r := c.call(10*time.Second, map[string]any{"cmd": "start"})
	if r.Err != nil {
		t.Fatalf("eureka-js-client start() (POST /eureka/v2/apps/jsapp then GET /eureka/v2/apps/): %s", *r.Err)
	}
	if c.count(isEvent("registered")) == 0 {
		t.Fatalf("eureka-js-client started without a 'registered' event")
	}

	// Registration in the native view.
	nat := clNative(t, ts, "JSAPP", "js-1")
	if nat.Address != "127.0.0.1" || nat.Source != "eureka" || nat.EffectiveStatus() != registry.StatusUp {
		t.Errorf("native jsapp/js-1: address %q source %q status %q, want 127.0.0.1 eureka UP", nat.Address, nat.Source, nat.EffectiveStatus())
	}
	if p, ok := clPort(nat, "http"); !ok || p.Port != 8081 || p.Protocol != "http" {
		t.Errorf("native jsapp/js-1 ports %+v, want {http 8081 http}", nat.Ports)
	}
	if _, ok := clPort(nat, "https"); ok {
		t.Errorf("native jsapp/js-1 ports %+v: an https port although no securePort was sent", nat.Ports)
	}
	if nat.TTL.D() != 90*time.Second {
		t.Errorf("native jsapp/js-1 TTL %v, want Eureka's default lease 90s (the client sends no leaseInfo)", nat.TTL.D())
	}
	if m := clUserMeta(nat); m["team"] != "js" {
		t.Errorf("native jsapp/js-1 metadata %v, want team=js", nat.Metadata)
	}

	// Heartbeats renew the lease.
	renewed0 := nat.LastRenewedAt
	renewals0 := ts.Reg.Stats().Renewals
	n := c.count(isEvent("heartbeat"))
	c.waitN(5*time.Second, n+2, "two heartbeats (PUT /eureka/v2/apps/jsapp/js-1 answered 200)", isEvent("heartbeat"))
	if got := clNative(t, ts, "JSAPP", "js-1").LastRenewedAt; !got.After(renewed0) {
		t.Errorf("native LastRenewedAt %v did not advance past %v after heartbeats", got, renewed0)
	}
	if got := ts.Reg.Stats().Renewals; got < renewals0+2 {
		t.Errorf("native Stats().Renewals %d, want at least %d after two heartbeats", got, renewals0+2)
	}

	// The full fetch at start: itself and the native inventory service.
	c.waitFor(5*time.Second, "a full registry fetch", isFetch("full"))
	c.fetchErrors()
	own := c.instances("JSAPP")
	me := jsFind(own, "js-1")
	if me == nil {
		t.Fatalf("getInstancesByAppId('JSAPP') = %s, want js-1", jsIDs(own))
	}
	if me.App != "JSAPP" || me.HostName != "js-host-1" || me.IPAddr != "127.0.0.1" || me.Port.number() != 8081 || me.Status != "UP" || me.VIPAddress != "jsapp" {
		t.Errorf("js client sees itself as app %q host %q ip %q port %d status %q vip %q; want JSAPP js-host-1 127.0.0.1 8081 UP jsapp",
			me.App, me.HostName, me.IPAddr, me.Port.number(), me.Status, me.VIPAddress)
	}
	if v, _ := me.Metadata["team"].(string); v != "js" {
		t.Errorf("js client sees its metadata as %v, want team=js", me.Metadata)
	}
	for k := range me.Metadata {
		if strings.HasPrefix(k, "eureka.") {
			t.Errorf("js client sees Cairn's internal metadata key %q", k)
		}
	}
	inv := c.instances("INVENTORY")
	if in := jsFind(inv, "inv-1"); in == nil || in.IPAddr != "10.0.0.7" || in.Port.number() != 7000 || in.VIPAddress != "inventory" {
		t.Errorf("getInstancesByAppId('INVENTORY') = %s (%+v), want native inv-1 at 10.0.0.7:7000 vip inventory", jsIDs(inv), in)
	}
	if v := c.vip("jsapp"); jsFind(v, "js-1") == nil {
		t.Errorf("getInstancesByVipAddress('jsapp') = %s, want js-1", jsIDs(v))
	}
	jsAgreesWithNative(t, c, ts, "JSAPP")
	jsAgreesWithNative(t, c, ts, "INVENTORY")

	// A native instance registered now reaches the client through a delta.
	fulls := c.count(isFetch("full"))
	deltas := c.count(isFetch("delta"))
	clRegisterNative(t, ts, "payments", "p1", "10.0.0.9", 9000)
	pay := c.waitInstances(5*time.Second, "PAYMENTS", "see native payments/p1", func(l []jsInstance) bool { return jsFind(l, "p1") != nil })
	c.fetchErrors()
	if p := jsFind(pay, "p1"); p.App != "PAYMENTS" || p.VIPAddress != "payments" || p.IPAddr != "10.0.0.9" || p.Port.number() != 9000 || p.Status != "UP" {
		t.Errorf("js client sees native p1 as app %q vip %q ip %q port %d status %q; want PAYMENTS payments 10.0.0.9 9000 UP",
			p.App, p.VIPAddress, p.IPAddr, p.Port.number(), p.Status)
	}
	if c.count(isFetch("full")) != fulls || c.count(isFetch("delta")) <= deltas {
		t.Errorf("p1 was not learnt by a delta fetch: full fetches %d→%d, delta fetches %d→%d",
			fulls, c.count(isFetch("full")), deltas, c.count(isFetch("delta")))
	}
	if v := c.vip("payments"); jsFind(v, "p1") == nil {
		t.Errorf("getInstancesByVipAddress('payments') = %s, want p1", jsIDs(v))
	}
	jsAgreesWithNative(t, c, ts, "PAYMENTS")

	// A status change reaches it as a delta MODIFIED (the client keeps a
	// modified instance whatever its status, so it shows OUT_OF_SERVICE).
	if _, _, err := ts.Reg.SetOverride(context.Background(), clKey("PAYMENTS", "p1"), registry.StatusOutOfService); err != nil {
		t.Fatalf("native SetOverride(p1, OUT_OF_SERVICE): %v", err)
	}
	c.waitInstances(5*time.Second, "PAYMENTS", "see p1 OUT_OF_SERVICE after a native override", func(l []jsInstance) bool {
		p := jsFind(l, "p1")
		return len(l) == 1 && p != nil && p.Status == "OUT_OF_SERVICE"
	})
	if _, _, err := ts.Reg.ClearOverride(context.Background(), clKey("PAYMENTS", "p1")); err != nil {
		t.Fatalf("native ClearOverride(p1): %v", err)
	}
	c.waitInstances(5*time.Second, "PAYMENTS", "see p1 UP again after the override was cleared", func(l []jsInstance) bool {
		p := jsFind(l, "p1")
		return len(l) == 1 && p != nil && p.Status == "UP"
	})
	c.fetchErrors()

	// ... and its removal through a delta DELETED.
	if _, err := ts.Reg.Deregister(context.Background(), clKey("PAYMENTS", "p1")); err != nil {
		t.Fatalf("native deregister payments/p1: %v", err)
	}
	c.waitInstances(5*time.Second, "PAYMENTS", "drop native p1 after it was deregistered", func(l []jsInstance) bool { return len(l) == 0 })
	c.fetchErrors()
	jsAgreesWithNative(t, c, ts, "JSAPP")
	if c.count(isFetch("full")) != fulls {
		t.Errorf("the client fell back to a full fetch; want deltas only")
	}

	// No request went anywhere but the v2 paths.
	msgs, _ := c.snapshot()
	for _, m := range msgs {
		if m.Event == "request" && !strings.Contains(m.URL, "/eureka/v2/apps/") {
			t.Errorf("request to %s %s, want /eureka/v2/apps/...", m.Method, m.URL)
		}
	}

	// stop() deregisters.
	r = c.call(5*time.Second, map[string]any{"cmd": "stop"})
	if r.Err != nil {
		t.Fatalf("eureka-js-client stop() (DELETE /eureka/v2/apps/jsapp/js-1): %s", *r.Err)
	}
	clNativeGone(t, ts, "JSAPP", "js-1")
	time.Sleep(400 * time.Millisecond) // two heartbeat intervals: nothing re-registers
	clNativeGone(t, ts, "JSAPP", "js-1")
	c.fetchErrors()
}

// TestJSClientLegacyPath: Spring's /eureka/apps/ path, full fetches only, no
// instanceId (Eureka then uses the hostName), and the client's own
// re-registration after a heartbeat gets a 404.
func TestJSClientLegacyPath(t *testing.T) {
	ts := startTestServer(t, testOptions{})
	clRegisterNative(t, ts, "payments", "p1", "10.0.0.9", 9000)

	c := startJSClient(t, ts, jsConfig{
		ServicePath: "/eureka/apps/",
		Instance:    jsInstanceConfig("LEGACY", "", "legacy-host", 8082),
		Delta:       false,
	})
	r := c.call(10*time.Second, map[string]any{"cmd": "start"})
	if r.Err != nil {
		t.Fatalf("eureka-js-client start() on /eureka/apps/ (POST /eureka/apps/LEGACY): %s", *r.Err)
	}
	nat := clNative(t, ts, "LEGACY", "legacy-host")
	if p, ok := clPort(nat, "http"); !ok || p.Port != 8082 {
		t.Errorf("native legacy/legacy-host ports %+v, want http 8082", nat.Ports)
	}

	c.waitN(5*time.Second, 2, "two full fetches", isFetch("full"))
	c.fetchErrors()
	own := c.instances("LEGACY")
	if me := jsFind(own, "legacy-host"); me == nil || me.HostName != "legacy-host" || me.Port.number() != 8082 {
		t.Fatalf("getInstancesByAppId('LEGACY') = %s, want legacy-host with port 8082", jsIDs(own))
	}
	if pay := c.instances("PAYMENTS"); jsFind(pay, "p1") == nil {
		t.Errorf("getInstancesByAppId('PAYMENTS') = %s, want native p1", jsIDs(pay))
	}
	jsAgreesWithNative(t, c, ts, "LEGACY")
	jsAgreesWithNative(t, c, ts, "PAYMENTS")

	// The instance disappears server-side; the next heartbeat gets a 404 and
	// the client registers again by itself.
	regs := c.count(isEvent("registered"))
	if _, err := ts.Reg.Deregister(context.Background(), clKey("LEGACY", "legacy-host")); err != nil {
		t.Fatalf("native deregister legacy/legacy-host: %v", err)
	}
	c.waitN(5*time.Second, regs+1, "re-registration after a heartbeat's 404", isEvent("registered"))
	clEventually(t, 3*time.Second, "legacy-host back in the native view", func() string {
		if _, _, err := ts.Reg.Instance(clKey("LEGACY", "legacy-host")); err != nil {
			return err.Error()
		}
		return ""
	})
	c.waitN(5*time.Second, c.count(isEvent("heartbeat"))+1, "a heartbeat after re-registering", isEvent("heartbeat"))
	jsAgreesWithNative(t, c, ts, "LEGACY")

	msgs, _ := c.snapshot()
	for _, m := range msgs {
		if m.Event == "request" && (!strings.Contains(m.URL, "/eureka/apps") || strings.Contains(m.URL, "/eureka/v2/")) {
			t.Errorf("request to %s %s, want /eureka/apps/...", m.Method, m.URL)
		}
	}

	r = c.call(5*time.Second, map[string]any{"cmd": "stop"})
	if r.Err != nil {
		t.Fatalf("eureka-js-client stop() (DELETE /eureka/apps/LEGACY/legacy-host): %s", *r.Err)
	}
	clNativeGone(t, ts, "LEGACY", "legacy-host")
	c.fetchErrors()
}
