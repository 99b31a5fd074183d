package consumer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func runServer(t *testing.T, port int, storeDir string) *server.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = port, true, storeDir
	return natstest.RunServer(&opts)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestReadyAndPending: Ready is an error until Run consumes, then nil; the
// pending gauges follow the consumer's info; after Run ends it is an error
// again.
func TestReadyAndPending(t *testing.T) {
	srv := runServer(t, -1, t.TempDir())
	t.Cleanup(srv.Shutdown)
	nc, err := consumer.Connect(consumer.ConnConfig{URL: srv.ClientURL()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "events.account."+strconv.Itoa(i), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}

	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cons := consumer.New(consumer.Config{
		Stream: "EVENTS", Durable: "jetsnap", Filter: "events.*.*",
		MaxAckPending: 2, InfoInterval: 50 * time.Millisecond,
	}, js, quiet, consumer.WithMeterProvider(meters))
	if err := cons.Ready(); err == nil {
		t.Fatal("ready before Run")
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var got atomic.Int64
	wg.Go(func() {
		// Never acked: with MaxAckPending 2, eight events stay pending.
		if err := cons.Run(runCtx, func(jetstream.Msg) { got.Add(1) }); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })

	gauges := func() (pending, acks int64) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[int64]); ok && len(g.DataPoints) == 1 {
					switch m.Name {
					case "jetsnap.consumer.pending":
						pending = g.DataPoints[0].Value
					case "jetsnap.consumer.ack_pending":
						acks = g.DataPoints[0].Value
					}
				}
			}
		}
		return pending, acks
	}
	waitFor(t, 10*time.Second, "ready, 8 pending and 2 awaiting acks", func() bool {
		p, a := gauges()
		n, ok := cons.Pending()
		return cons.Ready() == nil && p == 8 && a == 2 && ok && n == 8
	})
	if n := got.Load(); n != 2 {
		t.Errorf("handled %d events, want 2 (MaxAckPending)", n)
	}
	stop()
	wg.Wait()
	if err := cons.Ready(); err == nil {
		t.Error("still ready after Run returned")
	}
}

// TestReadyThroughOutage: when nats-server goes away, Ready fails; when it
// comes back on the same port and store, Ready is nil again and events
// published after the restart are delivered.
func TestReadyThroughOutage(t *testing.T) {
	store := t.TempDir()
	srv := runServer(t, -1, store)
	port := srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { srv.Shutdown() })
	nc, err := consumer.Connect(consumer.ConnConfig{URL: srv.ClientURL()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	cons := consumer.New(consumer.Config{Stream: "EVENTS", Durable: "jetsnap", Filter: "events.*.*", InfoInterval: 100 * time.Millisecond}, js, quiet)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var got atomic.Int64
	wg.Go(func() {
		if err := cons.Run(runCtx, func(m jetstream.Msg) { got.Add(1); _ = m.Ack() }); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	publish := func() {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := js.Publish(pctx, "events.account.1", []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "ready", func() bool { return cons.Ready() == nil })
	publish()
	waitFor(t, 10*time.Second, "the first event", func() bool { return got.Load() == 1 })

	srv.Shutdown()
	waitFor(t, 10*time.Second, "not ready during the outage", func() bool { return cons.Ready() != nil })

	srv = runServer(t, port, store)
	waitFor(t, 20*time.Second, "ready after the restart", func() bool { return cons.Ready() == nil })
	publish()
	waitFor(t, 20*time.Second, "the event published after the restart", func() bool { return got.Load() == 2 })
}

// TestReadyTellsWhyNot: a user without the permission to reset the durable
// cannot start batched acks; while Run keeps retrying, Ready says why
// (jetsnap's hint names the permission: the server does not answer a
// denied request, the reset times out), and no longer once Run returns.
func TestReadyTellsWhyNot(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	opts.Users = []*server.User{
		{Username: "admin", Password: "a"},
		{Username: "jetsnap", Password: "j", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Deny: []string{"$JS.API.CONSUMER.RESET.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}},
	}
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	dial := func(user, pass string) jetstream.JetStream {
		nc, err := consumer.Connect(consumer.ConnConfig{URL: srv.ClientURL(), User: user, Password: pass}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	if err := consumer.EnsureEventStream(context.Background(), dial("admin", "a"), "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	cons := consumer.New(batchConfig(), dial("jetsnap", "j"), quiet)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := cons.Run(ctx, func(jetstream.Msg) {}); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	want := "$JS.API.CONSUMER.RESET.EVENTS.jetsnap"
	waitFor(t, 20*time.Second, "Ready to name the reset permission", func() bool {
		err := cons.Ready()
		return err != nil && strings.Contains(err.Error(), want)
	})
	if err := cons.Ready(); !errors.Is(err, consumer.ErrNotConsuming) {
		t.Errorf("Ready() = %v, want ErrNotConsuming", err)
	}
	// Once Run has returned, the reason is gone with it.
	stop()
	wg.Wait()
	if err := cons.Ready(); err != consumer.ErrNotConsuming {
		t.Errorf("Ready() after Run = %v, want ErrNotConsuming alone", err)
	}
}
