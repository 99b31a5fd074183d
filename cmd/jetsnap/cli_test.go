package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jetsnap/jetsnap/consumer"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCLI runs get, state, capture, rebuild and forget against a real
// server with the jetsnap service and the example reducers.
func TestCLI(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, t.TempDir()
	srv := natstest.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	t.Setenv("NATS_URL", srv.ClientURL())
	t.Setenv("JETSNAP_SCRIPTS_DIR", "../../scripts")
	t.Setenv("JETSNAP_LOG_LEVEL", "error")

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := consumer.EnsureEventStream(ctx, js, "EVENTS", "events.>"); err != nil {
		t.Fatal(err)
	}
	if err := snapshotter.EnsureSnapshotStream(ctx, js, snapshotter.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		if _, err := js.Publish(ctx, "events.account.1", fmt.Appendf(nil, `{"type":"Deposited","amount":%d}`, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	scripts, err := scripting.Load("../../scripts", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, nc, scripts)
	svc, err := snapshotter.StartService(snapshotter.ServiceConfig{}, nc, r, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	jetsnap := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(args, nil, &out, &out)
		return code, out.String()
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"get", "account.1"}, 1, "no snapshot yet"},
		{[]string{"state", "account.1"}, 0, `"balance": 78`},
		{[]string{"capture", "account.1"}, 0, "Jetsnap-Version: 12"},
		{[]string{"get", "--history", "account.1"}, 0, "Jetsnap-Version: 12"},
		{[]string{"get", "--raw", "account.1"}, 0, `"balance":78`},
		{[]string{"rebuild", "--type", "account"}, 0, "actors 1: rebuilt 0, already current 1"},
		{[]string{"state", "ghost.1"}, 1, "error 422"},
		{[]string{"state", "account.99"}, 1, "error 404"},
		{[]string{"forget", "account.1"}, 0, "Purged 1 snapshot(s) of account.1"},
		{[]string{"capture", "account.1"}, 1, "error 410"},
		{[]string{"get", "nope"}, 1, "not of the form <type>.<id>"},
		{[]string{"state", "--help"}, 0, "usage: jetsnap state"},
		{[]string{"bogus"}, 2, "unknown command"},
	} {
		code, out := jetsnap(c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("jetsnap %s: exit %d, want %d saying %q; output:\n%s", strings.Join(c.args, " "), code, c.code, c.says, out)
		}
	}
}
