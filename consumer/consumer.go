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

// Config describes the durable consumer.
type Config struct {
	Stream        string        // EVENTS stream name (JETSNAP_STREAM)
	Durable       string        // durable consumer name (JETSNAP_DURABLE)
	Filter        string        // filter subject, from the subject pattern
	AckWait       time.Duration // default 30s
	MaxAckPending int           // default 20000
	PullBatch     int           // messages buffered by the client, default 500
	InfoInterval  time.Duration // how often Run reads the consumer's info (Ready, Pending), default 5s
	OnRebind      func()        // called when Run had to bind the durable consumer again
}

func (c *Config) setDefaults() {
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
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		Description:   "jetsnap: tallies events and captures snapshots",
		FilterSubject: c.cfg.Filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxAckPending: c.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: create or update durable %q on stream %q (filter %s): %w", c.cfg.Durable, c.cfg.Stream, c.cfg.Filter, err)
	}
	return cons, nil
}

// Run binds the durable consumer and calls handle for each event, one at a
// time, in delivery order, until ctx ends. Then it stops pulling, lets
// handle see the events already buffered, and returns. handle owns the
// acknowledgement of each message.
//
// A missing stream at start is an error. If the durable consumer disappears
// later (the stream was deleted and recreated, or someone deleted the
// consumer), Run binds it again as soon as it can, and calls
// Config.OnRebind between the last handle call on the old consumer and the
// first on the new one.
func (c *Consumer) Run(ctx context.Context, handle func(jetstream.Msg)) error {
	cons, err := c.Bind(ctx)
	if err != nil {
		return err
	}
	for {
		gone, err := c.consume(ctx, cons, handle)
		if err != nil || !gone {
			return err
		}
		c.log.Warn("consumer: the durable consumer is gone (stream deleted or recreated?); binding it again",
			"stream", c.cfg.Stream, "durable", c.cfg.Durable)
		backoff := 100 * time.Millisecond
		for {
			if cons, err = c.Bind(ctx); err == nil {
				break
			}
			c.log.Warn("consumer: cannot bind yet; retrying", "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		if c.cfg.OnRebind != nil {
			c.cfg.OnRebind()
		}
	}
}

// consume delivers from cons until ctx ends (gone false) or the consumer
// disappears from the server (gone true).
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer, handle func(jetstream.Msg)) (gone bool, err error) {
	lost := make(chan struct{})
	var once sync.Once
	markLost := func() { once.Do(func() { close(lost) }) }
	cc, err := cons.Consume(handle,
		jetstream.PullMaxMessages(c.cfg.PullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				markLost()
				return
			}
			// The client re-pulls by itself after missed heartbeats and
			// reconnects; these are reported, not fatal.
			c.log.Warn("consumer: pull interrupted", "err", err)
		}),
	)
	if err != nil {
		return false, fmt.Errorf("consumer: start consuming %q: %w", c.cfg.Durable, err)
	}
	c.log.Info("consuming", "stream", c.cfg.Stream, "durable", c.cfg.Durable, "filter", c.cfg.Filter)
	c.setBound(true)
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { defer close(polled); c.poll(pollCtx, cons, markLost) }()
	select {
	case <-ctx.Done():
	case <-lost:
		gone = true
	}
	c.setBound(false)
	stopPoll()
	<-polled
	if gone {
		cc.Stop()
	} else {
		cc.Drain()
	}
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
		<-cc.Closed()
	}
	return gone, nil
}
