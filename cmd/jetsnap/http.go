package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// errStarting is /readyz's answer until the pipeline runs.
var errStarting = errors.New("starting")

// opsServer serves, on JETSNAP_HTTP_ADDR:
//
//	/metrics  Prometheus text format
//	/healthz  200 while the process runs (liveness)
//	/readyz   200 when SetReady's check passes, else 503 and the reason
//
// It runs from startOps until Shutdown.
type opsServer struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Pointer[func() error]
	done  chan struct{}
}

// startOps listens on addr and serves until Shutdown. Until SetReady is
// called, /readyz answers 503 "starting".
func startOps(addr string, metrics http.Handler, log *slog.Logger) (*opsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("JETSNAP_HTTP_ADDR=%s: %w", addr, err)
	}
	o := &opsServer{ln: ln, done: make(chan struct{})}
	o.SetReady(func() error { return errStarting })
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := (*o.ready.Load())(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	o.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return o, nil
}

// Addr is the address the server listens on.
func (o *opsServer) Addr() net.Addr { return o.ln.Addr() }

// SetReady sets the check behind /readyz: nil means ready. It is safe to
// call at any time.
func (o *opsServer) SetReady(check func() error) { o.ready.Store(&check) }

// Shutdown stops the server, waiting for requests in progress until ctx
// ends.
func (o *opsServer) Shutdown(ctx context.Context) error {
	err := o.srv.Shutdown(ctx)
	<-o.done
	return err
}
