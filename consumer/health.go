package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Option sets what New takes beyond its required dependencies.
type Option func(*options)

type options struct {
	meters metric.MeterProvider
}

// WithMeterProvider makes the consumer report jetsnap.consumer.pending
// (events not yet delivered to jetsnap) and jetsnap.consumer.ack_pending
// (delivered, not yet acknowledged), as of its last poll of the consumer's
// info. Without it nothing is recorded.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meters = mp }
}

// InstrumentationName names the meter of this package.
const InstrumentationName = "github.com/jetsnap/jetsnap/consumer"

// ErrNotConsuming is Ready's answer before Run has bound the durable
// consumer, and after Run has started to stop.
var ErrNotConsuming = errors.New("consumer: not consuming")

// health is what Run last learnt of the durable consumer.
type health struct {
	mu      sync.Mutex
	bound   bool  // Run is consuming
	why     error // while not bound: why Run cannot consume yet (a failing bind or reset)
	err     error // the last info poll failed
	polled  bool  // an info poll succeeded once
	pending uint64
	acks    int
}

func (c *Consumer) instrument(mp metric.MeterProvider) error {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter(InstrumentationName)
	pending, err1 := m.Int64ObservableGauge("jetsnap.consumer.pending", metric.WithUnit("{event}"),
		metric.WithDescription("Events of the durable consumer not yet delivered to jetsnap, as of the last poll."))
	acks, err2 := m.Int64ObservableGauge("jetsnap.consumer.ack_pending", metric.WithUnit("{event}"),
		metric.WithDescription("Events delivered to jetsnap and not yet acknowledged, as of the last poll."))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	// The registration lasts as long as the meter provider.
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c.health.mu.Lock()
		defer c.health.mu.Unlock()
		if c.health.polled {
			o.ObserveInt64(pending, int64(c.health.pending))
			o.ObserveInt64(acks, int64(c.health.acks))
		}
		return nil
	}, pending, acks)
	return err
}

// Ready returns nil when the consumer is consuming: connected to NATS, the
// durable consumer bound by Run, and its last info poll answered. Otherwise
// it says why not. It is safe for concurrent use.
func (c *Consumer) Ready() error {
	if nc := c.js.Conn(); nc != nil && nc.Status() != nats.CONNECTED {
		return fmt.Errorf("consumer: NATS connection %s", nc.Status())
	}
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	switch {
	case !c.health.bound && c.health.why != nil:
		return fmt.Errorf("%w: %w", ErrNotConsuming, c.health.why)
	case !c.health.bound:
		return ErrNotConsuming
	case c.health.err != nil:
		return c.health.err
	}
	return nil
}

// Pending returns the number of events not yet delivered to jetsnap, as of
// the last successful poll, and false before any poll succeeded.
func (c *Consumer) Pending() (uint64, bool) {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	return c.health.pending, c.health.polled
}

func (c *Consumer) setBound(bound bool) {
	c.health.mu.Lock()
	c.health.bound = bound
	c.health.why = nil
	c.health.mu.Unlock()
}

// setWhy records why Run cannot consume yet (nil: no known reason), for
// Ready to tell.
func (c *Consumer) setWhy(err error) {
	c.health.mu.Lock()
	c.health.why = err
	c.health.mu.Unlock()
}

// poll reads the consumer's info every Config.InfoInterval until ctx ends,
// and every fifth of it while the reads fail, so that readiness comes back
// soon after an outage.
//
// With AckBatch it calls stale when the consumer's ack floor is past its
// last delivery: an ack sent before the consumer was reset (by a process
// that was handing the durable over) reached the server after the reset,
// and the server ignores acks of deliveries below that floor until the
// consumer is reset again.
func (c *Consumer) poll(ctx context.Context, cons jetstream.Consumer, gone, stale func()) {
	every := c.cfg.InfoInterval
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := cons.Info(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			gone()
		}
		if err == nil && stale != nil && info.AckFloor.Consumer > info.Delivered.Consumer {
			c.log.Warn("consumer: the ack floor is past the last delivery (an ack from before a reset); resetting again",
				"durable", c.cfg.Durable, "ack_floor", info.AckFloor.Consumer, "delivered", info.Delivered.Consumer)
			stale()
		}
		c.health.mu.Lock()
		wasErr := c.health.err
		if err != nil {
			c.health.err = fmt.Errorf("consumer: durable %q on stream %q: %w", c.cfg.Durable, c.cfg.Stream, err)
		} else {
			c.health.err = nil
			c.health.polled = true
			c.health.pending, c.health.acks = info.NumPending, info.NumAckPending
		}
		c.health.mu.Unlock()
		wait := every
		switch {
		case err != nil && wasErr == nil:
			c.log.Warn("consumer info unavailable; not ready until it answers", "durable", c.cfg.Durable, "err", err)
			wait = every / 5
		case err != nil:
			wait = every / 5
		case wasErr != nil:
			c.log.Info("consumer info available again", "durable", c.cfg.Durable, "pending", info.NumPending)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
