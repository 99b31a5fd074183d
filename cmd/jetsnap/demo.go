package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/jetsnap/jetsnap/config"
	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runDemo is `jetsnap demo`: publish sample account and cart events, wait
// for a snapshot and print it.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	accounts := fs.Int("accounts", 20, "account actors")
	carts := fs.Int("carts", 10, "cart actors")
	perActor := fs.Int("events", 120, "events per actor")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the snapshot")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jetsnap demo [flags]\n\nPublishes sample events for account.<n> and cart.<n> actors to the running\njetsnap (NATS_URL, or the embedded server of `make run`), waits for a new\nsnapshot of account.1 and prints it. With nothing running it starts its own\nin-process jetsnap on a temporary embedded server.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage(err)
	}
	cfg, log, code := loadConfig(stderr)
	if cfg == nil {
		return code
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, err := clientConn(cfg, quiet)
	if err != nil && cfg.Embedded() {
		fmt.Fprintf(stdout, "No jetsnap at %s: starting one in-process on a temporary embedded server.\n", cfg.EmbeddedListen)
		stop, url, err := startInProcess(ctx, cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "jetsnap demo: %v\n", err)
			return 1
		}
		defer stop()
		nc, err = nats.Connect(url)
		if err != nil {
			fmt.Fprintf(stderr, "jetsnap demo: %v\n", err)
			return 1
		}
	} else if err != nil {
		fmt.Fprintf(stderr, "jetsnap demo: %v\n", err)
		return 1
	}
	defer nc.Close()

	js, _ := jetstream.New(nc)
	first, n, err := publishDemo(ctx, js, cfg.SubjectPattern, *accounts, *carts, *perActor)
	if err != nil {
		fmt.Fprintf(stderr, "jetsnap demo: publish: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Published %d events for %d accounts and %d carts.\n", n, *accounts, *carts)

	r := snapshotter.NewReader(readerConfig(cfg), nc, nil)
	deadline := time.Now().Add(*timeout)
	for {
		snap, err := r.Latest(ctx, "account.1")
		if err == nil && snap.LastSeq >= first {
			fmt.Fprintf(stdout, "\nLatest snapshot of account.1 (subject %s.account.1 in stream %s):\n\n", cfg.SnapshotPrefix, cfg.SnapshotStream)
			printSnapshot(stdout, snap)
			fmt.Fprintf(stdout, "\nRead it yourself:\n  go run ./cmd/jetsnap get account.1\n  nats stream get %s --last-for %s.account.1\n", cfg.SnapshotStream, cfg.SnapshotPrefix)
			return 0
		}
		if err != nil && !errors.Is(err, snapshotter.ErrNoSnapshot) {
			fmt.Fprintf(stderr, "jetsnap demo: %v\n", err)
			return 1
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(stderr, "jetsnap demo: no new snapshot of account.1 after %v. Is `make run` running against this server, with scripts/account.js? (JETSNAP_EVERY=%d: each actor got %d events)\n", *timeout, cfg.Every, *perActor)
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishDemo publishes perActor events to each actor, interleaved, and
// returns the stream sequence of account.1's first event and the count.
func publishDemo(ctx context.Context, js jetstream.JetStream, p snapshotter.Pattern, accounts, carts, perActor int) (uint64, int, error) {
	var first uint64
	var pending []jetstream.PubAckFuture
	n := 0
	flush := func() error {
		for _, f := range pending {
			select {
			case ack := <-f.Ok():
				if f.Msg().Subject == p.Subject("account", "1", f.Msg().Header.Get("Event-Type")) && first == 0 {
					first = ack.Sequence
				}
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pending = pending[:0]
		return nil
	}
	for i := 0; i < perActor; i++ {
		for a := 1; a <= accounts+carts; a++ {
			typ, id, event, data := demoEvent(i, a, accounts)
			msg := &nats.Msg{Subject: p.Subject(typ, strconv.Itoa(id), event), Data: data, Header: nats.Header{"Event-Type": {event}}}
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				return 0, n, err
			}
			pending = append(pending, f)
			n++
		}
		if err := flush(); err != nil {
			return 0, n, err
		}
	}
	return first, n, nil
}

func demoEvent(i, a, accounts int) (typ string, id int, event string, data []byte) {
	if a <= accounts {
		var body map[string]any
		switch {
		case i == 0:
			body = map[string]any{"type": "Opened", "owner": "owner-" + strconv.Itoa(a), "currency": "EUR"}
		case i%4 == 3:
			body = map[string]any{"type": "Withdrawn", "amount": 5 + i%7}
		default:
			body = map[string]any{"type": "Deposited", "amount": 10 + (i*a)%40}
		}
		data, _ = json.Marshal(body)
		return "account", a, body["type"].(string), data
	}
	skus := []string{"tea", "mug", "pot", "cup"}
	body := map[string]any{"type": "ItemAdded", "sku": skus[i%len(skus)], "qty": 1 + i%3, "price": 300 + 50*(i%5)}
	if i%5 == 4 {
		body = map[string]any{"type": "ItemRemoved", "sku": skus[(i-1)%len(skus)]}
	}
	data, _ = json.Marshal(body)
	return "cart", a - accounts, body["type"].(string), data
}

// startInProcess runs a whole jetsnap on a temporary embedded server and
// returns a stop function and the server's URL.
func startInProcess(ctx context.Context, cfg *config.Config, log *slog.Logger) (func(), string, error) {
	dir, err := os.MkdirTemp("", "jetsnap-demo-")
	if err != nil {
		return nil, "", err
	}
	c := *cfg
	c.DataDir, c.EmbeddedListen = dir, "127.0.0.1:-1"
	quiet := log.With("component", "in-process")
	scripts, err := scripting.Load(c.ScriptsDir, quiet)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	conn, err := connect(ctx, &c, quiet)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(ctx, &c, conn, scripts, quiet); err != nil {
			quiet.Error("in-process jetsnap stopped", "err", err)
		}
	}()
	stop := func() {
		cancel()
		<-done
		conn.Close()
		_ = os.RemoveAll(dir)
	}
	return stop, conn.srv.ClientURL(), nil
}
