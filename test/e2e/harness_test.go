// Package e2e runs the real cairn binary against real peers (Prometheus)
// and real failures (kill -9).
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var cairnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cairnBin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-race", "-o", cairnBin, "github.com/cairnhq/cairn/cmd/cairn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cairn:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopKube()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running cairn process.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	URL    string
	DNS    string // host:port of its DNS server (UDP and TCP)
	GW     string // URL of its gateway
	stderr *syncBuffer
	done   chan struct{}
}

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

var (
	listenRE = regexp.MustCompile(`HTTP API on (http://\S+)`)
	dnsRE    = regexp.MustCompile(`DNS on (\S+)`)
	gwRE     = regexp.MustCompile(`gateway on (http://\S+)`)
)

// startCairn runs `cairn <mode> --http-addr 127.0.0.1:0 --dns-addr 127.0.0.1:0
// --gateway-addr 127.0.0.1:0 args...` and waits for it to say where it listens.
func startCairn(t *testing.T, mode string, args ...string) *server {
	t.Helper()
	args = append([]string{mode, "--http-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0"}, args...)
	s := &server{}
	launch(t, s, args, want{listenRE, &s.URL}, want{dnsRE, &s.DNS}, want{gwRE, &s.GW})
	return s
}

// want is a line a process prints when it starts, and where the first
// submatch goes.
type want struct {
	re  *regexp.Regexp
	dst *string
}

// launch runs cairn with args and waits until it has printed every wanted
// line; later output is discarded.
func launch(t *testing.T, s *server, args []string, wants ...want) {
	t.Helper()
	cmd := exec.Command(cairnBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.t, s.cmd, s.stderr, s.done = t, cmd, &syncBuffer{}, make(chan struct{})
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	missing := func() bool {
		for _, w := range wants {
			if *w.dst == "" {
				return true
			}
		}
		return false
	}
	for missing() {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("cairn %s exited before listening; stderr:\n%s", args[0], s.stderr)
			}
			for _, w := range wants {
				if m := w.re.FindStringSubmatch(line); m != nil && *w.dst == "" {
					*w.dst = m[1]
				}
			}
		case <-deadline:
			s.kill()
			t.Fatalf("cairn %s did not report its addresses in 30s; stderr:\n%s", args[0], s.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	t.Cleanup(s.kill)
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// call sends a JSON request and decodes a JSON answer into out (if non-nil).
func call(method, url string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %q: %w", strings.TrimSpace(string(b)), err)
		}
	}
	return resp.StatusCode, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last state: %s)", what, d, last)
}

type instance struct {
	ID             string            `json:"id"`
	Namespace      string            `json:"namespace,omitempty"`
	Service        string            `json:"service"`
	Address        string            `json:"address"`
	Ports          []map[string]any  `json:"ports,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Status         string            `json:"status,omitempty"`
	StatusOverride string            `json:"statusOverride,omitempty"`
	TTL            string            `json:"ttl,omitempty"`
	Health         string            `json:"health,omitempty"`
}

type instancesAnswer struct {
	Revision  int64      `json:"revision"`
	Instances []instance `json:"instances"`
}
