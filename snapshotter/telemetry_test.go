package snapshotter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTelemetry: after a workload, the metrics say what happened (events,
// snapshots by type, replay sizes, snapshot sizes) and each capture has a
// span linked to the producers' spans of the events it folded.
func TestTelemetry(t *testing.T) {
	e := newEnv(t)
	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tracers := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = meters.Shutdown(context.Background()); _ = tracers.Shutdown(context.Background()) })

	o := defaults()
	o.strategy = snapshotter.Strategy{Kind: snapshotter.KindHybrid, Every: 10, MinEvents: 3, MaxEvents: 25}
	o.extra = []snapshotter.Option{snapshotter.WithMeterProvider(meters), snapshotter.WithTracerProvider(tracers)}
	j := e.run(o)

	// 10 actors × 35 events: snapshots at 10, 20, 30, each folding the 10
	// events after the previous one. Actor 0's events each come from their
	// own producer span, actor 1's all from one; the others carry none.
	const actors, perActor = 10, 35
	producer := sdktrace.NewTracerProvider().Tracer("producer")
	shared := newSpan(producer)
	var own []trace.SpanContext // actor 0's, by version - 1
	for i := range perActor {
		for a := range actors {
			h := nats.Header{}
			switch a {
			case 0:
				sc := newSpan(producer)
				own = append(own, sc)
				h["traceparent"] = []string{traceparent(sc)} // lower case, as most producers send it
			case 1:
				h.Set("Traceparent", traceparent(shared))
			}
			data, _ := json.Marshal(map[string]any{"type": "Deposited", "i": i})
			if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: fmt.Sprintf("events.account.%d", a), Data: data, Header: h}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 30*time.Second, "snapshots to catch up", e.settled(o.strategy, e.allEvents()))
	const captures = actors * 3

	var m map[string]metricdata.Aggregation
	waitFor(t, 10*time.Second, "metrics of every event and capture", func() bool {
		m = collect(t, reader)
		return sum(m["jetsnap.events.consumed"]) == actors*perActor && sum(m["jetsnap.snapshots.published"]) == captures
	})
	if n := e.check(o.strategy); n != captures {
		t.Fatalf("%d snapshots checked, want %d", n, captures)
	}
	published := m["jetsnap.snapshots.published"].(metricdata.Sum[int64])
	if len(published.DataPoints) != 1 {
		t.Errorf("jetsnap.snapshots.published = %+v, want one point with actor_type=account", published.DataPoints)
	} else if typ, _ := published.DataPoints[0].Attributes.Value("actor_type"); typ.AsString() != "account" {
		t.Errorf("jetsnap.snapshots.published = %+v, want one point with actor_type=account", published.DataPoints)
	}
	replay := m["jetsnap.replay.events"].(metricdata.Histogram[int64]).DataPoints[0]
	if replay.Count != captures || replay.Sum != captures*10 || uint64(replay.Sum) != j.snap.Stats().ReplayEvents.Load() {
		t.Errorf("jetsnap.replay.events: count %d sum %d, want %d captures of 10 events each (Stats: %d)", replay.Count, replay.Sum, captures, j.snap.Stats().ReplayEvents.Load())
	}
	var stateBytes int64
	for _, snaps := range e.allSnapshots() {
		for _, s := range snaps {
			stateBytes += int64(len(s.State))
		}
	}
	size := m["jetsnap.snapshot.size"].(metricdata.Histogram[int64]).DataPoints[0]
	if size.Count != captures || size.Sum != stateBytes {
		t.Errorf("jetsnap.snapshot.size: count %d sum %d, want %d snapshots of %d bytes in all", size.Count, size.Sum, captures, stateBytes)
	}
	if d := m["jetsnap.capture.duration"].(metricdata.Histogram[float64]).DataPoints[0]; d.Count != captures || d.Sum <= 0 {
		t.Errorf("jetsnap.capture.duration: count %d sum %v, want %d positive durations", d.Count, d.Sum, captures)
	}
	if d := m["jetsnap.fold.wait"].(metricdata.Histogram[float64]).DataPoints[0]; d.Count != captures {
		t.Errorf("jetsnap.fold.wait: count %d, want one wait per capture (%d)", d.Count, captures)
	}
	for name, want := range map[string]int64{
		"jetsnap.actors.tracked": actors, "jetsnap.events.redelivered": 0,
		"jetsnap.snapshots.invalidated": 0, "jetsnap.reducer.errors": 0,
		"jetsnap.capture.base_reads": actors, // each actor's first capture: later ones take the base they kept
		"jetsnap.captures.queued":    0, "jetsnap.captures.running": 0,
	} {
		if got := sum(m[name]); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}

	// Spans end after settling, just after the snapshot is visible.
	var got map[string]sdktrace.ReadOnlySpan // by actor@version
	waitFor(t, 10*time.Second, "a span per capture", func() bool {
		got = map[string]sdktrace.ReadOnlySpan{}
		for _, s := range spans.Ended() {
			attrs := attribute.NewSet(s.Attributes()...)
			actor, _ := attrs.Value("jetsnap.actor")
			version, _ := attrs.Value("jetsnap.version")
			got[fmt.Sprintf("%s@%d", actor.AsString(), version.AsInt64())] = s
		}
		return len(got) == captures
	})
	for key, s := range got {
		attrs := attribute.NewSet(s.Attributes()...)
		if v, _ := attrs.Value("jetsnap.events_folded"); v.AsInt64() != 10 || s.Name() != "jetsnap.capture account" {
			t.Errorf("%s: span %q folded %d events, want jetsnap.capture account and 10", key, s.Name(), v.AsInt64())
		}
		if v, _ := attrs.Value("jetsnap.outcome"); v.AsString() != "published" {
			t.Errorf("%s: outcome %q", key, v.AsString())
		}
		// Queued, then started by a worker, then folding, then ended.
		if ev := s.Events(); len(ev) != 2 || ev[0].Name != snapshotter.EventStarted || ev[1].Name != snapshotter.EventFolding ||
			ev[0].Time.Before(s.StartTime()) || ev[1].Time.Before(ev[0].Time) || ev[1].Time.After(s.EndTime()) {
			t.Errorf("%s: events %+v, want %q then %q, in order between the span's start %v and end %v", key, ev, snapshotter.EventStarted, snapshotter.EventFolding, s.StartTime(), s.EndTime())
		} else if a := ev[1].Attributes; len(a) != 1 || a[0].Key != "jetsnap.fold_wait_ms" || a[0].Value.AsFloat64() < 0 {
			t.Errorf("%s: %q event without a jetsnap.fold_wait_ms: %+v", key, snapshotter.EventFolding, ev[1].Attributes)
		}
	}
	links := func(key string) []trace.SpanContext {
		var out []trace.SpanContext
		for _, l := range got[key].Links() {
			out = append(out, l.SpanContext)
		}
		return out
	}
	// account.0@20 folded versions 11..20, each from its own producer span.
	want := map[string]bool{}
	for _, sc := range own[10:20] {
		want[traceparent(sc)] = true
	}
	if l := links("account.0@20"); len(l) != 10 {
		t.Errorf("account.0@20 has %d links, want 10", len(l))
	} else {
		for _, sc := range l {
			if !want[traceparent(sc)] {
				t.Errorf("account.0@20 links to %s, not a producer span of its events", traceparent(sc))
			}
		}
	}
	if l := links("account.1@30"); len(l) != 1 || l[0].SpanID() != shared.SpanID() || l[0].TraceID() != shared.TraceID() {
		t.Errorf("account.1@30 links %v, want only the shared producer span %v", l, shared)
	}
	if l := links("account.2@10"); len(l) != 0 {
		t.Errorf("account.2@10 links %v, want none: its events carry no traceparent", l)
	}
}

func newSpan(tr trace.Tracer) trace.SpanContext {
	_, span := tr.Start(context.Background(), "publish")
	span.End()
	return span.SpanContext()
}

func traceparent(sc trace.SpanContext) string {
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// collect reads every metric of the snapshotter by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum adds up the data points of a counter or gauge; 0 when absent.
func sum(a metricdata.Aggregation) int64 {
	var n int64
	switch a := a.(type) {
	case metricdata.Sum[int64]:
		for _, p := range a.DataPoints {
			n += p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range a.DataPoints {
			n += p.Value
		}
	}
	return n
}
