package snapshotter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// TestHostileInput: bad payloads reach the reducer (as strings when not
// JSON) and get snapshots; reducers that throw, loop, grow, return
// undefined or a state over the limit affect only their actor, which is
// counted and reported by the service; other actors go on; once the
// reducer is fixed (hot reload), the broken actors catch up without new
// events.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	e.script("account", "testdata/hostile.js")
	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 2}
	o.limits = scripting.Limits{Timeout: 300 * time.Millisecond, MaxStateBytes: 1 << 20}
	j := e.run(o)

	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	big := `{"blob":"` + strings.Repeat("y", 1000*1024) + `"}`
	payloads := map[string]string{
		"utf8":   "\xff\xfe\xfd not utf-8",
		"text":   "plain text, not JSON",
		"array":  `[1,2,3]`,
		"number": `42`,
		"big":    big,
		"deep":   deep,
		"huge":   `{"n":1e400,"m":123456789012345678901234567890}`,
		"proto":  `{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}`,
		"empty":  ``,
	}
	ctx := context.Background()
	pub := func(subject, typ, data string) {
		t.Helper()
		msg := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{"Event-Type": {typ}}}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
	}
	for i := 0; i < 4; i++ {
		for name, data := range payloads {
			pub("events.account."+name, "Deposited", data)
		}
		for _, bad := range []string{"Boom", "Loop", "Grow", "Undef", "Huge"} {
			typ := "Deposited"
			if i == 1 {
				typ = bad // the second event misbehaves: both placements (2, 4) fail
			}
			pub("events.account.bad"+bad, typ, `{"amount":1}`)
		}
		pub("events.account.good", "Deposited", `{"amount":1}`)
	}

	r := snapshotter.NewReader(snapshotter.ReaderConfig{Pattern: snapshotter.MustPattern("events.{type}.{id}")}, e.nc, nil)
	atVersion := func(actor string, v uint64) func() bool {
		return func() bool {
			s, err := r.Latest(ctx, actor)
			return err == nil && s.Version == v
		}
	}
	for name := range payloads {
		waitFor(t, 30*time.Second, "a snapshot of account."+name, atVersion("account."+name, 4))
	}
	waitFor(t, 30*time.Second, "account.good", atVersion("account.good", 4))
	waitFor(t, 30*time.Second, "the failed captures", func() bool { return j.snap.Stats().ReducerErrors.Load() >= 10 })

	s, _ := r.Latest(ctx, "account.text")
	var st struct{ Kinds map[string]int }
	if err := json.Unmarshal(s.State, &st); err != nil || st.Kinds["string"] != 4 {
		t.Errorf("non-JSON payloads: %s (%v), want 4 strings", s.State, err)
	}
	for _, bad := range []string{"Boom", "Loop", "Grow", "Undef", "Huge"} {
		if _, err := r.Latest(ctx, "account.bad"+bad); err == nil {
			t.Errorf("account.bad%s has a snapshot, want none while its reducer fails", bad)
		}
	}
	svc, err := snapshotter.StartService(snapshotter.ServiceConfig{}, e.nc, e.reader(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	m, err := e.nc.Request("jetsnap.state.account.badBoom", nil, 5*time.Second)
	if err != nil || m.Header.Get(micro.ErrorCodeHeader) != snapshotter.CodeReducer || !strings.Contains(m.Header.Get(micro.ErrorHeader), "Boom at version 2") {
		t.Errorf("state of account.badBoom: %v %v", err, m.Header)
	}

	// Fix the reducer: the broken actors catch up with no new event.
	e.script("account", "testdata/hostile_fixed.js")
	for _, bad := range []string{"Boom", "Loop", "Grow", "Undef", "Huge"} {
		waitFor(t, 30*time.Second, "account.bad"+bad+" to catch up", atVersion("account.bad"+bad, 4))
	}
}

// TestUnmatchedSubjects: events whose subject does not fit the pattern
// (here delivered by a consumer with a broader filter than jetsnap's own)
// are acknowledged and counted, never fatal; the others are tallied.
func TestUnmatchedSubjects(t *testing.T) {
	e := newEnv(t)
	scripts := mustLoad(t, e.scripts)
	snap, err := snapshotter.New(snapshotter.Config{
		Pattern:  snapshotter.MustPattern("events.{type}.{id}"),
		Strategy: snapshotter.Strategy{Kind: snapshotter.KindInterval, Every: 100},
	}, e.nc, e.js, scripts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = snap.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for _, subject := range []string{"events.account.1.extra", "events.account", "events.account.1", "events.a-b_c.id:7@x~"} {
		if _, err := e.js.Publish(ctx, subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	stream, _ := e.js.Stream(ctx, "EVENTS")
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "broad", FilterSubject: "events.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		snap.Handle(m)
	}
	waitFor(t, 10*time.Second, "every event acknowledged", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if s := snap.Stats(); s.Unmatched.Load() != 2 || s.Tracked.Load() != 2 {
		t.Fatalf("unmatched %d, tracked %d; want 2 and 2", s.Unmatched.Load(), s.Tracked.Load())
	}
}
