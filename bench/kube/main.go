// Command kubebench measures Cairn's Kubernetes sync against a real
// kube-apiserver and etcd on 127.0.0.1 (the binaries scripts/kube-assets.sh
// caches), with a bare client-go informer beside it as the floor:
//
//  1. propagation: an EndpointSlice update in the API server → the first
//     request Cairn's gateway answers from the new endpoint. The slice's one
//     endpoint moves between local backends (addresses 10.77.0.k mapped to
//     them, since the API server refuses loopback ones) CHANGES times, one
//     at a time; p50/p99 next to the bare informer's update → event time
//     for the same updates.
//  2. memory: SERVICES Services with ENDPOINTS endpoints each, then the
//     Go heap the sync holds once everything is in the registry (informers,
//     registry, work queues), next to a bare informer pair (Services and
//     EndpointSlices) holding the same objects, and how long the first
//     sync of everything took.
//
// It drives Cairn in process (internal/kube, registry with its write-ahead
// log, proxy engine and server) because the gateway must dial the mapped
// addresses. Run it from bench/run.sh --kube; not part of CI.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/kube"
	"github.com/cairnhq/cairn/internal/kube/kubetest"
	"github.com/cairnhq/cairn/internal/proxy"
	"github.com/cairnhq/cairn/internal/proxy/source"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/cairnhq/cairn/internal/store"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func main() {
	changes := flag.Int("changes", 100, "EndpointSlice changes to time")
	services := flag.Int("services", 1000, "Services for the memory measurement")
	perService := flag.Int("endpoints", 10, "endpoints per Service")
	jsonOut := flag.String("json", "", "write the results as JSON to this file")
	heapOut := flag.String("heapprofile", "", "write a heap profile to this file once Cairn has synced the memory phase")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	env, err := kubetest.Start()
	if err != nil {
		fail(err)
	}
	defer env.Stop()
	res := results{Changes: *changes, Services: *services, EndpointsPerService: *perService, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if err := propagation(env, *changes, log, &res); err != nil {
		env.Stop()
		fail(err)
	}
	if err := memory(env, *services, *perService, *heapOut, log, &res); err != nil {
		env.Stop()
		fail(err)
	}
	res.print(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubebench:", err)
	os.Exit(1)
}

type results struct {
	Changes             int
	Services            int
	EndpointsPerService int
	GOMAXPROCS          int

	// Propagation, milliseconds.
	CairnP50, CairnP99, CairnMax          float64
	InformerP50, InformerP99, InformerMax float64

	// Memory: live Go heap after GC, MiB, and the first sync's duration.
	CairnHeapMiB, InformerHeapMiB float64
	CairnSyncSeconds              float64
	InformerSyncSeconds           float64
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nEndpointSlice change -> routed by the gateway (%d changes, one at a time)\n", r.Changes)
	fmt.Fprintf(w, "  %-34s %8s %8s %8s\n", "", "p50 ms", "p99 ms", "max ms")
	fmt.Fprintf(w, "  %-34s %8.2f %8.2f %8.2f\n", "Cairn (slice -> gateway answer)", r.CairnP50, r.CairnP99, r.CairnMax)
	fmt.Fprintf(w, "  %-34s %8.2f %8.2f %8.2f\n", "bare informer (slice -> event)", r.InformerP50, r.InformerP99, r.InformerMax)
	fmt.Fprintf(w, "  ratio Cairn/informer: p50 %.2fx, p99 %.2fx\n", r.CairnP50/r.InformerP50, r.CairnP99/r.InformerP99)
	fmt.Fprintf(w, "\nMemory with %d Services / %d endpoints (live heap after GC)\n", r.Services, r.Services*r.EndpointsPerService)
	fmt.Fprintf(w, "  %-34s %8.1f MiB, first sync %.2fs\n", "Cairn sync (informers + registry)", r.CairnHeapMiB, r.CairnSyncSeconds)
	fmt.Fprintf(w, "  %-34s %8.1f MiB, first sync %.2fs\n", "bare informers (Services + slices)", r.InformerHeapMiB, r.InformerSyncSeconds)
	fmt.Fprintf(w, "  ratio Cairn/informers: %.2fx\n", r.CairnHeapMiB/r.InformerHeapMiB)
}

// cairn is a registry (with its write-ahead log), the Kubernetes
// controller and a gateway following the registry.
type cairn struct {
	reg    *registry.Registry
	ctrl   *kube.Controller
	gwURL  string
	cancel context.CancelFunc
	done   sync.WaitGroup
	dir    string
}

func startCairn(env *kubetest.Env, ns string, mapAddr func(string) string, log *slog.Logger) (*cairn, error) {
	dir, err := os.MkdirTemp("", "kubebench-")
	if err != nil {
		return nil, err
	}
	wal, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(registry.Config{Logger: log}, wal)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &cairn{reg: reg, cancel: cancel, dir: dir}
	c.done.Add(1)
	go func() { defer c.done.Done(); reg.Run(ctx) }()
	c.ctrl, err = kube.New(kube.Options{Registry: reg, Config: env.Config, Namespaces: []string{ns}, Logger: log})
	if err != nil {
		return nil, err
	}
	c.done.Add(1)
	go func() { defer c.done.Done(); c.ctrl.Run(ctx) }()
	if mapAddr != nil {
		e := proxy.NewEngine(proxy.Options{Logger: log, MapAddress: mapAddr})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := proxy.NewServer(e, proxy.ServerOptions{Listen: ln, Logger: log})
		ready := make(chan struct{})
		go source.FollowRegistry(ctx, reg, e, ready, log)
		<-ready
		srv.Start()
		c.gwURL = "http://" + ln.Addr().String()
		go func() { <-ctx.Done(); srv.Drain(context.Background()) }()
	}
	return c, nil
}

func (c *cairn) stop() {
	c.cancel()
	c.done.Wait()
	c.reg.Close()
	os.RemoveAll(c.dir)
}

func createNamespace(cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}, Selector: map[string]string{"app": name}}}
}

