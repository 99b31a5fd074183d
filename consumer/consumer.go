// Package consumer owns jetsnap's side of NATS: the connection (or an
// embedded nats-server), the EVENTS stream check, and the durable pull
// consumer that delivers events, in order, to one handler. It knows nothing
// of reducers or snapshots.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AckMode is how the durable consumer's events are acknowledged.
type AckMode string

const (
	// AckBatch gives the durable the AckAll policy and one pinned priority
	// group: one process consumes at a time, and acknowledges many events
	// with one ack. Other processes on the durable stand by; the newest one
	// to start takes over, and a standby takes over from one that died
	// after Config.PinnedTTL.
	AckBatch AckMode = "batch"
	// AckEach gives the durable the AckExplicit policy: one ack per event,
	// and processes on the durable share its events.
	AckEach AckMode = "each"
)

const (
	// PinGroup is the priority group of an AckBatch durable.
	PinGroup = "jetsnap"
	// pullExpiry is how long a pull request lasts; an idle process
	// renews it, and with it its pin, this often.
	pullExpiry = 5 * time.Second
)

// Config describes the durable consumer.
type Config struct {
	Stream        string        // EVENTS stream name (JETSNAP_STREAM)
	Durable       string        // durable consumer name (JETSNAP_DURABLE)
	Filter        string        // filter subject, from the subject pattern
	AckMode       AckMode       // JETSNAP_ACK_MODE, default AckBatch
	PinnedTTL     time.Duration // AckBatch: how long a process that stopped pulling (died) keeps the durable before a standby takes over, default 15s
	AckWait       time.Duration // default 30s
	MaxAckPending int           // default 20000
	PullBatch     int           // messages buffered by the client, default 500
	InfoInterval  time.Duration // how often Run reads the consumer's info (Ready, Pending), default 5s
	OnRebind      func()        // called when Run had to bind the durable consumer again
	OnReset       func()        // AckBatch: called when Run reset the consumer to its ack floor
	// OnSessionEnd is called once the handler gets no more deliveries of a
	// session, before the session's last acks: the handler must finish the
	// deliveries it holds back (Snapshotter.Flush), so that their acks
	// belong to the session that delivered them.
	OnSessionEnd func()
}

func (c *Config) setDefaults() {
	if c.AckMode == "" {
		c.AckMode = AckBatch
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = 15 * time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 20000
	}
	if c.PullBatch <= 0 {
		c.PullBatch = 500
	}
	if c.InfoInterval <= 0 {
		c.InfoInterval = 5 * time.Second
	}
}

// Consumer delivers the events of the durable consumer to a handler.
type Consumer struct {
	cfg    Config
	js     jetstream.JetStream
	log    *slog.Logger
	health health
}

// New returns a Consumer; it does not touch the server until Run. Options
// add metrics (WithMeterProvider).
func New(cfg Config, js jetstream.JetStream, log *slog.Logger, opts ...Option) *Consumer {
	cfg.setDefaults()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Consumer{cfg: cfg, js: js, log: log}
	if err := c.instrument(o.meters); err != nil {
		log.Warn("consumer metrics unavailable", "err", err)
	}
	return c
}

