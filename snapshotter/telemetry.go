package snapshotter

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jetsnap/jetsnap/scripting"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Option sets what New takes beyond its required dependencies.
type Option func(*options)

type options struct {
	meters  metric.MeterProvider
	tracers trace.TracerProvider
}

// WithMeterProvider makes the snapshotter report its metrics (DESIGN.md,
// Observability) to mp. Without it nothing is recorded. The counters are
// observed from Stats when mp collects; the hot path records nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meters = mp }
}

// WithTracerProvider makes the snapshotter trace its captures with tp: a
// span per capture, linked to the producers' spans of the events it folds
// when they carry a W3C traceparent header. Without it nothing is traced.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracers = tp }
}

// EventStarted is the event of a capture span when a worker takes the
// capture; the span itself starts when the actor became due.
const EventStarted = "started"

// EventFolding is the event of a capture span when its fold got one of the
// Config.Folds slots; from "started" to it the capture read its base and
// waited for the slot (attribute AttrFoldWait).
const EventFolding = "folding"

// AttrFoldWait is the attribute of EventFolding: how long the capture
// waited for the slot, in milliseconds.
const AttrFoldWait = "jetsnap.fold_wait_ms"

// InstrumentationName names the meter and tracer of this package.
const InstrumentationName = "github.com/jetsnap/jetsnap/snapshotter"

// AttrActorType is the attribute that splits the per-type instruments
// (jetsnap.snapshots.published, jetsnap.reducer.errors); Prometheus shows it
// as the label actor_type.
const AttrActorType = "actor_type"

// maxLinks bounds the links of one capture span: a capture may fold
// hundreds of events, most from the same few producer traces.
const maxLinks = 32

// telemetry holds the instruments. The counters of Stats are read by one
// callback when the meter provider collects; only captures record
// synchronously, in the worker, never in Handle.
type telemetry struct {
	tracer      trace.Tracer
	published   metric.Int64Counter
	reducerErrs metric.Int64Counter
	replay      metric.Int64Histogram
	duration    metric.Float64Histogram
	foldWait    metric.Float64Histogram
	size        metric.Int64Histogram
}

