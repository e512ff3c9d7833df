package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServerOptions say where a gateway listens.
type ServerOptions struct {
	Listen    net.Listener // plain HTTP: HTTP/1.1 and h2c (HTTP/2 with prior knowledge)
	TLSListen net.Listener // TLS: HTTP/2 and HTTP/1.1 by ALPN; nil for none
	TLSConfig *tls.Config  // with certificates, for TLSListen
	Logger    *slog.Logger
	// NoEventLoop serves the plain listener with a goroutine per
	// connection instead of per-core event loops (which exist on Linux;
	// elsewhere it is always so).
	NoEventLoop bool
}

// Server runs an Engine on listeners.
type Server struct {
	e     *Engine
	h1    *h1server // the plain listener: HTTP/1.1 here, h2c handed to plain
	plain *http.Server
	tls   *http.Server
	opts  ServerOptions
	errc  chan error
}

// NewServer returns a server for e; Start begins serving.
func NewServer(e *Engine, opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	mk := func() *http.Server {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
		return &http.Server{
			Handler:           e,
			Protocols:         p,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		}
	}
	s := &Server{e: e, opts: opts, errc: make(chan error, 2)}
	if opts.Listen != nil {
		s.plain = mk()
		s.h1 = newH1Server(e, s.plain, opts.Listen, !opts.NoEventLoop)
	}
	if opts.TLSListen != nil {
		s.tls = mk()
		cfg := opts.TLSConfig.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		s.tls.TLSConfig = cfg
	}
	return s
}

// Start serves in the background; Err reports a listener that failed.
func (s *Server) Start() {
	if s.h1 != nil {
		go func() { s.report(s.h1.serve()) }()
	}
	if s.tls != nil {
		go func() { s.report(s.tls.ServeTLS(s.opts.TLSListen, "", "")) }()
	}
}

func (s *Server) report(err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.errc <- err
	}
}

// Err returns a channel that receives a listener's failure.
func (s *Server) Err() <-chan error { return s.errc }

// Drain stops accepting, lets requests in flight finish (WebSocket tunnels
// included) until ctx ends, then closes whatever is left.
func (s *Server) Drain(ctx context.Context) error {
	var errs []error
	if s.tls != nil {
		s.tls.SetKeepAlivesEnabled(false)
	}
	done := make(chan error, 2)
	n := 0
	if s.h1 != nil {
		n++
		go func() { done <- s.h1.drain(ctx) }()
	}
	if s.tls != nil {
		n++
		go func() { done <- s.tls.Shutdown(ctx) }()
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	select {
	case <-s.e.tunnels.drained():
	case <-ctx.Done():
		s.e.tunnels.closeAll()
		for _, hs := range []*http.Server{s.plain, s.tls} {
			if hs != nil {
				_ = hs.Close()
			}
		}
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