func slice(ns, svc string, addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

// propagation times slice updates until the gateway answers from the new
// endpoint, and the same updates' arrival at a bare informer.
func propagation(env *kubetest.Env, changes int, log *slog.Logger, res *results) error {
	const ns, backends = "bench-propagation", 8
	cs := env.Clientset()
	if err := createNamespace(cs, ns); err != nil {
		return err
	}
	// Local backends that answer with their index.
	mapped := map[string]string{}
	for k := range backends {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strconv.Itoa(k)) }))
		mapped["10.77.0."+strconv.Itoa(k+1)+":8080"] = ln.Addr().String()
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Services(ns).Create(ctx, service(ns, "web"), metav1.CreateOptions{}); err != nil {
		return err
	}
	cur, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "web", "10.77.0.1"), metav1.CreateOptions{})
	if err != nil {
		return err
	}

	c, err := startCairn(env, ns, func(a string) string {
		if m, ok := mapped[a]; ok {
			return m
		}
		return a
	}, log)
	if err != nil {
		return err
	}
	defer c.stop()
	<-c.ctrl.Ready()
	doc := config.Document{Kind: config.KindRoute, Metadata: config.Metadata{Name: "web", Namespace: ns},
		Spec: json.RawMessage(`{"match":{"path":{"value":"/"}},"backends":[{"service":"web","port":"http"}],"retries":{"attempts":0}}`)}
	if _, err := c.reg.ApplyConfig(ctx, []config.Document{doc}, nil, false); err != nil {
		return err
	}

	// The floor: a bare informer on the same slices, stamping arrivals.
	arrived := make(chan time.Time, 16)
	f := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(env.Config), 0, informers.WithNamespace(ns))
	f.Discovery().V1().EndpointSlices().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, _ any) { arrived <- time.Now() },
	})
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	f.WaitForCacheSync(stop)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 2 * time.Second}
	answer := func() string {
		resp, err := client.Get(c.gwURL + "/")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return ""
		}
		return string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for answer() != "0" {
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway never routed to the first endpoint")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var viaCairn, viaInformer []float64
	for i := 1; i <= changes; i++ {
		k := i % backends
		next := slice(ns, "web", "10.77.0."+strconv.Itoa(k+1))
		next.ResourceVersion = cur.ResourceVersion
		start := time.Now()
		cur, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, next, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		want := strconv.Itoa(k)
		for answer() != want {
			if time.Since(start) > 20*time.Second {
				return fmt.Errorf("change %d: the gateway did not route to backend %d within 20s", i, k)
			}
		}
		viaCairn = append(viaCairn, ms(time.Since(start)))
		select {
		case at := <-arrived:
			viaInformer = append(viaInformer, ms(at.Sub(start)))
		case <-time.After(20 * time.Second):
			return fmt.Errorf("change %d: the bare informer saw nothing", i)
		}
		time.Sleep(20 * time.Millisecond) // one change at a time, settled
	}
	res.CairnP50, res.CairnP99, res.CairnMax = pct(viaCairn, 50), pct(viaCairn, 99), slices.Max(viaCairn)
	res.InformerP50, res.InformerP99, res.InformerMax = pct(viaInformer, 50), pct(viaInformer, 99), slices.Max(viaInformer)
	return nil
}