func newTelemetry(o options, st *Stats) (*telemetry, error) {
	if o.meters == nil {
		o.meters = metricnoop.NewMeterProvider()
	}
	if o.tracers == nil {
		o.tracers = tracenoop.NewTracerProvider()
	}
	m := o.meters.Meter(InstrumentationName)
	t := &telemetry{tracer: o.tracers.Tracer(InstrumentationName)}
	var errs []error
	check := func(err error) { errs = append(errs, err) }

	var err error
	t.published, err = m.Int64Counter("jetsnap.snapshots.published", metric.WithUnit("{snapshot}"),
		metric.WithDescription("Snapshots stored, by actor type."))
	check(err)
	t.reducerErrs, err = m.Int64Counter("jetsnap.reducer.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Captures whose fold failed (the reducer threw, timed out or returned a bad state), by actor type."))
	check(err)
	t.replay, err = m.Int64Histogram("jetsnap.replay.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events folded per capture (after the folds made ahead of it); its mean is the average replay size."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000))
	check(err)
	t.duration, err = m.Float64Histogram("jetsnap.capture.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from an actor being due to its snapshot being published."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	check(err)
	t.foldWait, err = m.Float64Histogram("jetsnap.fold.wait", metric.WithUnit("s"),
		metric.WithDescription("Time a fold (a capture's, or one made ahead) waited for a fold slot (one per CPU, GOMAXPROCS): long waits mean the folds need more CPU."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
	check(err)
	t.size, err = m.Int64Histogram("jetsnap.snapshot.size", metric.WithUnit("By"),
		metric.WithDescription("Size of the stored state of a snapshot."),
		metric.WithExplicitBucketBoundaries(64, 256, 1<<10, 4<<10, 16<<10, 64<<10, 256<<10, 1<<20, 4<<20))
	check(err)

	// Observed from Stats, so that counting stays a plain atomic add.
	type observed struct {
		inst metric.Int64Observable
		read func() int64
	}
	var obs []observed
	counter := func(name, unit, desc string, v interface{ Load() uint64 }) {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		check(err)
		obs = append(obs, observed{c, func() int64 { return int64(v.Load()) }})
	}
	gauge := func(name, unit, desc string, read func() int64) {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		check(err)
		obs = append(obs, observed{g, read})
	}
	counter("jetsnap.events.consumed", "{event}", "Events received from the event stream.", &st.Consumed)
	counter("jetsnap.snapshots.invalidated", "{snapshot}", "Snapshots not used as a base because the reducer changed.", &st.Invalidated)
	counter("jetsnap.events.redelivered", "{event}", "Deliveries that were not the event's first (AckWait passed, a nak, a restart).", &st.Redelivered)
	counter("jetsnap.events.unmatched", "{event}", "Events whose subject does not fit JETSNAP_SUBJECT_PATTERN.", &st.Unmatched)
	counter("jetsnap.capture.errors", "{error}", "Capture attempts that failed for a reason other than the reducer (each retry counts).", &st.CaptureErrors)
	counter("jetsnap.captures.no_reducer", "{capture}", "Due captures skipped: no reducer for the actor type.", &st.NoScript)
	counter("jetsnap.snapshots.conflicts", "{snapshot}", "Publishes refused because the snapshot subject changed since the capture took its base (another snapshot, a purge).", &st.Conflicts)
	counter("jetsnap.tallies.resynced", "{tally}", "Tallies counted again from the streams (new actors, restarts, redeliveries).", &st.Resyncs)
	counter("jetsnap.capture.base_reads", "{read}", "Capture attempts and folds made ahead that read their base snapshot from the stream, none being kept in memory.", &st.BaseReads)
	counter("jetsnap.folds.ahead", "{fold}", "Folds made ahead of a placement, kept for the actor's next capture.", &st.FoldsAhead)
	counter("jetsnap.replay.stream_reads", "{event}", "Events captures read back from the stream instead of memory.", &st.StreamReads)
	gauge("jetsnap.actors.tracked", "{actor}", "Actors with a tally in memory.", st.Tracked.Load)
	gauge("jetsnap.captures.queued", "{capture}", "Captures due and waiting for a worker.", func() int64 {
		return max(st.Queued.Load()-st.Running.Load(), 0)
	})
	gauge("jetsnap.captures.running", "{capture}", "Captures in flight.", st.Running.Load)
	gauge("jetsnap.deliveries.waiting", "{event}", "Events delivered and not counted yet: waiting, in order, behind the first reads of a new actor.", st.Waiting.Load)
	gauge("jetsnap.buffer.size", "By", "Memory held by events buffered for captures and by the snapshots kept as their bases.", st.Buffered.Load)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	insts := make([]metric.Observable, len(obs))
	for i, o := range obs {
		insts[i] = o.inst
	}
	// The registration lasts as long as the meter provider.
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, ob := range obs {
			o.ObserveInt64(ob.inst, ob.read())
		}
		return nil
	}, insts...); err != nil {
		return nil, err
	}
	return t, nil
}

// Capture span attributes.
const (
	attrActor   = attribute.Key("jetsnap.actor")
	attrVersion = attribute.Key("jetsnap.version")
	attrSeq     = attribute.Key("jetsnap.last_seq")
	attrFolded  = attribute.Key("jetsnap.events_folded")
	attrSize    = attribute.Key("jetsnap.snapshot.size")
	attrOutcome = attribute.Key("jetsnap.outcome")
)

