package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jetsnap/jetsnap/config"
	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// runRun is `jetsnap run`: consume, tally, capture and publish until a signal.
func runRun(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jetsnap [run]\n\njetsnap is configured by environment variables only:")
		_ = config.Usage(stderr)
		fmt.Fprintln(stderr, "\nTelemetry follows the OpenTelemetry variables: OTEL_EXPORTER_OTLP_ENDPOINT (push metrics\n"+
			"and traces by OTLP), OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER,\n"+
			"OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES; Prometheus metrics are always on JETSNAP_HTTP_ADDR/metrics.")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	return runWith(ctx, cfg, log, nil)
}

// runWith is `jetsnap run` once configured: telemetry and the HTTP server
// first, so that probes answer while it starts, then the pipeline until ctx
// ends. listening, if not nil, is told the HTTP server's address (tests).
func runWith(ctx context.Context, cfg *config.Config, log *slog.Logger, listening func(net.Addr)) int {
	log.Info("starting jetsnap", "config", *cfg)
	tel, err := newTelemetry(ctx, os.Getenv, log)
	if err != nil {
		log.Error("cannot set up telemetry; check the OTEL_ variables", "err", err)
		return 1
	}
	defer func() { // last: flush what the shutdown itself recorded
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}()
	ops, err := startOps(cfg.HTTPAddr, tel.Metrics, log)
	if err != nil {
		log.Error("cannot serve /metrics, /healthz and /readyz", "err", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = ops.Shutdown(sctx)
	}()
	if listening != nil {
		listening(ops.Addr())
	}
	stopping := context.AfterFunc(ctx, func() {
		log.Info("stopping: finishing captures in flight, then draining the connection", "timeout", cfg.ShutdownTimeout)
	})
	defer stopping()

	scripts, err := scripting.Load(cfg.ScriptsDir, log)
	if err != nil {
		log.Error("cannot load reducers; fix the script and start again", "dir", cfg.ScriptsDir, "err", err)
		return 1
	}
	conn, err := connect(ctx, cfg, log)
	if err != nil {
		log.Error("cannot connect", "err", err)
		return 1
	}
	defer conn.Close()

	if err := serveWith(ctx, cfg, conn, scripts, log, observe{tel.Meters, tel.Tracers, ops.SetReady}); err != nil {
		log.Error("jetsnap stopped", "err", err)
		return 1
	}
	log.Info("jetsnap stopped")
	return 0
}

// serve runs the pipeline (consumer → snapshotter → scripting) until ctx
// ends or the consumer fails, then shuts down in order.
func serve(ctx context.Context, cfg *config.Config, conn *connection, scripts *scripting.Registry, log *slog.Logger) error {
	return serveWith(ctx, cfg, conn, scripts, log, observe{})
}

// observe is what serveWith reports to; zero fields report nothing.
type observe struct {
	meters   metric.MeterProvider
	tracers  trace.TracerProvider
	setReady func(func() error) // given the readiness check once consuming starts
}

// serveWith is serve, reporting metrics, traces and readiness to obs.
func serveWith(ctx context.Context, cfg *config.Config, conn *connection, scripts *scripting.Registry, log *slog.Logger, obs observe) error {
	if err := snapshotter.EnsureSnapshotStream(ctx, conn.js, snapshotter.StreamConfig{
		Name: cfg.SnapshotStream, Prefix: cfg.SnapshotPrefix, Keep: cfg.Keep, Replicas: cfg.SnapshotReplicas,
	}); err != nil {
		return err
	}
	snap, err := snapshotter.New(snapshotterConfig(cfg), conn.nc, conn.js, scripts, log,
		snapshotter.WithMeterProvider(obs.meters), snapshotter.WithTracerProvider(obs.tracers))
	if err != nil {
		return err
	}
	cons := consumer.New(consumer.Config{
		Stream:        cfg.Stream,
		Durable:       cfg.Durable,
		Filter:        cfg.SubjectPattern.Filter(),
		AckMode:       consumer.AckMode(cfg.AckMode),
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		OnRebind:      func() { snap.Reset("the durable consumer was bound again") },
		OnReset:       snap.Rewind,
		OnSessionEnd:  snap.Flush,
	}, conn.js, log, consumer.WithMeterProvider(obs.meters))

	reader := snapshotter.NewReader(readerConfig(cfg), conn.nc, scripts)
	svc, err := snapshotter.StartService(snapshotter.ServiceConfig{}, conn.nc, reader, log)
	if err != nil {
		return fmt.Errorf("start the jetsnap service: %w", err)
	}
	defer func() { _ = svc.Stop() }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if obs.setReady != nil {
		// Ready: connected, both streams and the durable bound, reducers
		// loaded (Load succeeded before serve); not while shutting down.
		obs.setReady(func() error {
			if ctx.Err() != nil {
				return errors.New("shutting down")
			}
			return cons.Ready()
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := scripts.Watch(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("reducer hot reload stopped", "err", err)
		}
	})
	wg.Go(func() { _ = snap.Run(ctx) })
	consErr := cons.Run(ctx, snap.Handle)
	cancel()
	wg.Wait()
	return consErr
}

func snapshotterConfig(cfg *config.Config) snapshotter.Config {
	return snapshotter.Config{
		Pattern: cfg.SubjectPattern,
		Strategy: snapshotter.Strategy{
			Kind:      cfg.Strategy,
			Every:     uint64(cfg.Every),
			MinEvents: uint64(cfg.MinEvents),
			MaxEvents: uint64(cfg.MaxEvents),
			MaxAge:    cfg.MaxAge,
			OnTypes:   cfg.OnTypes,
		},
		EventStream:     cfg.Stream,
		SnapshotStream:  cfg.SnapshotStream,
		SnapshotPrefix:  cfg.SnapshotPrefix,
		Workers:         cfg.Workers,
		AckWait:         cfg.AckWait,
		ShutdownTimeout: cfg.ShutdownTimeout,
		BufferBytes:     max(int64(cfg.BufferBytes), 1), // 0 means no buffer, not the default
		Limits:          limits(cfg),
		Exclusive:       consumer.AckMode(cfg.AckMode) == consumer.AckBatch,
	}
}

func limits(cfg *config.Config) scripting.Limits {
	return scripting.Limits{Timeout: cfg.ScriptTimeout, MaxStateBytes: cfg.MaxStateBytes}
}

func readerConfig(cfg *config.Config) snapshotter.ReaderConfig {
	return snapshotter.ReaderConfig{
		Pattern:        cfg.SubjectPattern,
		EventStream:    cfg.Stream,
		SnapshotStream: cfg.SnapshotStream,
		SnapshotPrefix: cfg.SnapshotPrefix,
		Limits:         limits(cfg),
	}
}

// loadConfig reads the environment and builds the logger. On error it
// prints the problem and returns a nil config with the exit code.
func loadConfig(stderr io.Writer) (*config.Config, *slog.Logger, int) {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap: invalid configuration:\n%v\n\nRun `jetsnap --help` for every variable.\n", err)
		return nil, nil, 2
	}
	log, err := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap: %v\n", err)
		return nil, nil, 2
	}
	for _, name := range config.Unknown(os.Environ()) {
		log.Warn("unknown JETSNAP_ variable ignored; check its spelling", "name", name, "did_you_mean", config.Suggest(name))
	}
	return &cfg, log, 0
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("JETSNAP_LOG_LEVEL=%q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("JETSNAP_LOG_FORMAT=%q: use json or text", format)
}

// connection is a NATS connection and, in embedded mode, its server.
type connection struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	srv *server.Server
}

