package snapshotter

import (
	"context"
	"testing"
	"time"

	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

// TestDropEndsRequestsInFlight: a request that the server will never answer
// ends when the connection drops, not at its timeout; a context bound after
// the drop waits for the next one.
func TestDropEndsRequestsInFlight(t *testing.T) {
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	srv := natstest.RunServer(&opts)
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	silent, err := nc.SubscribeSync("silent") // takes requests, answers none
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d := newDrops()
	defer d.watch(nc)()

	ctx, cancel := d.bind(context.Background(), time.Minute)
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		_, err := nc.RequestWithContext(ctx, "silent", nil)
		answered <- err
	}()
	if _, err := silent.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the request never reached the server: %v", err)
	}
	srv.Shutdown()
	select {
	case err := <-answered:
		if !dropped(ctx) {
			t.Fatalf("the request ended with %v, not because the connection dropped", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request was still waiting 30s after the connection dropped")
	}

	later, cancelLater := d.bind(context.Background(), time.Minute)
	defer cancelLater()
	if later.Err() != nil {
		t.Fatalf("a context bound after the drop is already done: %v", context.Cause(later))
	}
}