// startCapture starts the span of job j. It begins when the actor became
// due, so its length is the capture duration, queueing included, and links
// to the producer's span of the triggering event.
func (t *telemetry) startCapture(ctx context.Context, j job) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attrActor.String(j.key), attribute.String(AttrActorType, j.typ),
			attrVersion.Int64(int64(j.version)), attrSeq.Int64(int64(j.seq)),
		),
	}
	if !j.queued.IsZero() {
		opts = append(opts, trace.WithTimestamp(j.queued))
	}
	ctx, span := t.tracer.Start(ctx, "jetsnap.capture "+j.typ, opts...)
	span.AddEvent(EventStarted) // a worker took it: the span's start is when it was queued
	if span.IsRecording() && j.msg != nil {
		if sc := producerSpan(j.msg); sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attrSeq.Int64(int64(j.seq))}})
			ctx = context.WithValue(ctx, linkedKey{}, keyOf(sc)) // the fold sees it again: link once
		}
	}
	return ctx, span
}

// spanKey identifies a span for deduplicating links.
type spanKey struct {
	trace trace.TraceID
	span  trace.SpanID
}

func keyOf(sc trace.SpanContext) spanKey { return spanKey{sc.TraceID(), sc.SpanID()} }

// linkedKey is the context key of the spanKey startCapture linked.
type linkedKey struct{}

// folded records one fold of events: the replay size, and on the capture
// span the count and the links to the producers' spans.
func (t *telemetry) folded(ctx context.Context, events []scripting.Event) {
	t.replay.Record(ctx, int64(len(events)))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrFolded.Int(len(events)))
	seen := make(map[spanKey]bool)
	if k, ok := ctx.Value(linkedKey{}).(spanKey); ok {
		seen[k] = true
	}
	for i := len(events) - 1; i >= 0 && len(seen) < maxLinks; i-- { // the newest first
		sc := contextFromHeaders(events[i].Headers)
		k := keyOf(sc)
		if !sc.IsValid() || seen[k] {
			continue
		}
		seen[k] = true
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attrSeq.Int64(int64(events[i].Seq))}})
	}
}

// folding records that a fold (a capture's, or one made ahead) got a fold
// slot after waiting for it.
func (t *telemetry) folding(ctx context.Context, waited time.Duration) {
	t.foldWait.Record(ctx, waited.Seconds())
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventFolding, trace.WithAttributes(attribute.Float64(AttrFoldWait, float64(waited)/float64(time.Millisecond))))
	}
}

// retry notes on the span a capture attempt that failed and is retried.
func (t *telemetry) retry(span trace.Span, err error) {
	span.AddEvent("retry", trace.WithAttributes(attribute.String("error", err.Error())))
}

// settled records the outcome of job j, as settle decided it, and ends its
// span.
func (t *telemetry) settled(ctx context.Context, span trace.Span, j job, snap Snapshot, err error) {
	typ := metric.WithAttributes(attribute.String(AttrActorType, j.typ))
	var rerr *ReducerError
	outcome := "published"
	switch {
	case err == nil:
		t.published.Add(ctx, 1, typ)
		t.size.Record(ctx, int64(len(snap.State)))
		if !j.queued.IsZero() {
			t.duration.Record(ctx, time.Since(j.queued).Seconds())
		}
		span.SetAttributes(attrSize.Int(len(snap.State)))
	case errors.Is(err, errUpToDate):
		outcome = "up_to_date"
	case errors.As(err, &rerr):
		outcome = "reducer_error"
		t.reducerErrs.Add(ctx, 1, typ)
	case transient(err):
		outcome = "abandoned"
	default:
		outcome = "failed"
	}
	span.SetAttributes(attrOutcome.String(outcome))
	if err != nil && !errors.Is(err, errUpToDate) {
		span.RecordError(err)
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// traceContext reads W3C traceparent and tracestate headers.
var traceContext propagation.TraceContext

// producerSpan returns the span context a message's traceparent header
// names, or an invalid one.
func producerSpan(msg jetstream.Msg) trace.SpanContext {
	return contextFromHeaders(msg.Headers())
}

func contextFromHeaders(h map[string][]string) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), headerCarrier(h))
	return trace.SpanContextFromContext(ctx)
}

// headerCarrier reads NATS headers, whose keys keep the case they were
// sent with: "traceparent" and "Traceparent" both match.
type headerCarrier map[string][]string

func (h headerCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}