// connect connects to NATS_URL, or starts the embedded server and creates
// the EVENTS stream when NATS_URL is empty.
func connect(ctx context.Context, cfg *config.Config, log *slog.Logger) (*connection, error) {
	cc := connConfig(cfg)
	c := &connection{}
	if cfg.Embedded() {
		srv, err := consumer.StartEmbedded(consumer.EmbeddedConfig{Listen: cfg.EmbeddedListen, DataDir: cfg.DataDir})
		if err != nil {
			return nil, err
		}
		c.srv = srv
		cc.URL = srv.ClientURL()
		log.Info("embedded nats-server started", "url", cc.URL, "data_dir", cfg.DataDir)
	}
	nc, err := consumer.Connect(cc, log)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		c.Close()
		return nil, err
	}
	if cfg.Embedded() {
		subject := consumer.StreamSubject(cfg.SubjectPattern.Filter())
		if err := consumer.EnsureEventStream(ctx, c.js, cfg.Stream, subject); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func connConfig(cfg *config.Config) consumer.ConnConfig {
	return consumer.ConnConfig{
		URL: cfg.NATS.URL, Creds: cfg.NATS.Creds, NKey: cfg.NATS.NKey,
		User: cfg.NATS.User, Password: cfg.NATS.Password, Token: cfg.NATS.Token,
		Cert: cfg.NATS.Cert, Key: cfg.NATS.Key, CA: cfg.NATS.CA,
	}
}

// Close drains the connection (flushing pending acks) and stops the
// embedded server.
func (c *connection) Close() {
	if c.nc != nil {
		done := make(chan struct{})
		c.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := c.nc.Drain(); err == nil {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
		c.nc.Close()
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
}

func exitUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
