package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnhq/cairn/internal/api"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/pkg/client"
	"gopkg.in/yaml.v3"
)

// testServer is a real API server in process, counting the requests it gets.
type testServer struct {
	URL      string
	requests atomic.Int64
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	reg, err := registry.New(registry.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{}
	h := api.New(api.Options{Registry: reg})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	ts.URL = srv.URL
	t.Cleanup(func() { srv.Close(); reg.Close() })
	return ts
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cairn runs the binary's run function against the server.
func (ts *testServer) cairn(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, withServer(args, ts.URL), &out, &errOut)
	return code, out.String(), errOut.String()
}

// withServer puts --server after the verb.
func withServer(args []string, url string) []string {
	if len(args) == 0 {
		return args
	}
	return append([]string{args[0], "--server", url}, args[1:]...)
}

// mustCairn runs a command that must succeed.
func (ts *testServer) mustCairn(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := ts.cairn(t, args...)
	if code != 0 {
		t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestCLIRegisterAndRead(t *testing.T) {
	ts := newTestServer(t)
	out := ts.mustCairn(t, "register", "--service", "web", "--id", "web-1", "--address", "10.0.0.5",
		"--port", "http=8080/http", "--port", "grpc=9090/grpc", "--meta", "version=1.2", "--tag", "canary",
		"--zone", "eu-1a", "--weight", "3", "--ttl", "30s", "--check", "http:/healthz", "--check-interval", "5s")
	for _, want := range []string{"ID              web-1", "PORTS           http=8080/http,grpc=9090/grpc",
		"CHECK           http port=http path=/healthz every 5s timeout 2s", "TTL             30s", "RENEW-INTERVAL  10s"} {
		if !strings.Contains(out, want) {
			t.Errorf("register output lacks %q:\n%s", want, out)
		}
	}
	ts.mustCairn(t, "register", "-n", "prod", "--service", "api", "--address", "10.0.0.6", "--port", "8080", "--ttl", "0")

	t.Run("instances table", func(t *testing.T) {
		ls := lines(ts.mustCairn(t, "instances"))
		if len(ls) != 3 || strings.Join(strings.Fields(ls[0]), " ") != "NAMESPACE SERVICE ID ADDRESS PORTS STATUS HEALTH ZONE WEIGHT" {
			t.Fatalf("table:\n%s", strings.Join(ls, "\n"))
		}
		if got := strings.Fields(ls[2]); strings.Join(got, " ") != "prod api "+got[2]+" 10.0.0.6 default=8080/tcp UP none - 1" ||
			!strings.HasPrefix(got[2], "api-") {
			t.Fatalf("row %q", ls[2])
		}
	})
	t.Run("instances json", func(t *testing.T) {
		var list struct {
			Revision  int64             `json:"revision"`
			Instances []client.Instance `json:"instances"`
		}
		if err := json.Unmarshal([]byte(ts.mustCairn(t, "instances", "web", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if list.Revision == 0 || len(list.Instances) != 1 || list.Instances[0].Weight != 3 || list.Instances[0].Check.Interval != 5*time.Second {
			t.Fatalf("%+v", list)
		}
	})
	t.Run("instances yaml", func(t *testing.T) {
		var list struct {
			Revision  int64 `yaml:"revision"`
			Instances []struct {
				ID       string            `yaml:"id"`
				TTL      string            `yaml:"ttl"`
				Metadata map[string]string `yaml:"metadata"`
			} `yaml:"instances"`
		}
		out := ts.mustCairn(t, "instances", "--output", "yaml", "--namespace", "prod")
		if err := yaml.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(list.Instances) != 1 || list.Instances[0].TTL != "0s" {
			t.Fatalf("%+v\n%s", list, out)
		}
		out = ts.mustCairn(t, "instances", "web", "-o", "yaml")
		if err := yaml.Unmarshal([]byte(out), &list); err != nil || list.Instances[0].Metadata["version"] != "1.2" {
			t.Fatalf("metadata %v (%v):\n%s", list.Instances[0].Metadata, err, out)
		}
	})
	t.Run("instances filters", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			rows int
		}{
			{[]string{"--healthy"}, 1}, // web-1's check has not run yet
			{[]string{"--meta", "version=1.2"}, 1},
			{[]string{"--meta", "version=2"}, 0},
			{[]string{"--tag", "canary"}, 1},
			{[]string{"--zone", "eu-1a"}, 1},
			{[]string{"--status", "up", "--source", "api"}, 2},
			{[]string{"api", "-n", "prod"}, 1},
		} {
			args := append([]string{"instances"}, tt.args...)
			if got := len(lines(ts.mustCairn(t, args...))) - 1; got != tt.rows {
				t.Errorf("%v: %d rows, want %d", tt.args, got, tt.rows)
			}
		}
	})
	t.Run("services", func(t *testing.T) {
		ls := lines(ts.mustCairn(t, "services"))
		if len(ls) != 3 || strings.Join(strings.Fields(ls[1]), " ") != "default web 1 0 - -" {
			t.Fatalf("services:\n%s", strings.Join(ls, "\n"))
		}
		var list struct{ Services []client.ServiceInfo }
		if err := json.Unmarshal([]byte(ts.mustCairn(t, "services", "-n", "prod", "-o", "json")), &list); err != nil ||
			len(list.Services) != 1 || list.Services[0].Name != "api" {
			t.Fatalf("%+v %v", list, err)
		}
	})
	t.Run("get", func(t *testing.T) {
		var in client.Instance
		if err := json.Unmarshal([]byte(ts.mustCairn(t, "get", "web", "web-1", "-o", "json")), &in); err != nil ||
			in.ID != "web-1" || in.Health != client.HealthUnknown {
			t.Fatalf("%+v %v", in, err)
		}
	})
	t.Run("server status", func(t *testing.T) {
		out := ts.mustCairn(t, "status")
		if !strings.Contains(out, "INSTANCES          2 (1 healthy)") || !strings.Contains(out, "SELF-PRESERVATION") {
			t.Fatalf("status:\n%s", out)
		}
		var st client.ServerStatus
		if err := json.Unmarshal([]byte(ts.mustCairn(t, "status", "-o", "json")), &st); err != nil || st.Instances != 2 {
			t.Fatalf("%+v %v", st, err)
		}
	})
}

func TestCLIInstanceVerbs(t *testing.T) {
	ts := newTestServer(t)
	ts.mustCairn(t, "register", "--service", "web", "--id", "web-1", "--address", "10.0.0.5", "--port", "8080")
	get := func() client.Instance {
		var in client.Instance
		if err := json.Unmarshal([]byte(ts.mustCairn(t, "get", "web", "web-1", "-o", "json")), &in); err != nil {
			t.Fatal(err)
		}
		return in
	}
	for _, tt := range []struct {
		name  string
		args  []string
		out   string // the first line of stdout
		check func(in client.Instance) bool
	}{
		{"renew", []string{"renew", "web", "web-1"}, "renewed default/web/web-1", nil},
		{"flags after arguments", []string{"renew", "web", "web-1", "-n", "default"}, "renewed default/web/web-1", nil},
		{"override", []string{"override", "web", "web-1", "OUT_OF_SERVICE"}, "ID              web-1",
			func(in client.Instance) bool { return in.StatusOverride == client.StatusOutOfService && !in.Healthy() }},
		{"override clear", []string{"override", "--clear", "web", "web-1"}, "ID              web-1",
			func(in client.Instance) bool { return in.StatusOverride == "" && in.Healthy() }},
		{"status", []string{"status", "web", "web-1", "down"}, "ID              web-1",
			func(in client.Instance) bool { return in.Status == client.StatusDown }},
		{"deregister", []string{"deregister", "web", "web-1"}, "deregistered default/web/web-1", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := ts.mustCairn(t, tt.args...)
			if ls := lines(out); len(ls) == 0 || ls[0] != tt.out {
				t.Fatalf("stdout:\n%s", out)
			}
			if tt.check != nil && !tt.check(get()) {
				t.Fatalf("instance after %v: %+v", tt.args, get())
			}
		})
	}
	code, _, errOut := ts.cairn(t, "get", "web", "web-1")
	if code != 1 || errOut != "cairn get: not found: instance default/web/web-1\n" {
		t.Fatalf("after deregister: %d %q", code, errOut)
	}
}

func TestCLIErrors(t *testing.T) {
	ts := newTestServer(t)
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		stderr  string // a prefix of the one stderr line
		request bool   // whether the command may reach the server
	}{
		{"unknown instance", []string{"get", "web", "nope"}, 1, "cairn get: not found: instance default/web/nope", true},
		{"renew unknown", []string{"renew", "web", "nope", "-n", "prod"}, 1, "cairn renew: not found: instance prod/web/nope", true},
		{"server validation", []string{"register", "--service", "web", "--address", "10.0.0.5", "--port", "0"}, 1,
			"cairn register: ports[0].port: must be between 1 and 65535", true},
		{"server validation of a name", []string{"register", "--service", "Web", "--address", "10.0.0.5"}, 1,
			"cairn register: service: must be a lowercase DNS label", true},
		{"bad port syntax", []string{"register", "--service", "web", "--address", "x", "--port", "http:80"}, 2,
			`cairn register: invalid value "http:80" for flag -port: want NAME=PORT[/PROTOCOL]`, false},
		{"bad port protocol syntax", []string{"register", "--service", "web", "--address", "x", "--port", "80/"}, 2,
			`cairn register: invalid value "80/" for flag -port`, false},
		{"duplicate port name", []string{"register", "--service", "web", "--address", "x", "--port", "80", "--port", "81"}, 2,
			`cairn register: invalid value "81" for flag -port: port name "default" given twice`, false},
		{"bad meta", []string{"register", "--service", "web", "--address", "x", "--meta", "version"}, 2,
			`cairn register: invalid value "version" for flag -meta: want KEY=VALUE`, false},
		{"bad meta filter", []string{"instances", "--meta", "=x"}, 2, `cairn instances: invalid value "=x" for flag -meta`, false},
		{"unknown output", []string{"instances", "-o", "xml"}, 2, `cairn instances: -o/--output must be table, json or yaml, not "xml"`, false},
		{"unknown flag", []string{"services", "--bogus"}, 2, "cairn services: flag provided but not defined: -bogus", false},
		{"missing service", []string{"register", "--address", "x"}, 2, "cairn register: --service is required", false},
		{"missing address", []string{"register", "--service", "web"}, 2, "cairn register: --address is required", false},
		{"bad ttl", []string{"register", "--service", "web", "--address", "x", "--ttl", "soon"}, 2, `cairn register: invalid value "soon" for flag -ttl`, false},
		{"negative ttl", []string{"register", "--service", "web", "--address", "x", "--ttl", "-5s"}, 2, `cairn register: invalid value "-5s" for flag -ttl`, false},
		{"bad status", []string{"register", "--service", "web", "--address", "x", "--status", "fine"}, 2, "cairn register: --status: status must be one of", false},
		{"bad check", []string{"register", "--service", "web", "--address", "x", "--port", "80", "--check", "icmp"}, 2, "cairn register: --check must be", false},
		{"check without port", []string{"register", "--service", "web", "--address", "x", "--check", "tcp"}, 2, "cairn register: --check needs a --port", false},
		{"check interval without check", []string{"register", "--service", "web", "--address", "x", "--check-interval", "1s"}, 2,
			"cairn register: --check-interval and --check-timeout need --check", false},
		{"too few arguments", []string{"renew", "web"}, 2, "cairn renew: wrong number of arguments (1)", false},
		{"too many arguments", []string{"get", "web", "a", "b"}, 2, "cairn get: wrong number of arguments (3)", false},
		{"override without status", []string{"override", "web", "a"}, 2, "cairn override: STATUS is required", false},
		{"override clear with status", []string{"override", "--clear", "web", "a", "UP"}, 2, "cairn override: --clear takes SERVICE ID", false},
		{"override bad status", []string{"override", "web", "a", "sideways"}, 2, "cairn override: status must be one of", false},
		{"status with two arguments", []string{"status", "web", "a"}, 2, "cairn status: want no arguments or SERVICE ID STATUS", false},
		{"watch negative from", []string{"watch", "--from", "-1"}, 2, "cairn watch: --from must not be negative", false},
		{"watch bad from", []string{"watch", "--from", "x"}, 2, `cairn watch: invalid value "x" for flag -from`, false},
		{"bad server address", []string{"services", "--server", "ftp://x"}, 2, "cairn services: --server: invalid server address", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.requests.Load()
			code, out, errOut := ts.cairn(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if ls := lines(errOut); len(ls) != 1 || !strings.HasPrefix(ls[0], tt.stderr) {
				t.Fatalf("stderr is not one line starting with %q:\n%s", tt.stderr, errOut)
			}
			if out != "" {
				t.Fatalf("stdout: %s", out)
			}
			if !tt.request && ts.requests.Load() != before {
				t.Fatal("a request was sent")
			}
		})
	}
}

func TestCLIHelpAndUnreachable(t *testing.T) {
	for _, verb := range []string{"register", "renew", "deregister", "status", "override", "services", "instances", "get", "watch"} {
		t.Run(verb+" -h", func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), []string{verb, "-h"}, &out, &errOut); code != 0 {
				t.Fatalf("exit %d", code)
			}
			s := errOut.String()
			if !strings.HasPrefix(s, "Usage: cairn "+verb+" ") || strings.Count(s, "-server") != 1 || !strings.Contains(s, "-output") {
				t.Fatalf("usage:\n%s", s)
			}
		})
	}
	t.Run("unreachable server", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"services", "--server", url}, &out, &errOut)
		if code != 1 || !strings.HasPrefix(errOut.String(), "cairn services: cannot reach "+url+": ") || len(lines(errOut.String())) != 1 {
			t.Fatalf("exit %d: %q", code, errOut.String())
		}
	})
	t.Run("CAIRN_ADDR", func(t *testing.T) {
		ts := newTestServer(t)
		t.Setenv("CAIRN_ADDR", ts.URL)
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"services"}, &out, &errOut); code != 0 || ts.requests.Load() != 1 {
			t.Fatalf("exit %d, %d requests: %s", code, ts.requests.Load(), errOut.String())
		}
	})
}