// memory fills a namespace, then measures the live heap of a bare
// informer pair and of Cairn's sync, each started alone.
func memory(env *kubetest.Env, services, perService int, heapOut string, log *slog.Logger, res *results) error {
	const ns = "bench-memory"
	cs := env.Clientset()
	if err := createNamespace(cs, ns); err != nil {
		return err
	}
	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "kubebench: creating %d Services with %d endpoints each\n", services, perService)
	work := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("svc-%04d", i)
				addrs := make([]string, perService)
				for j := range addrs {
					addrs[j] = fmt.Sprintf("10.%d.%d.%d", 100+i/250, i%250, j+1)
				}
				if _, err := cs.CoreV1().Services(ns).Create(ctx, service(ns, name), metav1.CreateOptions{}); err != nil {
					errc <- err
					return
				}
				if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, name, addrs...), metav1.CreateOptions{}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i := range services {
		select {
		case work <- i:
		case err := <-errc:
			close(work)
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}

	// The floor: a bare informer pair holding the same objects.
	base := heap()
	start := time.Now()
	stop := make(chan struct{})
	// With the same transform as Cairn's informers (managedFields dropped),
	// so the difference is what Cairn keeps beyond the objects.
	f := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(env.Config), 0, informers.WithNamespace(ns),
		informers.WithTransform(func(obj any) (any, error) {
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	f.Core().V1().Services().Informer()
	f.Discovery().V1().EndpointSlices().Informer()
	f.Start(stop)
	f.WaitForCacheSync(stop)
	res.InformerSyncSeconds = time.Since(start).Seconds()
	res.InformerHeapMiB = (heap() - base) / (1 << 20)
	runtime.KeepAlive(f)
	close(stop)
	f.Shutdown()
	f = nil

	base = heap()
	start = time.Now()
	c, err := startCairn(env, ns, nil, log)
	if err != nil {
		return err
	}
	defer c.stop()
	<-c.ctrl.Ready()
	want := services * perService
	for {
		in, _ := c.reg.Instances(registry.Filter{Namespace: ns})
		if len(in) == want {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the registry has %d of %d instances after 5 minutes", len(in), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.CairnSyncSeconds = time.Since(start).Seconds()
	res.CairnHeapMiB = (heap() - base) / (1 << 20)
	if heapOut != "" {
		f, err := os.Create(heapOut)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return err
		}
	}
	runtime.KeepAlive(c)
	return nil
}

// heap returns the live heap in bytes after a full collection.
func heap() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
