package main

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetsnap/jetsnap/snapshotter"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// captureClock times the pipeline's captures, while on, from their spans:
// when each became due (the span's start), when a worker took it (its
// "started" event), how long it waited for a fold slot (its "folding"
// events) and when it was settled (the span's end). It is the
// bench's tracer provider's sampler and span processor: off, it samples
// nothing, so the pipeline's spans cost what they cost without telemetry.
type captureClock struct {
	on    atomic.Bool
	mu    sync.Mutex
	times map[uint64]captureTimes // by the EVENTS sequence of the capture's last event
}

type captureTimes struct {
	due, started, ended time.Time
	foldWait            time.Duration // summed over the attempts
}

func (c *captureClock) tracerProvider() *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSampler(c), sdktrace.WithSpanProcessor(c))
}

// start clears the times and starts recording.
func (c *captureClock) start() {
	c.mu.Lock()
	c.times = make(map[uint64]captureTimes)
	c.mu.Unlock()
	c.on.Store(true)
}

// stop stops recording and returns the times recorded.
func (c *captureClock) stop() map[uint64]captureTimes {
	c.on.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.times
}

func (c *captureClock) ShouldSample(sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if c.on.Load() {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop}
}

func (c *captureClock) Description() string { return "jetsnap bench capture clock" }

func (c *captureClock) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (c *captureClock) OnEnd(s sdktrace.ReadOnlySpan) {
	if !strings.HasPrefix(s.Name(), "jetsnap.capture ") {
		return
	}
	t := captureTimes{due: s.StartTime(), ended: s.EndTime()}
	for _, ev := range s.Events() {
		switch ev.Name {
		case snapshotter.EventStarted:
			t.started = ev.Time
		case snapshotter.EventFolding:
			for _, a := range ev.Attributes {
				if a.Key == snapshotter.AttrFoldWait {
					t.foldWait += time.Duration(a.Value.AsFloat64() * float64(time.Millisecond))
				}
			}
		}
	}
	for _, a := range s.Attributes() {
		if a.Key == "jetsnap.last_seq" && !t.started.IsZero() {
			c.mu.Lock()
			if c.times != nil {
				c.times[uint64(a.Value.AsInt64())] = t
			}
			c.mu.Unlock()
		}
	}
}

func (c *captureClock) Shutdown(context.Context) error   { return nil }
func (c *captureClock) ForceFlush(context.Context) error { return nil }
