package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Batched acknowledgements (AckBatch): the durable consumer has the AckAll
// policy, so one ack of stream sequence S acknowledges every message
// pending at or below S. The acker acks, every ackBatch messages or
// ackInterval, the highest message S such that every delivery at or below
// S is done (the handler acked it). That is safe only if this process saw
// every delivery since the consumer was last reset to its ack floor: the
// server numbers deliveries, and a delivery sequence that is not the
// previous one plus one means that a delivery went elsewhere (another
// process, a connection lost mid-batch). Then the acker refuses the
// delivery and Run resets the consumer to its ack floor, so that every
// message not acknowledged yet is delivered again, to this process.

const (
	ackBatch    = 256                   // done messages that trigger an ack
	ackInterval = 20 * time.Millisecond // longest a done message waits for its ack
)

const pinHeader = "Nats-Pin-Id"

// acker tracks the deliveries of one session (from a reset to the next).
type acker struct {
	mu      sync.Mutex
	ring    []*delivery          // handed to the handler and not acknowledged, in delivery order
	head    int                  // ring[:head] is gone
	ordered bool                 // the ring's stream sequences increase
	last    uint64               // the last delivery sequence admitted
	fresh   int                  // deliveries done since the last ack
	ended   bool                 // the session ended: ack each done message at once
	broken  bool                 // a delivery was refused: admit no more
	naked   map[uint64]*delivery // handed back for redelivery, by stream sequence
	pin     string               // the pin id of the session's deliveries
}

// delivery is a message handed to the handler. Its Ack marks it done; the
// acker sends the acknowledgement later, for many at once.
type delivery struct {
	jetstream.Msg
	a       *acker
	sseq    uint64
	done    bool      // guarded by a.mu
	nakedAt time.Time // guarded by a.mu: when it was handed back
}

func newAcker() *acker { return &acker{ordered: true} }

// admit wraps msg for the handler, or returns false if its delivery
// sequence does not follow the last one admitted (the session must end).
func (a *acker) admit(msg jetstream.Msg) (*delivery, bool) {
	r, ok := ParseReply(msg.Reply())
	if !ok {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var pin string
	if h := msg.Headers(); h != nil {
		pin = h.Get(pinHeader)
		// The server adds the pin to the delivery; it is not part of the
		// event, and a reducer reading it back from the stream never sees it.
		h.Del(pinHeader)
	}
	if a.last == 0 {
		a.pin = pin
	}
	// A new pin means the durable was pinned to another process in between:
	// its deliveries may have brought the sequence back to where this
	// session left it, so contiguity alone proves nothing.
	if a.broken || r.ConsumerSeq != a.last+1 || pin != a.pin {
		a.broken = true
		return nil, false
	}
	a.last = r.ConsumerSeq
	d := &delivery{Msg: msg, a: a, sseq: r.StreamSeq}
	if old := a.naked[d.sseq]; old != nil {
		// Its redelivery replaces it: the new one blocks the acks now.
		delete(a.naked, d.sseq)
		old.done = true
		a.fresh++
	}
	if n := len(a.ring); n > a.head && a.ring[n-1].sseq > d.sseq {
		a.ordered = false
	}
	a.ring = append(a.ring, d)
	return d, true
}

// due reports whether enough deliveries are done to send an ack now.
func (a *acker) due() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fresh >= ackBatch
}

// flush acknowledges the done deliveries that can be: those before the
// first one not done, in delivery order, with a stream sequence below every
// delivery not done. It sends one ack, for the highest of them.
func (a *acker) flush() {
	a.mu.Lock()
	target := a.advance()
	a.mu.Unlock()
	if target != nil {
		_ = target.Msg.Ack() // lost: the messages are delivered again after AckWait
	}
}

// advance moves the head past the deliveries that can be acknowledged and
// returns the one to ack. The caller holds a.mu.
func (a *acker) advance() *delivery {
	if a.fresh == 0 {
		return nil
	}
	open := ^uint64(0) // the lowest stream sequence not done
	for _, d := range a.ring[a.head:] {
		if !d.done {
			open = d.sseq
			if a.ordered {
				break
			}
		}
	}
	if !a.ordered {
		for _, d := range a.ring[a.head:] {
			if !d.done && d.sseq < open {
				open = d.sseq
			}
		}
	}
	var target *delivery
	for a.head < len(a.ring) {
		d := a.ring[a.head]
		if !d.done || d.sseq >= open {
			break
		}
		if target == nil || d.sseq > target.sseq {
			target = d
		}
		a.ring[a.head] = nil
		a.head++
	}
	if a.head == len(a.ring) {
		a.ring, a.head, a.ordered = a.ring[:0], 0, true
	} else if a.head > len(a.ring)/2 {
		n := copy(a.ring, a.ring[a.head:])
		clear(a.ring[n:])
		a.ring, a.head = a.ring[:n], 0
	}
	a.fresh = 0
	return target
}

// end ends the session: later Acks are sent at once, for what can be.
func (a *acker) end() {
	a.mu.Lock()
	a.ended = true
	target := a.advance()
	a.mu.Unlock()
	if target != nil {
		_ = target.Msg.Ack()
	}
}

func (a *acker) markDone(d *delivery) {
	a.mu.Lock()
	if d.done {
		a.mu.Unlock()
		return
	}
	d.done = true
	a.fresh++
	var target *delivery
	if a.ended {
		target = a.advance()
	}
	a.mu.Unlock()
	if target != nil {
		_ = target.Msg.Ack()
	}
}

// stuck reports whether a delivery handed back for redelivery has waited
// longer than d for it: the server ignores a nak of a delivery it no
// longer counts as pending (an ack from before a reset can do that), and
// then nothing after it would ever be acknowledged.
func (a *acker) stuck(d time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.naked {
		if time.Since(n.nakedAt) > d {
			return true
		}
	}
	return false
}

// Ack marks the message done; the acker acknowledges it with others.
func (d *delivery) Ack() error {
	d.a.markDone(d)
	return nil
}

// DoubleAck is Ack: the acknowledgement is sent later, so it cannot wait
// for the server's answer.
func (d *delivery) DoubleAck(context.Context) error { return d.Ack() }

// Term marks the message done: it is never to be delivered again.
func (d *delivery) Term() error { return d.Ack() }

// TermWithReason is Term.
func (d *delivery) TermWithReason(string) error { return d.Ack() }

// Nak hands the message back for redelivery: nothing at or above it is
// acknowledged until the session ends (a reset delivers it again).
func (d *delivery) Nak() error { return d.NakWithDelay(0) }

// NakWithDelay is Nak, with the server redelivering it after delay.
func (d *delivery) NakWithDelay(delay time.Duration) error {
	a := d.a
	a.mu.Lock()
	if !d.done {
		if a.naked == nil {
			a.naked = make(map[uint64]*delivery)
		}
		a.naked[d.sseq] = d
		d.nakedAt = time.Now()
	}
	a.mu.Unlock()
	if delay > 0 {
		return d.Msg.NakWithDelay(delay)
	}
	return d.Msg.Nak()
}
