package snapshotter

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Service error codes, in Nats-Service-Error-Code.
const (
	CodeBadActor     = "400" // the subject does not end in <type>.<id>
	CodeUnknownActor = "404" // no events and no snapshot
	CodeNoNewEvents  = "409" // capture: latest snapshot by another reducer, no event since
	CodeForgotten    = "410" // capture: forgotten, no event since
	CodeNoReducer    = "422" // no reducer for the actor type
	CodeReducer      = "500" // the reducer failed
	CodeUnavailable  = "503" // the streams could not be read or written
)

// ServiceConfig names the service.
type ServiceConfig struct {
	Name    string        // default "jetsnap"; also the subject prefix
	Version string        // semantic version shown by `nats micro info`
	Timeout time.Duration // per request, default 10s
}

// StartService adds the NATS micro service (DESIGN.md, Reading) on nc:
//
//	<name>.state.<type>.<id>    the state now, folded on request, not published
//	<name>.capture.<type>.<id>  capture and publish now; replies with the snapshot
//
// Replies carry the snapshot headers; errors are micro errors with the
// Code* constants. Replicas share requests through micro's queue group. The
// caller stops the service (Stop) before closing nc.
func StartService(cfg ServiceConfig, nc *nats.Conn, r *Reader, log *slog.Logger) (micro.Service, error) {
	if cfg.Name == "" {
		cfg.Name = "jetsnap"
	}
	if cfg.Version == "" {
		cfg.Version = "0.1.0"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        cfg.Name,
		Version:     cfg.Version,
		Description: "jetsnap: actor state and snapshots on request",
	})
	if err != nil {
		return nil, err
	}
	g := svc.AddGroup(cfg.Name)
	serve := func(op string, fn func(ctx context.Context, actor string) (Snapshot, error)) micro.Handler {
		prefix := cfg.Name + "." + op + "."
		return micro.HandlerFunc(func(req micro.Request) {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			actor := strings.TrimPrefix(req.Subject(), prefix)
			snap, err := fn(ctx, actor)
			if err != nil {
				code := errorCode(err)
				if code == CodeReducer || code == CodeUnavailable {
					log.Warn("service request failed", "op", op, "actor", actor, "code", code, "err", err)
				}
				_ = req.Error(code, err.Error(), nil)
				return
			}
			_ = req.Respond(snap.State, micro.WithHeaders(micro.Headers(snap.Headers())))
		})
	}
	state := func(ctx context.Context, actor string) (Snapshot, error) {
		st, err := r.Load(ctx, actor)
		return st.Snapshot, err
	}
	if err := g.AddEndpoint("state", serve("state", state), micro.WithEndpointSubject("state.*.*")); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	capture := func(ctx context.Context, actor string) (Snapshot, error) {
		st, err := r.Capture(ctx, actor)
		return st.Snapshot, err
	}
	if err := g.AddEndpoint("capture", serve("capture", capture), micro.WithEndpointSubject("capture.*.*")); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	// The subscriptions reach the server before StartService returns, so
	// that a request sent right after it, on another connection, finds a
	// responder. If the flush fails, the connection's reconnect sends them.
	_ = nc.FlushTimeout(5 * time.Second)
	return svc, nil
}

func errorCode(err error) string {
	var rerr *ReducerError
	switch {
	case errors.As(err, &rerr):
		return CodeReducer
	case errors.Is(err, ErrNoReducer):
		return CodeNoReducer
	case errors.Is(err, ErrUnknownActor):
		return CodeUnknownActor
	case errors.Is(err, ErrNoNewEvents):
		return CodeNoNewEvents
	case errors.Is(err, ErrForgotten):
		return CodeForgotten
	case errors.Is(err, errBadActor):
		return CodeBadActor
	}
	return CodeUnavailable
}