// Bind checks that the stream exists and creates or updates the durable
// pull consumer with the configured filter. A missing stream is an error
// naming it and JETSNAP_STREAM.
func (c *Consumer) Bind(ctx context.Context) (jetstream.Consumer, error) {
	stream, err := c.js.Stream(ctx, c.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("consumer: stream %q not found: create it (the producers' event stream) or set JETSNAP_STREAM to its name", c.cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: look up stream %q: %w", c.cfg.Stream, err)
	}
	if !stream.CachedInfo().Config.AllowDirect {
		return nil, fmt.Errorf("consumer: stream %q does not allow direct gets, which jetsnap uses to count and read an actor's events: enable it with `nats stream edit %s --allow-direct`", c.cfg.Stream, c.cfg.Stream)
	}
	want := jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		Description:   "jetsnap: tallies events and captures snapshots",
		FilterSubject: c.cfg.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxAckPending: c.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if c.cfg.AckMode == AckBatch {
		want.AckPolicy = jetstream.AckAllPolicy
		want.PriorityGroups = []string{PinGroup}
		want.PriorityPolicy = jetstream.PriorityPolicyPinned
		want.PinnedTTL = c.cfg.PinnedTTL
	}
	if old, err := stream.Consumer(ctx, c.cfg.Durable); err == nil {
		if got := old.CachedInfo().Config.AckPolicy; got != want.AckPolicy {
			other := AckEach
			if got == jetstream.AckAllPolicy {
				other = AckBatch
			}
			return nil, fmt.Errorf("consumer: durable %q on stream %q has the ack policy %s, but JETSNAP_ACK_MODE=%s needs %s, which an existing durable cannot change to: set JETSNAP_ACK_MODE=%s, or delete the durable (`nats consumer rm %s %s`) and jetsnap creates it anew, counting every actor again from its snapshots",
				c.cfg.Durable, c.cfg.Stream, got, c.cfg.AckMode, want.AckPolicy, other, c.cfg.Stream, c.cfg.Durable)
		}
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("consumer: create or update durable %q on stream %q (filter %s): %w", c.cfg.Durable, c.cfg.Stream, c.cfg.Filter, err)
	}
	return cons, nil
}

// Run binds the durable consumer and calls handle for each event, one at a
// time, in delivery order, until ctx ends. Then it stops pulling, lets
// handle see the events already buffered, and returns. handle owns the
// acknowledgement of each message; with AckBatch, acknowledgements made
// after Run returned are still sent.
//
// A missing stream at start is an error. If the durable consumer disappears
// later (the stream was deleted and recreated, or someone deleted the
// consumer), Run binds it again as soon as it can, and calls
// Config.OnRebind between the last handle call on the old consumer and the
// first on the new one.
//
// With AckBatch, Run resets the consumer to its ack floor when it starts
// and whenever a delivery went elsewhere (see acker), and calls
// Config.OnReset before the first delivery that follows.
func (c *Consumer) Run(ctx context.Context, handle func(jetstream.Msg)) error {
	defer c.setWhy(nil)
	cons, err := c.Bind(ctx)
	if err != nil {
		return err
	}
	takeOver := true
	for {
		began := time.Now()
		end, err := c.consume(ctx, cons, handle, takeOver)
		takeOver = false
		switch {
		case err != nil || end == stopped:
			return err
		case end == interrupted:
			c.log.Warn("consumer: a delivery went elsewhere (another jetsnap took the durable over, or the connection dropped mid-batch); resetting the consumer to its ack floor",
				"stream", c.cfg.Stream, "durable", c.cfg.Durable)
			if time.Since(began) < time.Second {
				// Two processes trading the durable: let one settle.
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
			continue
		}
		c.log.Warn("consumer: the durable consumer is gone (stream deleted or recreated?); binding it again",
			"stream", c.cfg.Stream, "durable", c.cfg.Durable)
		if cons, err = c.rebind(ctx); cons == nil {
			return err
		}
		if c.cfg.OnRebind != nil {
			c.cfg.OnRebind()
		}
	}
}

// rebind binds the durable consumer, retrying until ctx ends (nil, nil).
func (c *Consumer) rebind(ctx context.Context) (jetstream.Consumer, error) {
	backoff := 100 * time.Millisecond
	for {
		cons, err := c.Bind(ctx)
		if err == nil {
			c.setWhy(nil)
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		c.setWhy(fmt.Errorf("cannot bind durable %q: %w", c.cfg.Durable, err))
		c.log.Warn("consumer: cannot bind yet; retrying", "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// reset resets an AckBatch consumer to its ack floor, retrying until ctx
// ends. It reports whether the consumer is gone.
func (c *Consumer) reset(ctx context.Context) (gone bool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.js.ResetConsumer(rctx, c.cfg.Stream, c.cfg.Durable)
		cancel()
		switch {
		case err == nil:
			c.setWhy(nil)
			if c.cfg.OnReset != nil {
				c.cfg.OnReset()
			}
			return false
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			return true
		}
		if ctx.Err() != nil {
			break
		}
		c.setWhy(fmt.Errorf("cannot reset durable %q to its ack floor (batched acks need the permission $JS.API.CONSUMER.RESET.%s.%s and nats-server 2.14 or later, or JETSNAP_ACK_MODE=each): %w",
			c.cfg.Durable, c.cfg.Stream, c.cfg.Durable, err))
		c.log.Warn("consumer: cannot reset the durable to its ack floor yet (batched acks need the permission $JS.API.CONSUMER.RESET."+c.cfg.Stream+"."+c.cfg.Durable+" and nats-server 2.14 or later; or set JETSNAP_ACK_MODE=each); retrying",
			"retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return false
}

// ending says why a consume session ended.
type ending int

const (
	stopped     ending = iota // ctx ended
	gone                      // the durable consumer disappeared
	interrupted               // AckBatch: a delivery went elsewhere
)

// consume delivers from cons until ctx ends, the consumer disappears, or
// (AckBatch) a delivery went elsewhere. With AckBatch it first resets the
// consumer to its ack floor, and with takeOver it then frees the durable's
// pin, so that a process that died does not hold it for PinnedTTL.
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer, handle func(jetstream.Msg), takeOver bool) (ending, error) {
	lost := make(chan struct{})
	var once sync.Once
	markLost := func() { once.Do(func() { close(lost) }) }
	broken := make(chan struct{})
	var breakOnce sync.Once
	interrupt := func() { breakOnce.Do(func() { close(broken) }) }
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(c.cfg.PullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
				markLost()
			case errors.Is(err, jetstream.ErrPinIDMismatch):
				c.log.Info("consumer: another process holds the durable; standing by", "durable", c.cfg.Durable)
			default:
				// The client re-pulls by itself after missed heartbeats and
				// reconnects; these are reported, not fatal.
				c.log.Warn("consumer: pull interrupted", "err", err)
			}
		}),
	}
	deliver := handle
	var acks *acker
	if c.cfg.AckMode == AckBatch {
		if c.reset(ctx) {
			return gone, nil
		}
		if ctx.Err() != nil {
			return stopped, nil
		}
		acks = newAcker()
		opts = append(opts, jetstream.PullPriorityGroup(PinGroup), jetstream.PullExpiry(max(time.Second, min(pullExpiry, c.cfg.PinnedTTL/3))))
		deliver = func(msg jetstream.Msg) {
			d, ok := acks.admit(msg)
			if !ok {
				interrupt()
				return // not handled, not acknowledged: delivered again after the reset
			}
			handle(d)
			if acks.due() {
				acks.flush()
			}
		}
	}
	if acks != nil && takeOver {
		// Before pulling: a pin that changes mid-session ends it.
		c.unpin(ctx)
	}
	cc, err := cons.Consume(deliver, opts...)
	if err != nil {
		return stopped, fmt.Errorf("consumer: start consuming %q: %w", c.cfg.Durable, err)
	}
	c.log.Info("consuming", "stream", c.cfg.Stream, "durable", c.cfg.Durable, "filter", c.cfg.Filter, "ack_mode", c.cfg.AckMode)
	c.setBound(true)
	sessCtx, endSession := context.WithCancel(ctx)
	var bg sync.WaitGroup
	var stale func()
	if acks != nil {
		stale = interrupt
	}
	bg.Go(func() { c.poll(sessCtx, cons, markLost, stale) })
	if acks != nil {
		bg.Go(func() {
			tick := time.NewTicker(ackInterval)
			defer tick.Stop()
			for {
				select {
				case <-sessCtx.Done():
					return
				case <-tick.C:
					acks.flush()
					if acks.stuck(2 * c.cfg.AckWait) {
						c.log.Warn("consumer: an event handed back was not delivered again; resetting", "durable", c.cfg.Durable)
						interrupt()
						return
					}
				}
			}
		})
	}
	end := stopped
	select {
	case <-ctx.Done():
	case <-lost:
		end = gone
	case <-broken:
		end = interrupted
	}
	c.setBound(false)
	endSession()
	bg.Wait()
	if end == stopped {
		cc.Drain()
	} else {
		cc.Stop()
	}
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
		<-cc.Closed()
	}
	if c.cfg.OnSessionEnd != nil {
		c.cfg.OnSessionEnd()
	}
	if acks != nil {
		acks.end()
		if end == stopped {
			c.unpin(context.WithoutCancel(ctx)) // a standby takes over at once
		}
	}
	return end, nil
}

// unpin releases the durable's pin, so that the next pull request gets it.
func (c *Consumer) unpin(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stream, err := c.js.Stream(ctx, c.cfg.Stream)
	if err == nil {
		err = stream.UnpinConsumer(ctx, c.cfg.Durable, PinGroup)
	}
	if err != nil {
		c.log.Debug("consumer: unpin", "durable", c.cfg.Durable, "err", err)
	}
}