// watch runs `cairn watch` until its context is cancelled.
type watchRun struct {
	out, errOut syncBuffer
	cancel      context.CancelFunc
	code        chan int
}

func (ts *testServer) watch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	w := &watchRun{cancel: cancel, code: make(chan int, 1)}
	go func() { w.code <- run(ctx, withServer(append([]string{"watch"}, args...), ts.URL), &w.out, &w.errOut) }()
	t.Cleanup(cancel)
	return w
}

func (w *watchRun) waitFor(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.out.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("watch output lacks %q:\n%s\nstderr: %s", what, w.out.String(), w.errOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *watchRun) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case code := <-w.code:
		if code != 0 {
			t.Fatalf("watch exit %d: %s", code, w.errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop when its context was cancelled")
	}
}

func TestCLIWatch(t *testing.T) {
	ts := newTestServer(t)
	ts.mustCairn(t, "register", "--service", "web", "--id", "web-0", "--address", "10.0.0.4", "--port", "8080")
	t.Run("table", func(t *testing.T) {
		w := ts.watch(t, "web")
		w.waitFor(t, "SNAPSHOT  instance  default/web/web-0")
		ts.mustCairn(t, "register", "--service", "web", "--id", "web-1", "--address", "10.0.0.5", "--port", "http=8080/http")
		w.waitFor(t, "default/web/web-1")
		w.stop(t)
		ls := lines(w.out.String())
		if len(ls) != 4 || !strings.HasPrefix(ls[0], "REVISION  TYPE") {
			t.Fatalf("output:\n%s", w.out.String())
		}
		if f := strings.Fields(ls[3]); strings.Join(f[1:], " ") != "ADDED instance default/web/web-1 UP none 10.0.0.5:http=8080" {
			t.Fatalf("change line %q", ls[3])
		}
	})
	t.Run("json lines from a revision", func(t *testing.T) {
		w := ts.watch(t, "-o", "json", "--from", "1")
		w.waitFor(t, `"id":"web-1"`)
		ts.mustCairn(t, "deregister", "web", "web-1")
		w.waitFor(t, `"type":"DELETED"`)
		w.stop(t)
		var types []string
		for _, l := range lines(w.out.String()) {
			var ev client.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			types = append(types, string(ev.Type))
		}
		if strings.Join(types, " ") != "ADDED DELETED" {
			t.Fatalf("types %v:\n%s", types, w.out.String())
		}
	})
	t.Run("yaml documents", func(t *testing.T) {
		w := ts.watch(t, "-o", "yaml", "-n", "default")
		w.waitFor(t, "type: SNAPSHOT")
		w.stop(t)
		dec := yaml.NewDecoder(strings.NewReader(w.out.String()))
		var doc struct {
			Type      string           `yaml:"type"`
			Instances []map[string]any `yaml:"instances"`
		}
		if err := dec.Decode(&doc); err != nil || doc.Type != "SNAPSHOT" || len(doc.Instances) != 1 {
			t.Fatalf("%+v %v:\n%s", doc, err, w.out.String())
		}
	})
}

// A resumed stream repeats the changes of its last revision; the printer
// shows each once.
func TestWatchPrinterSkipsRepeatedChanges(t *testing.T) {
	var out bytes.Buffer
	p := &watchPrinter{c: &cli{output: "json", stdout: &out}}
	change := func(rev int64, id string) *client.WatchEvent {
		return &client.WatchEvent{Type: client.WatchChange, Revision: rev,
			Change: &client.Event{Revision: rev, Type: client.EventAdded, Kind: client.KindInstance, Instance: &client.Instance{ID: id}}}
	}
	for _, ev := range []*client.WatchEvent{change(4, "a"), change(5, "svc"), change(5, "b")} {
		p.print(ev)
	}
	if from := p.resume(4); from != 4 {
		t.Fatalf("from %d", from)
	}
	for _, ev := range []*client.WatchEvent{change(5, "svc"), change(5, "b"), change(6, "c")} {
		p.print(ev)
	}
	var ids []string
	for _, l := range lines(out.String()) {
		var ev client.Event
		_ = json.Unmarshal([]byte(l), &ev)
		ids = append(ids, ev.Instance.ID)
	}
	if strings.Join(ids, " ") != "a svc b c" {
		t.Fatalf("printed %v", ids)
	}
}

func TestCLIRegisterKeep(t *testing.T) {
	ts := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, withServer([]string{"register", "--service", "web", "--id", "web-1", "--address", "10.0.0.5", "--keep"}, ts.URL), &out, &errOut)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "REVISIONS") {
		if time.Now().After(deadline) {
			t.Fatalf("not registered: %s", errOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ts.mustCairn(t, "get", "web", "web-1")
	cancel() // as Ctrl-C does
	select {
	case c := <-code:
		if c != 0 || !strings.Contains(errOut.String(), "deregistered default/web/web-1") {
			t.Fatalf("exit %d: %s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("register --keep did not stop")
	}
	if code, _, _ := ts.cairn(t, "get", "web", "web-1"); code != 1 {
		t.Fatal("still registered after --keep ended")
	}
}

// YAML output reads back as the same strings, however YAML-like they look.
func TestWriteYAMLKeepsStrings(t *testing.T) {
	meta := map[string]string{"a": "true", "b": "123", "c": "", "d": "null", "e": "- x", "f": "a: b",
		"g": "x\ny\n", "h": "0x1F", "i": "2026-11-23T10:00:00Z", "j": "~", "k": "1e3", "l": "  lead", "m": "#no"}
	var b bytes.Buffer
	if err := writeYAML(&b, client.Instance{ID: "a", Metadata: meta, TTL: client.NoLease}); err != nil {
		t.Fatal(err)
	}
	var back struct {
		TTL      string            `yaml:"ttl"`
		Metadata map[string]string `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if back.TTL != "0s" || len(back.Metadata) != len(meta) {
		t.Fatalf("%+v", back)
	}
	for k, v := range meta {
		if back.Metadata[k] != v {
			t.Errorf("metadata %s: %q, want %q", k, back.Metadata[k], v)
		}
	}
}

// Table cells stay on one line whatever the metadata holds.
func TestTableCellsStayOnOneLine(t *testing.T) {
	var b bytes.Buffer
	tw := newTable(&b)
	instanceDetail(&client.Instance{ID: "a", Metadata: map[string]string{"k": "two\nlines\tand tab"}, HealthOutput: "x\ny"})(tw)
	tw.Flush()
	for _, l := range lines(b.String()) {
		if strings.HasPrefix(l, "lines") || strings.HasPrefix(l, "y)") {
			t.Fatalf("a cell broke the line:\n%s", b.String())
		}
	}
	if !strings.Contains(b.String(), `"k=two\nlines\tand tab"`) {
		t.Fatalf("metadata cell:\n%s", b.String())
	}
}

// Odd arguments never panic and always end in a defined exit code.
func TestCLIOddArguments(t *testing.T) {
	ts := newTestServer(t)
	odd := [][]string{
		{}, {""}, {"--"}, {"-"}, {"--", "-x"}, {"-n"}, {"-n", ""}, {"-o"}, {"-o", ""}, {"--server", ""},
		{"--port", "="}, {"--port", "a="}, {"--port", "/"}, {"--port", "=80/"}, {"--port", "a=80/tcp/x"},
		{"--check", ":"}, {"--check", "grpc:"}, {"--check", "http:nopath"}, {"--meta", "="}, {"--meta", "a=b", "--meta", "a=c"},
		{"--ttl", "1e300"}, {"--ttl", "NaN"}, {"--from", "99999999999999999999"}, {"--weight", "x"},
		{"web", "", "UP"}, {"", ""}, {"web", "id with spaces"}, {"web", "%2F"}, {"x", "y", "z", "w"},
		{"--service", "web", "--address", "10.0.0.1", "--check", "tcp", "--port", "1"},
	}
	for _, c := range cliCommands() {
		for _, args := range odd {
			if c.name == "watch" && (len(args) <= 1 || args[0] == "-n" && args[1] == "") {
				continue // a valid watch streams until cancelled
			}
			t.Run(c.name+" "+strings.Join(args, " "), func(t *testing.T) {
				code, _, errOut := ts.cairn(t, append([]string{c.name}, args...)...)
				if code != 0 && len(lines(errOut)) != 1 {
					t.Fatalf("exit %d with stderr:\n%s", code, errOut)
				}
			})
		}
	}
}

func FuzzFlagParsers(f *testing.F) {
	for _, s := range []string{"http=8080/http", "8080", "a=1/", "=", "http:/healthz", "grpc:svc", "tcp", "k=v", "90s", "1.5", "up"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := parsePort(s); err == nil {
			again, err := parsePort(formatPort(p))
			if err != nil || again != p {
				t.Fatalf("%q: parsed %+v, reparsed %+v (%v)", s, p, again, err)
			}
		}
		if c, err := parseCheck(s); err == nil && c.Type == "" {
			t.Fatalf("%q: check without type", s)
		}
		var kv kvFlag
		if err := kv.Set(s); err == nil && len(kv) != 1 {
			t.Fatalf("%q: %v", s, kv)
		}
		var d durationFlag
		if err := d.Set(s); err == nil && d.d < 0 {
			t.Fatalf("%q: negative %v", s, d.d)
		}
		if st, err := parseStatus(s); err == nil && !st.Valid() {
			t.Fatalf("%q: %v", s, st)
		}
	})
}

// restartable is a real API server on a fixed address that can be replaced.
type restartable struct {
	addr string
	srv  *http.Server
	reg  *registry.Registry
	done chan struct{}
}

func startAt(t *testing.T, addr string) *restartable {
	t.Helper()
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{addr: ln.Addr().String(), srv: &http.Server{Handler: api.New(api.Options{Registry: reg})}, reg: reg, done: make(chan struct{})}
	go func() { defer close(r.done); _ = r.srv.Serve(ln) }()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) stop() {
	_ = r.srv.Close()
	<-r.done
	_ = r.reg.Close()
}

func TestCLIWatchSurvivesRestart(t *testing.T) {
	s1 := startAt(t, "127.0.0.1:0")
	ts := &testServer{URL: "http://" + s1.addr}
	for _, id := range []string{"web-0", "web-1", "web-2"} { // revisions ahead of the next server's
		ts.mustCairn(t, "register", "--service", "web", "--id", id, "--address", "10.0.0.4")
	}
	w := ts.watch(t)
	w.waitFor(t, "default/web/web-2")
	s1.stop()
	startAt(t, s1.addr)
	ts.mustCairn(t, "register", "--service", "web", "--id", "web-9", "--address", "10.0.0.9")
	w.waitFor(t, "default/web/web-9")
	w.stop(t)
	if !strings.Contains(w.out.String(), "RESYNC") || !strings.Contains(w.errOut.String(), "cairn watch: stream broken; reconnecting from revision 3") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", w.out.String(), w.errOut.String())
	}
}
