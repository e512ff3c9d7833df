package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Registrations acknowledged before a kill -9 are all there after restart,
// along with the overrides and deregistrations acknowledged before it.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	s := startCairn(t, "server", "--data-dir", dir, "--log-level", "warn")

	// Fixed state first: one override, one deregistration.
	for _, id := range []string{"keep", "gone"} {
		if code, err := call("POST", s.URL+"/v1/instances", instance{Service: "fixed", ID: id, Address: "10.0.0.1", TTL: "0s"}, nil); code != 201 || err != nil {
			t.Fatalf("register %s: %d %v", id, code, err)
		}
	}
	if code, _ := call("PUT", s.URL+"/v1/services/default/fixed/instances/keep/override", map[string]string{"status": "OUT_OF_SERVICE"}, nil); code != 200 {
		t.Fatalf("override: %d", code)
	}
	if code, _ := call("DELETE", s.URL+"/v1/services/default/fixed/instances/gone", nil, nil); code != 200 {
		t.Fatalf("deregister: %d", code)
	}

	// A steady stream of registrations from 8 writers; kill -9 mid-stream.
	var (
		mu    sync.Mutex
		acked []string
		maxRv atomic.Int64
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5000 && !stop.Load(); i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				var ans struct{ Revision int64 }
				code, err := call("POST", s.URL+"/v1/instances",
					instance{Service: fmt.Sprintf("svc-%d", i%7), ID: id, Address: "10.1.0.1", TTL: "60s"}, &ans)
				if err != nil {
					return // the server died under us: this one was not acknowledged
				}
				if code == 201 {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					for {
						cur := maxRv.Load()
						if ans.Revision <= cur || maxRv.CompareAndSwap(cur, ans.Revision) {
							break
						}
					}
				}
			}
		}(w)
	}
	eventually(t, 20*time.Second, "300 acknowledged registrations", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300, fmt.Sprint(len(acked))
	})
	s.kill()
	stop.Store(true)
	wg.Wait()
	t.Logf("killed after %d acknowledged registrations (revision %d)", len(acked), maxRv.Load())

	s2 := startCairn(t, "server", "--data-dir", dir, "--log-level", "warn")
	var all instancesAnswer
	if code, err := call("GET", s2.URL+"/v1/instances", nil, &all); code != 200 || err != nil {
		t.Fatalf("list after restart: %d %v", code, err)
	}
	if all.Revision < maxRv.Load() {
		t.Fatalf("revision after restart %d is below the last acknowledged %d", all.Revision, maxRv.Load())
	}
	have := map[string]instance{}
	for _, in := range all.Instances {
		have[in.ID] = in
	}
	missing := 0
	for _, id := range acked {
		if _, ok := have[id]; !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged registrations lost in kill -9", missing, len(acked))
	}
	if have["keep"].StatusOverride != "OUT_OF_SERVICE" {
		t.Fatalf("override lost: %+v", have["keep"])
	}
	if _, ok := have["gone"]; ok {
		t.Fatal("deregistered instance came back")
	}
	// Restored leases get a grace period: renewing a restored instance works.
	if code, _ := call("PUT", s2.URL+"/v1/services/default/svc-0/instances/"+acked[0]+"/renew", nil, nil); code != 200 && have[acked[0]].Service == "svc-0" {
		t.Fatalf("renewing a restored instance: %d", code)
	}
	// And new writes continue the revision sequence.
	var ans struct{ Revision int64 }
	call("POST", s2.URL+"/v1/instances", instance{Service: "fixed", ID: "after", Address: "10.0.0.2"}, &ans)
	if ans.Revision != all.Revision+1 {
		t.Fatalf("first write after restart got revision %d, want %d", ans.Revision, all.Revision+1)
	}
}

// `cairn dev` says where it listens and lists itself (demo content);
// `cairn server` starts empty.
func TestDevListsItself(t *testing.T) {
	s := startCairn(t, "dev", "--data-dir", t.TempDir())
	eventually(t, 15*time.Second, "cairn dev registers itself and passes its own health check", func() (bool, string) {
		var ans instancesAnswer
		call("GET", s.URL+"/v1/instances?namespace=cairn-system&healthy=true", nil, &ans)
		return len(ans.Instances) == 1, fmt.Sprintf("%+v", ans.Instances)
	})
	// The same instance, through the Eureka API of the same port, and
	// through DNS with Debian's dig. Both follow the change feed, which
	// publishes a change once it is durable: a moment after the native
	// read above may have seen it.
	eventually(t, 5*time.Second, "the Eureka view shows cairn dev UP", func() (bool, string) {
		var apps struct {
			Applications struct {
				Application []struct {
					Name     string `json:"name"`
					Instance []struct {
						Status string `json:"status"`
					} `json:"instance"`
				} `json:"application"`
			} `json:"applications"`
		}
		req, _ := http.NewRequest("GET", s.URL+"/eureka/apps", nil)
		req.Header.Set("Accept", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		err = json.NewDecoder(res.Body).Decode(&apps)
		res.Body.Close()
		a := apps.Applications.Application
		return err == nil && len(a) == 1 && a[0].Name == "CAIRN.CAIRN-SYSTEM" && a[0].Instance[0].Status == "UP", fmt.Sprintf("%+v %v", apps, err)
	})
	host, port, _ := net.SplitHostPort(s.DNS)
	eventually(t, 5*time.Second, "dig cairn.cairn-system.svc.cairn answers 127.0.0.1", func() (bool, string) {
		out, err := exec.Command("dig", "@"+host, "-p", port, "+short", "cairn.cairn-system.svc.cairn", "A").CombinedOutput()
		return err == nil && strings.TrimSpace(string(out)) == "127.0.0.1", fmt.Sprintf("%q %v", out, err)
	})
	p := startCairn(t, "server", "--in-memory")
	var ans instancesAnswer
	call("GET", p.URL+"/v1/instances", nil, &ans)
	if len(ans.Instances) != 0 {
		t.Fatalf("cairn server has demo content: %+v", ans.Instances)
	}
}
