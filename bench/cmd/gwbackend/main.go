// Command gwbackend is the HTTP backend of bench/run.sh --gateway: it
// answers every GET (any path) with the same small JSON body (Body, 100
// bytes), a Content-Length and keep-alive, so that what a load generator
// measures through a proxy is the proxy.
//
//	gwbackend -listen 127.0.0.1:9001 -name b1
//
// With -upstreams it is instead a reverse proxy in front of backends:
// net/http/httputil.ReverseProxy, round robin, keep-alive to the
// upstreams (64 idle connections per upstream), a pool of copy buffers,
// no logging: the reference of what Go's standard library does on the
// same path as Cairn.
//
//	gwbackend -listen 127.0.0.1:9000 -upstreams 127.0.0.1:9001,127.0.0.1:9002 [-admin 127.0.0.1:9100]
//
// -admin serves net/http/pprof's /debug/pprof/ on its own address.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Body is what every backend answers: 100 bytes of JSON, the same for
// every instance so that answers through a proxy are the same bytes
// whichever instance served them (the X-Backend header names it).
const Body = `{"service":"gwbackend","status":"ok","message":"hello from the gateway benchmark backend........!"}` + "\n"

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("gwbackend: ")
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	name := flag.String("name", "b1", "this instance's name, sent as the X-Backend header")
	upstreams := flag.String("upstreams", "", "comma-separated host:port list: be a round-robin reverse proxy to these instead of a backend")
	admin := flag.String("admin", "", "if set, serve /debug/pprof/ on this address")
	flag.Parse()
	if *admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		go func() { log.Fatal(http.ListenAndServe(*admin, mux)) }()
	}

	var h http.Handler
	if *upstreams != "" {
		h = reverseProxy(strings.Split(*upstreams, ","))
	} else {
		h = backend(*name)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: log.New(os.Stderr, "gwbackend: http: ", log.Ltime)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// backend answers every GET or HEAD with Body.
func backend(name string) http.Handler {
	body := []byte(Body)
	clen := []string{strconv.Itoa(len(body))}
	ctype := []string{"application/json"}
	inst := []string{name}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// Shared slices: net/http only reads them.
		h["Content-Type"] = ctype
		h["Content-Length"] = clen
		h["X-Backend"] = inst
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
}

// reverseProxy is httputil.ReverseProxy over addrs, round robin, with a
// Transport that keeps up to 64 idle connections per upstream (the
// default keeps 2, which would open and close connections under load).
func reverseProxy(addrs []string) http.Handler {
	targets := make([]*url.URL, len(addrs))
	for i, a := range addrs {
		targets[i] = &url.URL{Scheme: "http", Host: strings.TrimSpace(a)}
	}
	var next atomic.Uint64
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        64 * len(addrs),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targets[(next.Add(1)-1)%uint64(len(targets))])
			pr.SetXForwarded()
		},
		Transport:  tr,
		BufferPool: &bufferPool{},
		ErrorLog:   log.New(os.Stderr, "gwbackend: proxy: ", log.Ltime),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, fmt.Sprintf("upstream: %v", err), http.StatusBadGateway)
		},
	}
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers (without one it
// allocates a buffer per response).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
