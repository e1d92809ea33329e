// Package serve serves the active export of an export root over HTTP the
// way CONTRACT.md §3 describes: the Concelier and Excititor mirror routes
// with exact Cache-Control values and strong ETags, Basic (bcrypt htpasswd)
// and bearer JWT authentication per domain, per-client budgets, health,
// readiness and Prometheus metrics, and an optional import API.
//
// The package parses no flags: the command builds a Config (ResolveConfig
// layers defaults, a config file, the environment and the flags) and hands
// it to NewServer or NewHandler.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Timeouts and limits of the HTTP server.
const (
	DefaultDrainTimeout = 30 * time.Second
	ReadHeaderTimeout   = 10 * time.Second
	ReadTimeout         = 60 * time.Second
	IdleTimeout         = 120 * time.Second
	MaxHeaderBytes      = 16 << 10
)

// Server runs a Handler on a listener, with TLS when configured.
type Server struct {
	opts    Options
	handler *Handler
	srv     *http.Server
	tls     bool
	cert    atomic.Pointer[tls.Certificate]

	mu      sync.Mutex
	ln      net.Listener
	serveCh chan error

	// onShutdown runs when draining starts (tests).
	onShutdown func()
}

// NewServer checks the configuration and builds the handler and the HTTP
// server. Errors are usage errors (exit 4) for bad configuration and
// unreadable htpasswd, key or certificate files.
func NewServer(opts Options) (*Server, error) {
	h, err := NewHandler(opts)
	if err != nil {
		return nil, err
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	s := &Server{opts: opts, handler: h}
	logf := h.logf
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.New(logWriter(logf), "", 0),
	}
	if opts.Config.Server.TLSCert != "" {
		if err := s.loadCert(); err != nil {
			return nil, err
		}
		s.tls = true
		s.srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		}
	}
	return s, nil
}

func (s *Server) loadCert() error {
	c := s.opts.Config.Server
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return failure.Classify(failure.ErrUsage, fmt.Errorf("load TLS certificate %s and key %s: %w", c.TLSCert, c.TLSKey, err))
	}
	s.cert.Store(&cert)
	return nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() *Handler { return s.handler }

// Start listens on the configured address and serves in the background.
// With a port of 0 the kernel picks one; Addr reports it.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Config.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Config.Server.Listen, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.serveCh = make(chan error, 1)
	s.mu.Unlock()
	go func() {
		var err error
		if s.tls {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		s.serveCh <- err
	}()
	return nil
}

// Addr returns the address the server listens on, host:port, after Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the base URL of the server after Start.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// Wait blocks until ctx is cancelled (SIGTERM, Ctrl-C) or the server
// fails, then drains: no new connections are accepted, requests in flight
// may finish for up to Options.DrainTimeout, a running import is given the
// same time and then cancelled. A drain that completes returns nil.
func (s *Server) Wait(ctx context.Context) error {
	s.mu.Lock()
	serveCh := s.serveCh
	s.mu.Unlock()
	if serveCh == nil {
		return errors.New("server not started")
	}
	select {
	case err := <-serveCh:
		s.handler.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	return s.Shutdown(context.Background())
}

// Run starts the server and waits as Wait does.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.Wait(ctx)
}

// Shutdown drains the server within Options.DrainTimeout (or ctx, if
// sooner). Connections still busy after that are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.onShutdown != nil {
		s.onShutdown()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.DrainTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.handler.importer.wait(ctx)
	if err != nil {
		s.handler.logf("drain incomplete after %s: closing %v", s.opts.DrainTimeout, err)
		_ = s.srv.Close()
	}
	s.handler.Close()
	return nil
}

// Reload re-reads the htpasswd, authority key and TLS certificate files
// (SIGHUP). On error the previous ones stay in force.
func (s *Server) Reload() error {
	var errs []error
	if err := s.handler.Reload(); err != nil {
		errs = append(errs, err)
	}
	if s.tls {
		if err := s.loadCert(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logWriter adapts Logf to the http.Server error log.
type logWriter func(string, ...any)

func (l logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	l("http: %s", msg)
	return len(p), nil
}
